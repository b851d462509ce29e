"""What every command line does with a user's mistake (one line on stderr naming it, exit code 2, no
traceback; a bug still shows its traceback), with libraries' chatter (INFO logs and artifact progress bars
off unless `-v`), and how it prints a duration."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from benchmark.errors import DataError

USER_ERRORS = (DataError, ValueError, KeyError, OSError)  # bad input, configuration, arguments or files
NOISY_LIBRARIES = ("mlflow", "alembic", "optuna", "transformers", "sentence_transformers", "huggingface_hub",
                   "httpx", "urllib3")


def library_logs(verbose: bool) -> None:
    """Keep libraries to warnings and errors, so their INFO lines (MLflow's database migrations, artifact
    download bars...) do not cut through this project's own progress bars; `verbose` brings them back
    (whatever the environment says)."""
    level = "INFO" if verbose else "WARNING"
    for variable, value in (("MLFLOW_LOGGING_LEVEL", level),  # read when MLflow is first imported
                            ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", str(verbose).lower())):
        if verbose:
            os.environ[variable] = value
        else:
            os.environ.setdefault(variable, value)
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(level)


def readable_duration(seconds: float | None) -> str:
    """A duration as people read an estimate: `~45 s`, `~8 min`, `2.5 h`; `?` when unknown."""
    if seconds is None or seconds != seconds:
        return "?"
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"~{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def run_command(body: Callable[[], int], verbose: bool = False) -> int:
    """The command's exit code: `body()`'s, or 2 after printing `error: <message>` for a user error;
    libraries stay quiet unless `verbose`."""
    library_logs(verbose)
    try:
        return body()
    except USER_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
