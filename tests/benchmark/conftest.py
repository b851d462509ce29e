"""Fixtures of the suite-level tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.data.dataset import load_dataset
from benchmark.split import SplitConfig
from tests.conftest import seed_profile_cache


@pytest.fixture(scope="module")
def profile_cache(mirror, tmp_path_factory) -> Path:
    """A cache folder holding canned profiles for the tiny suite's split (no LLM is loaded)."""
    cache = tmp_path_factory.mktemp("cache")
    split = SplitConfig(quantile=0.9, target="last").apply(load_dataset("ml-100k", data_dir=mirror))
    seed_profile_cache(split, cache)
    return cache
