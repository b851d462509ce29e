"""What every command line does with a user's mistake: one line on stderr naming it, exit code 2, no
traceback (a bug still shows its traceback)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from benchmark.errors import DataError

USER_ERRORS = (DataError, ValueError, KeyError, OSError)  # bad input, configuration, arguments or files


def run_command(body: Callable[[], int]) -> int:
    """The command's exit code: `body()`'s, or 2 after printing `error: <message>` for a user error."""
    try:
        return body()
    except USER_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
