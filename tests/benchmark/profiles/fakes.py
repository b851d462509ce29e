"""Stand-ins for an LLM backend and a tiny movie log, shared by the profile tests."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pandas as pd

from benchmark.profiles.backends import Result
from benchmark.split import SplitConfig
from tests.conftest import make_log

ROOT = Path(__file__).resolve().parents[3]


class FakeBackend:
    """Deterministic stand-in: the profile is a digest of the prompt; chosen prompts come back empty."""

    def __init__(self, empty_if: str | None = None, delay: float = 0.0):
        self.id = "fake:1"
        self.empty_if, self.delay, self.calls = empty_if, delay, 0

    def generate(self, conversations, params):
        self.calls += len(conversations)
        time.sleep(self.delay * len(conversations))
        results = []
        for conversation in conversations:
            content = conversation[-1]["content"]
            if self.empty_if and self.empty_if in content:
                results.append(Result("", 10, 0, "stop"))
            else:
                digest = hashlib.sha256(content.encode()).hexdigest()[:12]
                results.append(Result(f"profile {digest} ({content.count(chr(10) + '- ')} items)", 10, 5, "stop"))
        return results


def movie_log(titles_after_cutoff: str = "FUTURE") -> tuple:
    rows, titles = [], {}
    for user in range(4):
        for step in range(8):
            item = f"u{user}i{step}"
            late = step >= 6
            titles[item] = f"{titles_after_cutoff} film {item}" if late else f"Film {item}"
            rows.append((user, item, 100 * step + user))
    log = make_log(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    text = pd.DataFrame({"original_id": log.item_ids, "title": [titles[i] for i in log.item_ids],
                         "year": pd.array([1990] * log.n_items, dtype="Int64"), "genres": "Drama, Comedy"},
                        index=log.item_text.index)
    log = log.__class__(**{**log.__dict__, "item_text": text, "domain": "movies"})
    return log, SplitConfig(quantile=0.7, target="successive").apply(log)
