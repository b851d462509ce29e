"""A tiny suite in a temporary workspace (suite file, cache with canned profiles, records folder) and the helpers the suite-level tests share."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
from optuna.trial import TrialState

from benchmark.records import read_records
from benchmark.split import SplitConfig
from benchmark.studies import study_name

ROOT = Path(__file__).resolve().parents[2]


TINY_SUITE = """
name: {name}
datasets: [{{name: ml-100k}}]
splits: [{{quantile: 0.9, target: last}}]
tuning: {{trials: {trials}, seed: 0, pruner: median, startup_trials: 1, warmup_epochs: 1}}
models:
  - {{name: mostpop}}
  - name: sasrec
    params: {{blocks: 1, heads: 1, max_len: 20, max_epochs: 3, patience: 3}}
    search: {{lr: {{low: 0.0005, high: 0.005, log: true}}, dim: {{choices: [8, 16]}}}}
  - name: sasrec-kd
    params_from: sasrec
    params: {{distil_epochs: 1, layer: 1}}
seeds: [0, 1]
"""


def workspace(tmp_path: Path, profile_cache: Path, name: str = "tiny", trials: int = 3) -> tuple[Path, list[str]]:
    """A suite file and the common command-line arguments of a run in `tmp_path`."""
    cache = tmp_path / "cache"
    subprocess.run(["cp", "-r", str(profile_cache), str(cache)], check=True)
    suite = tmp_path / f"{name}.yaml"
    suite.write_text(TINY_SUITE.format(name=name, trials=trials))
    return cache, ["--suite", str(suite), "--data-dir", str(ROOT.parent / "shared" / "datasets"),
                   "--cache-dir", str(cache), "--output", str(tmp_path / "runs")]


def records(folder: Path) -> list[dict]:
    return [record for _, record in read_records(folder)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_mlflow(args: list[str]) -> tuple[subprocess.Popen, str]:
    """Start an MLflow CLI server on a free local port; return it and its URL once it answers."""
    port = free_port()
    process = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), *args, "--host", "127.0.0.1",
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"mlflow {args[0]} did not start")


def finished(storage: str, suite: str, label: str = "sasrec") -> list:
    name = study_name(suite, "ml-100k", SplitConfig(quantile=0.9, target="last"), label)
    study = optuna.load_study(study_name=name, storage=storage)
    return study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
