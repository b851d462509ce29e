"""Faults that must not cost a run: bad tracking and storage URLs, corrupt records, two processes on one
suite, truncated or unsafe checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmark.run import main as run_cli
from benchmark.trainer import TrainingPaused, checkpoint_progress, read_checkpoint
from tests.benchmark import train_job
from tests.benchmark.test_run import SMALL_SUITE

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("option,value,expected", [
    ("--tracking-uri", "sqlite:////proc/x.db", "not a writable SQLite database"),
    ("--tracking-uri", "bogus://nowhere", "unknown scheme 'bogus'"),
    ("--tracking-uri", "http://127.0.0.1:{port}", "no server answers"),
    ("--tracking-uri", "postgresql://u:p@127.0.0.1:{port}/db", "cannot connect"),
    ("--tracking-uri", "/proc/no/folder", "not a writable folder"),
    ("--tracking-uri", "sqlite:////proc/no/folder/x.db", "not a writable SQLite database"),
    ("--storage", "sqlite:////proc/x.db", "not a writable SQLite database"),
    ("--storage", "bogus://nowhere", "not a database URL"),
    ("--storage", "postgresql://u:p@127.0.0.1:{port}/db", "cannot connect"),
])
def test_a_bad_store_is_a_one_line_error_before_any_work(option, value, expected, tmp_path, capsys, mirror):
    value = value.format(port=closed_port(), tmp=tmp_path)
    started = time.monotonic()
    assert run_cli(["--suite", "smoke", "--data-dir", str(mirror), "--cache-dir", str(tmp_path / "cache"),
                    "--output", str(tmp_path / "runs"), option, value]) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert err.startswith(f"error: {option} {value}") and expected in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing recorded


def small_suite(tmp_path: Path, mirror: Path) -> list[str]:
    suite = tmp_path / "small.yaml"
    suite.write_text(SMALL_SUITE)
    return ["--suite", str(suite), "--data-dir", str(mirror), "--cache-dir", str(tmp_path / "cache"),
            "--output", str(tmp_path / "runs")]


@pytest.mark.parametrize("damage", ["truncated", "edited", "renamed"])
def test_a_corrupt_record_is_an_error_naming_it_never_done_nor_redone(damage, tmp_path, capsys, mirror):
    args = small_suite(tmp_path, mirror)
    assert run_cli(args) == 0
    record = next((tmp_path / "runs").rglob("sasrec-*.json"))
    text = record.read_text()
    if damage == "truncated":
        record.write_text(text[: len(text) // 2])
    elif damage == "edited":  # a hand-edited result: the configuration no longer hashes to the key
        plain = json.loads(text)
        plain["config"]["params"]["dim"] = 64
        record.write_text(json.dumps(plain))
    else:  # another run's record under this name
        record.rename(record.with_name("sasrec-0123456789abcdef.json"))
        record = record.with_name("sasrec-0123456789abcdef.json")
    capsys.readouterr()
    before = sorted(p.name for p in (tmp_path / "runs").rglob("*"))
    for extra in (["--dry-run"], []):
        assert run_cli([*args, *extra]) == 2
        err = capsys.readouterr().err  # (a progress bar's line may come first)
        assert err.splitlines()[-1].startswith(f"error: {record}: corrupt run record") and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "runs").rglob("*")) == before  # nothing retrained or rewritten


def test_two_processes_on_one_suite_train_each_run_once(tmp_path, mirror):
    """Started together on the same suite, records and tracking store: every final run is trained by one of
    them (the other waits on its lock, then reads its record), recorded once and logged to MLflow once."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*small_suite(tmp_path, mirror), "--tracking-uri", uri]
    command = [sys.executable, "-m", "benchmark.run", *args]
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    processes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    trained = [int(out.split("runs (")[1].split(" already")[0]) for out, _ in outputs]
    assert sum(3 - already for already in trained) == 3  # 3 runs trained in all, by one process or the other
    records = sorted((tmp_path / "runs").rglob("*.json"))
    assert len(records) == 3
    client = MlflowClient(uri)
    finals = client.search_runs([client.get_experiment_by_name("small").experiment_id], "tags.kind = 'final'")
    assert sorted(r.data.tags["run_key"] for r in finals) == sorted(r.stem.rsplit("-", 1)[1] for r in records)


def test_a_truncated_checkpoint_restarts_its_run_from_scratch_with_a_warning(mirror, tmp_path):
    uninterrupted = train_job.run(str(mirror), None)
    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(TrainingPaused):
        train_job.run(str(mirror), checkpoint, stop_after=2)
    whole = checkpoint.read_bytes()
    checkpoint.write_bytes(whole[: len(whole) // 2])
    with pytest.warns(UserWarning, match="unreadable checkpoint"):
        assert checkpoint_progress(checkpoint) is None  # a dry run's view: no progress to count on
    checkpoint.write_bytes(whole[: len(whole) // 3])
    with pytest.warns(UserWarning, match=f"{checkpoint}: unreadable checkpoint .*starts again from scratch"):
        restarted = train_job.run(str(mirror), checkpoint)
    assert restarted == uninterrupted and restarted["resumed_from"] is None


class Payload:
    """What a checkpoint must never run on load: unpickling it would create this file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoints_load_without_unpickling_arbitrary_objects(tmp_path):
    checkpoint, marker = tmp_path / "evil.ckpt", tmp_path / "ran"
    torch.save({"state": {"epoch": 1, "seconds": 1.0}, "model": {}, "extra": Payload(marker)}, checkpoint)
    with pytest.warns(UserWarning, match="unreadable checkpoint"):
        assert read_checkpoint(checkpoint) is None
    assert not marker.exists() and not checkpoint.exists()


def test_a_report_without_its_runs_says_where_they_are(tmp_path, capsys):
    """An empty tracking store points to the records (the default source); a missing records folder is
    named. Each is one line."""
    from analysis.report import main as report_cli

    assert report_cli(["--suite", "quick", "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}"]) == 2
    err = capsys.readouterr().err
    assert "report its records (leave out --tracking-uri)" in err and err.count("\n") == 1
    assert report_cli(["--suite", "quick", "--records", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nothing'}: no run records" in err and err.count("\n") == 1


@pytest.mark.parametrize("verbose", [False, True])
def test_library_info_logs_are_quiet_unless_verbose(verbose, tmp_path):
    """MLflow's INFO lines (database migrations on a new store) stay out of the output unless `-v`."""
    command = [sys.executable, "-m", "benchmark.tracking", "import", "--suite", "kd-ml1m", "--tracking-uri",
               f"sqlite:///{tmp_path / 'mlflow.db'}", *(["-v"] if verbose else [])]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert ("INFO" in result.stderr) == verbose, result.stderr[-2000:]
