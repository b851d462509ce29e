"""The profile and embedding cache: one SQLite file, every row committed as soon as it is produced.

A killed generation loses at most the batch in flight and never duplicates a row (keys are primary
keys), so rerunning the same command continues where it stopped.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark import paths

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    key TEXT PRIMARY KEY, status TEXT NOT NULL, text TEXT, reason TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, seconds REAL, backend TEXT, created REAL
);
CREATE TABLE IF NOT EXISTS imported (sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    encoder TEXT NOT NULL, text_hash TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (encoder, text_hash)
);
"""


@dataclass(frozen=True)
class StoredProfile:
    """A cached generation: status 'ok' with text, or 'failed' with the reason."""

    key: str
    status: str
    text: str | None
    reason: str | None
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    backend: str


class Store:
    """SQLite-backed cache of generated profiles and text embeddings."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.connection = sqlite3.connect(path, timeout=60)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.executescript(_SCHEMA)

    def profiles(self, keys: Sequence[str]) -> dict[str, StoredProfile]:
        """Cached rows for `keys` (absent keys are simply missing from the result)."""
        found: dict[str, StoredProfile] = {}
        for start in range(0, len(keys), 900):
            chunk = list(keys[start:start + 900])
            marks = ",".join("?" * len(chunk))
            for row in self.connection.execute(
                    f"SELECT key, status, text, reason, prompt_tokens, completion_tokens, seconds, backend "
                    f"FROM profiles WHERE key IN ({marks})", chunk):
                found[row[0]] = StoredProfile(*row)
        return found

    def put_profiles(self, rows: Iterable[StoredProfile]) -> None:
        """Insert or replace rows in one transaction."""
        now = time.time()
        with self.connection:
            self.connection.executemany(
                "INSERT OR REPLACE INTO profiles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.key, r.status, r.text, r.reason, r.prompt_tokens, r.completion_tokens, r.seconds, r.backend, now)
                 for r in rows])

    def import_published(self, directory: Path | None) -> int:
        """Load every published profile file of `directory` (`*.jsonl.xz`) not loaded before; returns the
        number of rows loaded. A published row replaces a locally generated one with the same key, so a
        run reads the same text on every machine."""
        from benchmark.files import sha256_of
        from benchmark.profiles.lines import PUBLISHED_FORMAT, published_files, read_lines

        done = {row[0] for row in self.connection.execute("SELECT sha256 FROM imported")}
        loaded = 0
        for path in published_files(directory):
            digest = sha256_of(path)
            if digest in done:
                continue
            header, rows = read_lines(path, PUBLISHED_FORMAT)
            self.put_profiles(StoredProfile(r["key"], r["status"], r["text"], r["reason"], r["prompt_tokens"],
                                            r["completion_tokens"], r["seconds"], header["backend"]) for r in rows)
            with self.connection:
                self.connection.execute("INSERT INTO imported VALUES (?, ?, ?)", (digest, path.name, len(rows)))
            loaded += len(rows)
        return loaded

    def embeddings(self, encoder: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors of `encoder` for text hashes."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), 900):
            chunk = list(hashes[start:start + 900])
            marks = ",".join("?" * len(chunk))
            for text_hash, dim, blob in self.connection.execute(
                    f"SELECT text_hash, dim, vector FROM embeddings WHERE encoder = ? AND text_hash IN ({marks})",
                    [encoder, *chunk]):
                found[text_hash] = np.frombuffer(blob, dtype=np.float32, count=dim)
        return found

    def put_embeddings(self, encoder: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Insert or replace vectors in one transaction."""
        with self.connection:
            self.connection.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                [(encoder, h, int(v.size), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for h, v in items])

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def cache_store(cache_dir: str | Path | None = None) -> Store:
    """The profile and embedding cache of a cache directory (default: the user-level cache), holding the
    published profiles (`results/profiles/`) as well, so that no published profile is generated again."""
    store = Store(paths.cache_dir(cache_dir) / "profiles" / "store.sqlite")
    store.import_published(paths.published_profiles_dir())
    return store
