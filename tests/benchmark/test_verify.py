"""`benchmark.verify`: records re-hashed, the leaderboard regenerated, runs retrained and compared."""

from __future__ import annotations

import json
import shutil

from analysis.report import main as report_cli
from benchmark.run import main as run_cli
from benchmark.verify import main as verify_cli
from tests.benchmark.workspace import workspace


def test_verify_passes_a_sound_leaderboard_and_names_every_fault(tmp_path, profile_cache, capsys):
    cache, args = workspace(tmp_path, profile_cache, trials=1)
    assert run_cli([*args, "--tracking-uri", "none"]) == 0
    suite, runs, board = args[1], tmp_path / "runs", tmp_path / "board"
    assert report_cli(["--suite", suite, "--records", str(runs), "--output", str(board)]) == 0
    common = ["--suite", suite, "--records", str(runs), "--leaderboard", str(board), "--data-dir", args[3],
              "--cache-dir", str(cache)]
    capsys.readouterr()
    assert verify_cli([*common, "--rerun", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "records: 6 read" in out and "0 file(s) differ" in out and "verify: passed" in out
    assert out.count("rerun: ml-100k") == 2 and out.count("pass: largest difference 0.00e+00") == 2

    # a metric edited by hand, a configuration edited by hand, a stale table: each is named
    paths = sorted(runs.rglob("sasrec-*.json"))
    edited = json.loads(paths[0].read_text())
    edited["test"]["ndcg@10"] += 0.01
    paths[0].write_text(json.dumps(edited))
    original = paths[1].read_text()
    moved = json.loads(original)
    moved["config"]["params"]["lr"] = 0.5
    paths[1].write_text(json.dumps(moved))
    assert verify_cli(common) == 1
    out = capsys.readouterr().out
    assert f"{paths[0]}: test ndcg@10" in out and "is not the mean of its per-user values" in out
    assert f"{paths[1]}: corrupt run record" in out and "FAIL leaderboard not regenerated" in out
    paths[1].write_text(original)
    shutil.copyfile(board / "leaderboard-tiny.csv", board / "manifest-tiny.csv")
    assert verify_cli(common) == 1
    out = capsys.readouterr().out
    assert "FAIL manifest-tiny.csv" in out and "verify: FAILED" in out
