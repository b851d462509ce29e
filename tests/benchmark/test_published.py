"""What a fresh clone promises: every published suite is done from its committed records, and every
command the README shows works as written (offline, from the mirror)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import paths
from benchmark.run import main as run_cli

ROOT = Path(__file__).resolve().parents[2]
TRAINING_COMMANDS = ("benchmark.run", "benchmark.ablate", "benchmark.tune")


REPORTED = [suite for suite in paths.PUBLISHED_SUITES if (paths.RESULTS_DIR / f"leaderboard-{suite}.md").is_file()]


@pytest.mark.parametrize("suite", REPORTED)
def test_a_published_leaderboard_is_done_from_its_records_on_a_fresh_cache(suite, mirror, tmp_path, capsys):
    """A published leaderboard can never drift from its records: with an empty cache (no studies, no
    profiles, no MLflow store), the dry run of its suite finds every final run recorded and every study
    complete. (A published suite still running, its records committed as they finish, has no leaderboard.)"""
    assert run_cli(["--suite", suite, "--dry-run", "--data-dir", str(mirror), "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    planned, done = map(int, re.search(r"(\d+) final runs planned, (\d+) already done", out).groups())
    assert planned == done > 0, out[-3000:]
    studies = [line for line in out.splitlines() if " tuning " in line]
    assert all(" done, " in line for line in studies), [line for line in studies if " done, " not in line]


def readme_commands() -> tuple[dict[str, str], list[str]]:
    """The `export` settings and the command lines of the README's bash blocks after the quick start
    (whose two commands CI runs itself), comments removed."""
    text = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[1]
    env, commands = {}, []
    for block in re.findall(r"```bash\n(.*?)\n```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith("export "):
                name, value = line.removeprefix("export ").split("=", 1)
                env[name] = str((ROOT / value).resolve()) if value.startswith(".") else value
            elif line:
                commands.append(line)
    return env, commands


def test_every_readme_command_runs_as_written(mirror, tmp_path):
    """Each command line of the README, word for word with the README's own settings and an empty cache:
    a command that trains runs with `--dry-run` added, any other with `--help`; each must succeed."""
    env, commands = readme_commands()
    assert env.get(paths.DATA_DIR_ENV) == str(mirror.resolve()) and len(commands) >= 6
    environment = os.environ | env | {"SEQREC_KD_CACHE_DIR": str(tmp_path), "HOME": str(tmp_path)}
    for command in commands:
        words = shlex.split(os.path.expandvars(command))
        assert words[:2] == ["python", "-m"] or words[0] == "mlflow", command
        trains = words[:2] == ["python", "-m"] and words[2] in TRAINING_COMMANDS
        extra = [] if "--dry-run" in words else ["--dry-run"] if trains else ["--help"]
        program = sys.executable if words[0] == "python" else str(Path(sys.executable).parent / words[0])
        result = subprocess.run([program, *words[1:], *extra], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
