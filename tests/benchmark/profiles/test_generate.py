"""Profile generation is cached and incremental, retries then records failures (never fills them), stops where a budget refuses, keeps complete sentences, and resumes after SIGKILL without loss or duplicates."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmark.data.dataset import load_dataset
from benchmark.profiles.backends import Result
from benchmark.profiles.generate import NOT_GENERATED, generate_profiles
from benchmark.profiles.prompts import PromptConfig, build_prompts
from benchmark.profiles.store import Store
from benchmark.profiles.worker import complete_sentences
from benchmark.split import SplitConfig
from tests.benchmark.profiles.fakes import ROOT, FakeBackend, movie_log


def test_generation_is_cached_and_incremental(tmp_path):
    _, split = movie_log()
    store, backend = Store(tmp_path / "s.sqlite"), FakeBackend()
    profiles, summary = generate_profiles(split, backend, store, progress=False)
    assert summary.generated == len(profiles.texts) == 4 and not profiles.missing
    again, summary = generate_profiles(split, FakeBackend(), store, progress=False)
    assert summary.cached == 4 and summary.generated == 0 and again.texts == profiles.texts
    # a different prompt style regenerates everything; the old profiles stay cached
    _, summary = generate_profiles(split, backend, store, prompts=PromptConfig(style="long"), progress=False)
    assert summary.generated == 4


def test_failures_are_retried_then_recorded_never_filled(tmp_path):
    _, split = movie_log()
    backend = FakeBackend(empty_if="Film u2i0")
    profiles, summary = generate_profiles(split, backend, Store(tmp_path / "s.sqlite"), retries=2, progress=False)
    assert summary.failed == 1 and backend.calls == 4 + 2
    user_2 = int(np.flatnonzero(split.log.user_ids == 2)[0])
    assert profiles.missing == {user_2: "empty generation"} and user_2 not in profiles.texts
    # cache-only reading reports it missing too, and reports what was never generated
    cached, _ = generate_profiles(split, backend, Store(tmp_path / "s.sqlite"), generate=False, progress=False)
    assert cached.missing == {user_2: "empty generation"}
    fresh, _ = generate_profiles(split, backend, Store(tmp_path / "other.sqlite"), generate=False, progress=False)
    assert set(fresh.missing.values()) == {NOT_GENERATED}


def test_generation_stops_where_a_budget_refuses_the_next_block(tmp_path):
    _, split = movie_log()
    asked: list[float | None] = []
    backend, store = FakeBackend(), Store(tmp_path / "s.sqlite")
    profiles, summary = generate_profiles(split, backend, store, block=2, progress=False,
                                          may_start=lambda seconds: asked.append(seconds) or len(asked) == 1)
    assert asked[0] is None and asked[1] > 0  # the second block's estimate: the first one's time
    assert summary.generated == 2 and backend.calls == 2 and len(profiles.texts) == 2
    assert list(profiles.missing.values()) == [NOT_GENERATED] * 2
    rest, summary = generate_profiles(split, backend, store, block=2, progress=False)
    assert summary.cached == 2 and summary.generated == 2 and len(rest.texts) == 4


def test_generations_cut_by_the_token_limit_keep_complete_sentences(tmp_path):
    assert complete_sentences("Likes drama. Prefers the 1990s! Watches at nig") == "Likes drama. Prefers the 1990s!"
    assert complete_sentences("Preferences:\n- drama\n- comedy, mostly fr") == "Preferences:\n- drama"
    assert complete_sentences("no sentence end at all") == "no sentence end at all"
    assert complete_sentences("Version 2.0 is fine. And") == "Version 2.0 is fine."

    class CutBackend(FakeBackend):
        def generate(self, conversations, params):
            return [Result("Likes drama. Watches at nig", 10, 8, "length") for _ in conversations]

    log, split = movie_log()
    profiles, _ = generate_profiles(split, CutBackend(), Store(tmp_path / "s.sqlite"), progress=False)
    assert set(profiles.texts.values()) == {"Likes drama."}


def test_chunk_profiles_are_aggregated(tmp_path):
    _, split = movie_log()
    backend = FakeBackend()
    profiles, _ = generate_profiles(split, backend, Store(tmp_path / "s.sqlite"),
                                    prompts=PromptConfig(chunk_size=3), progress=False)
    assert len(profiles.texts) == 4 and backend.calls == 4 * 2 + 4  # 6 training items -> 2 chunks, + merge


GENERATE_JOB = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.benchmark.profiles.fakes import FakeBackend
from benchmark.data.dataset import load_dataset
from benchmark.profiles.generate import generate_profiles
from benchmark.profiles.worker import complete_sentences
from benchmark.profiles.store import Store
from benchmark.split import SplitConfig
split = SplitConfig().apply(load_dataset("ml-100k", data_dir={mirror!r}))
generate_profiles(split, FakeBackend(delay=float(sys.argv[1])), Store(Path({store!r})), block=16, progress=False)
"""


def test_generation_resumes_after_sigkill_without_loss_or_duplicates(mirror, tmp_path):
    store_path = tmp_path / "s.sqlite"
    script = tmp_path / "job.py"
    script.write_text(GENERATE_JOB.format(root=str(ROOT), mirror=str(mirror), store=str(store_path)))
    process = subprocess.Popen([sys.executable, str(script), "0.01"], cwd=ROOT)
    deadline = time.time() + 60
    while time.time() < deadline:
        if store_path.exists() and _rows(store_path) >= 100:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    split = SplitConfig().apply(load_dataset("ml-100k", data_dir=mirror))
    expected = len(build_prompts(split))
    done_before = _rows(store_path)
    assert 100 <= done_before < expected
    subprocess.run([sys.executable, str(script), "0"], cwd=ROOT, check=True)
    profiles, summary = generate_profiles(split, FakeBackend(), Store(store_path), progress=False)
    assert summary.cached == expected and summary.generated == 0 and len(profiles.texts) == expected
    assert _rows(store_path) == expected  # no duplicates, nothing lost


def _rows(path: Path) -> int:
    """Profiles stored so far (0 while the job has created the file but not yet its table)."""
    import sqlite3

    with sqlite3.connect(path, timeout=30) as connection:
        if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'profiles'").fetchone() is None:
            return 0
        return connection.execute("SELECT COUNT(*) FROM profiles").fetchone()[0]
