"""`python -m benchmark.profiles`: show, publish, and profiles generated elsewhere reaching a suite through files."""

from __future__ import annotations

import pytest

from benchmark.data.dataset import load_dataset
from benchmark.profiles.backends import GenerationParams
from benchmark.profiles.generate import generate_profiles
from benchmark.profiles.prompts import build_prompts
from benchmark.profiles.store import Store
from benchmark.split import SplitConfig
from tests.benchmark.profiles.fakes import FakeBackend, movie_log
from tests.conftest import seed_profile_cache


def test_show_explains_a_user_without_training_history(mirror, capsys):
    from benchmark.profiles.__main__ import main

    split = SplitConfig(quantile=0.3).apply(load_dataset("ml-100k", data_dir=mirror))
    with_history = {p.user for p in build_prompts(split)}
    user = next(str(u) for i, u in enumerate(split.log.user_ids) if i not in with_history)
    assert main(["show", user, "--dataset", "ml-100k", "--data-dir", str(mirror), "--quantile", "0.3"]) == 2
    assert f"user '{user}' has no interactions in the 'fit' history" in capsys.readouterr().err


def test_profiles_generated_elsewhere_reach_the_suite_through_files(tmp_path, monkeypatch):
    """export jobs -> a worker's results file -> import -> publish -> a fresh cache loads the published file
    and reads every profile under the keys the suite computes."""
    from benchmark.profiles.generate import pending_conversations, user_conversations
    from benchmark.profiles.lines import PUBLISHED_FORMAT, RESULTS_FORMAT, read_lines, write_lines
    from benchmark.profiles.store import cache_store
    from benchmark.profiles.worker import stored_row

    _, split = movie_log()
    backend, store = FakeBackend(), Store(tmp_path / "a.sqlite")
    pending = pending_conversations(split, backend.id, store)
    assert len(pending) == 4
    results = [stored_row(key, result, 0.1, backend.id)
               for key, result in zip(pending, backend.generate(list(pending.values()), GenerationParams()))]
    write_lines(tmp_path / "r.jsonl.xz", {"format": RESULTS_FORMAT}, [r.__dict__ for r in results])
    _, rows = read_lines(tmp_path / "r.jsonl.xz", RESULTS_FORMAT)
    store.put_profiles(type(results[0])(**row) for row in rows)
    assert not pending_conversations(split, backend.id, store)

    published = tmp_path / "published"
    published.mkdir()
    keys = user_conversations(split, backend.id)
    stored = store.profiles([key for key, _ in keys.values()])
    write_lines(published / "movies.jsonl.xz", {"format": PUBLISHED_FORMAT, "backend": backend.id},
                [{"key": key, "status": "ok", "text": stored[key].text, "reason": None, "prompt_tokens": 1,
                  "completion_tokens": 1, "seconds": 0.1} for key, _ in keys.values()])
    monkeypatch.setenv("SEQREC_KD_PUBLISHED_PROFILES", str(published))
    fresh = cache_store(tmp_path / "cache")
    profiles, _ = generate_profiles(split, backend, fresh, generate=False, progress=False)
    assert len(profiles.texts) == 4 and not profiles.missing
    assert fresh.import_published(published) == 0  # loaded once per file
    with pytest.raises(ValueError, match="format is"):
        read_lines(tmp_path / "r.jsonl.xz", PUBLISHED_FORMAT)


def test_a_later_part_publishes_only_what_no_published_file_holds(tmp_path, monkeypatch, mirror):
    """`publish --new-only`: the profiles generated since the last published part, and nothing twice."""
    from benchmark.profiles.__main__ import main as profiles_cli
    from benchmark.profiles.lines import PUBLISHED_FORMAT, read_lines, write_lines

    config = SplitConfig(quantile=0.9, target="last")
    seed_profile_cache(config.apply(load_dataset("ml-100k", data_dir=mirror)), tmp_path / "cache")
    published = tmp_path / "published"
    published.mkdir()
    monkeypatch.setenv("SEQREC_KD_PUBLISHED_PROFILES", str(published))
    args = ["publish", "--dataset", "ml-100k", "--data-dir", str(mirror), "--cache-dir", str(tmp_path / "cache"),
            "--quantile", "0.9", "--target", "last", "--generated-on", "here"]
    assert profiles_cli([*args, "--out", str(tmp_path / "all.jsonl.xz")]) == 0
    header, rows = read_lines(tmp_path / "all.jsonl.xz", PUBLISHED_FORMAT)
    assert header["missing"] == 0 and header["in_earlier_files"] == [] and len(rows) == header["users"] > 100
    write_lines(published / "part1.jsonl.xz", header, rows[:100])
    assert profiles_cli([*args, "--new-only", "--out", str(tmp_path / "part2.jsonl.xz")]) == 0
    header, later = read_lines(tmp_path / "part2.jsonl.xz", PUBLISHED_FORMAT)
    assert header["in_earlier_files"] == ["part1.jsonl.xz"] and later == rows[100:]

    part2 = published / "part2.jsonl.xz"  # republished in place: its own profiles are not "earlier"
    (tmp_path / "part2.jsonl.xz").rename(part2)
    assert profiles_cli([*args, "--new-only", "--out", str(part2)]) == 0
    header, again = read_lines(part2, PUBLISHED_FORMAT)
    assert header["in_earlier_files"] == ["part1.jsonl.xz"] and again == rows[100:]
