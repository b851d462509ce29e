"""Where the suite looks for data and keeps its caches (overridable by option or environment)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "SEQREC_KD_DATA_DIR"
CACHE_DIR_ENV = "SEQREC_KD_CACHE_DIR"
PUBLISHED_PROFILES_ENV = "SEQREC_KD_PUBLISHED_PROFILES"
# The suites whose leaderboards are published in the repository's results/ folder; a report of any other
# suite goes to the cache, so that trying the tool never touches the published results.
HEADLINE_SUITE = "full"  # the leaderboard a reader sees first
PUBLISHED_SUITES = ("full", "quick", "kd-ml1m", "paper", "paper-sweep")
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


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


def published_profiles_dir() -> Path | None:
    """The profiles published with the results (`results/profiles/` of the source checkout), which every
    profile cache loads: $SEQREC_KD_PUBLISHED_PROFILES overrides it (an empty value turns it off: None)."""
    value = os.environ.get(PUBLISHED_PROFILES_ENV)
    if value is not None:
        return Path(value).expanduser() if value else None
    return RESULTS_DIR / "profiles"


def records_dir(suite: str, cache: str | Path | None = None) -> Path:
    """Where a suite's final-run records live by default: results/runs/<suite> for a published suite (a run
    recorded there is done on any machine), else <cache>/runs/<suite>."""
    return RESULTS_DIR / "runs" / suite if suite in PUBLISHED_SUITES else cache_dir(cache) / "runs" / suite


def report_dir(suite: str, cache: str | Path | None = None) -> Path:
    """Where a suite's report goes by default: results/ for a published suite, else <cache>/reports/<suite>."""
    return RESULTS_DIR if suite in PUBLISHED_SUITES else cache_dir(cache) / "reports" / suite
