"""Shared fixtures: the local dataset mirror and small synthetic event logs."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.data.dataset import Interactions
from benchmark.data.preprocess import dense_ids
from benchmark.profiles.backends import Result
from benchmark.profiles.generate import generate_profiles
from benchmark.profiles.settings import ProfileResources, ProfileSettings
from benchmark.split import Split

MIRROR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The shared dataset mirror (../shared/datasets from the repository root)."""
    if not MIRROR.is_dir():
        pytest.skip(f"dataset mirror not found at {MIRROR}")
    return MIRROR


def suite_error(folder: Path, text: str) -> str:
    """The error message of loading the suite YAML `text` (it must fail with a DataError)."""
    from benchmark.errors import DataError
    from benchmark.suite import load_suite

    bad = folder / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(DataError) as error:
        load_suite(bad)
    return str(error.value)


def make_log(frame: pd.DataFrame, name: str = "synthetic") -> Interactions:
    """An Interactions log from a (user, item, timestamp) frame, ordered like the real pipeline."""
    frame = frame.reset_index(drop=True).rename_axis("row").reset_index()
    frame = frame.sort_values(["user", "timestamp", "row"], kind="stable")
    users, user_ids = dense_ids(frame["user"], start=0)
    items, item_ids = dense_ids(frame["item"], start=1)
    text = pd.DataFrame({"original_id": item_ids}, index=pd.RangeIndex(1, len(item_ids) + 1, name="item"))
    return Interactions(name, "generic", users, items, frame["timestamp"].to_numpy(np.int64), None,
                        user_ids, item_ids, text, "0" * 16)


@pytest.fixture()
def http_server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving the folder `tmp_path / 'www'`: yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class CannedBackend:
    """Answers every prompt with a short text naming the prompt's first item line (a fake LLM)."""

    def __init__(self, backend_id: str):
        self.id = backend_id

    def generate(self, conversations, params):
        return [Result("A viewer who likes " + c[-1]["content"].split("\n")[1][2:40], 50, 12, "stop")
                for c in conversations]


def seed_profile_cache(split: Split, cache_dir: Path, settings: ProfileSettings = ProfileSettings()) -> None:
    """Fill `cache_dir`'s profile store with canned profiles stored under the real generator's identity,
    so distilling models run without loading an LLM."""
    with ProfileResources(settings, cache_dir) as resources:
        generate_profiles(split, CannedBackend(settings.backend_id), resources.store, prompts=settings.prompts,
                          params=settings.generation, progress=False)
