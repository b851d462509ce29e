"""`python -m benchmark.constraints`: rewrite constraints.txt from the active environment.

Every line pins a released version (`name==version`) that any machine can install from a package
index. A requirement that points at a file or a URL (`name @ file:///tmp/...`) exists only on the
machine that wrote it and would break the README's install command elsewhere, so it is refused with
its name, instead of being written.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from benchmark.cli import run_command

CONSTRAINTS = Path(__file__).resolve().parent.parent / "constraints.txt"
HEADER = ("# Exact versions the test suite last passed with (Python 3.11, CPU), written by "
          "`python -m benchmark.constraints`. Use: pip install -e \".[test]\" -c constraints.txt")
_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[^\s@]+$")
PROJECT = "seqrec-kd-bench"


def pins(freeze_lines: list[str]) -> list[str]:
    """The `name==version` lines of a `pip freeze` listing, sorted case-insensitively, without the project
    and without local version labels (`torch==2.13.0+cpu` becomes `torch==2.13.0`, which any build of
    that release satisfies).

    Raises ValueError naming every requirement that is not a plain version pin."""
    kept, refused = [], []
    for line in (raw.strip() for raw in freeze_lines):
        if not line or line.startswith("#") or line.lower().replace("_", "-").startswith(PROJECT):
            continue
        if line.startswith("-e ") or not _PIN.match(line):
            refused.append(line)
        else:
            kept.append(line.split("+", 1)[0])
    if refused:
        raise ValueError("not a released version (a file, URL or editable install): " + "; ".join(refused))
    return sorted(kept, key=str.lower)


def main() -> int:
    """Entry point; returns the process exit code."""
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout.splitlines()

    def body() -> int:
        try:
            lines = pins(frozen)
        except ValueError as error:
            raise ValueError(f"constraints.txt not written: {error}") from None
        CONSTRAINTS.write_text("\n".join([HEADER, *lines]) + "\n")
        print(f"{CONSTRAINTS}: {len(lines)} pins")
        return 0

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
