"""Where the suite looks for data and keeps its caches (overridable by option or environment)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "SEQREC_KD_DATA_DIR"
CACHE_DIR_ENV = "SEQREC_KD_CACHE_DIR"


def data_dir(option: str | Path | None = None) -> Path | None:
    """The local dataset mirror: the explicit option, else $SEQREC_KD_DATA_DIR, else none."""
    value = option if option is not None else os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def cache_dir(option: str | Path | None = None) -> Path:
    """The user-level cache (downloads, profiles, checkpoints); never inside the git tree."""
    value = option if option is not None else os.environ.get(CACHE_DIR_ENV)
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "seqrec-kd-bench"
