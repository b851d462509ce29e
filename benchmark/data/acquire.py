"""Find a dataset's files: explicit path, local mirror, download cache, or HTTP(S) download.

Every file is checked against its pinned SHA-256 wherever it comes from. Downloads stream into a
temporary file next to the destination and are renamed into place only after verification, so a
half-written or corrupt file never looks complete.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from benchmark.data.errors import DataError
from benchmark.data.spec import DataFile, DatasetSpec

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ResolvedFiles:
    """Local paths of a dataset's available files and a fingerprint of their exact content."""

    paths: dict[str, Path]
    sha256: dict[str, str]

    @property
    def fingerprint(self) -> str:
        """A short hash of all file hashes: enters every cache and run key derived from the data."""
        joined = "\n".join(f"{name}={digest}" for name, digest in sorted(self.sha256.items()))
        return hashlib.sha256(joined.encode()).hexdigest()[:16]


def sha256_of(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_files(
    spec: DatasetSpec, data_dir: Path | None, cache_dir: Path, *, download: bool = True
) -> ResolvedFiles:
    """Locate (and if needed download) every file of `spec`; verify checksums.

    Order: the file's explicit path, `data_dir/<folder>/<name>`, the download cache, the URL.
    Missing optional files are skipped; a missing required file raises DataError naming every
    place that was tried.
    """
    paths: dict[str, Path] = {}
    hashes: dict[str, str] = {}
    for file in spec.files:
        found = _locate(spec, file, data_dir, cache_dir, download)
        if found is None:
            continue
        paths[file.name], hashes[file.name] = found
    return ResolvedFiles(paths, hashes)


def _locate(
    spec: DatasetSpec, file: DataFile, data_dir: Path | None, cache_dir: Path, download: bool
) -> tuple[Path, str] | None:
    tried: list[str] = []
    local_candidates = []
    if file.path is not None:
        local_candidates.append(Path(file.path))
    if data_dir is not None:
        local_candidates.append(data_dir / (file.folder or spec.mirror_folder) / file.name)
    local_candidates.append(_cache_path(cache_dir, spec, file))
    for candidate in local_candidates:
        if candidate.is_file():
            return candidate, _verified(candidate, file, spec)
        tried.append(str(candidate))
    if file.url is not None and download:
        destination = _cache_path(cache_dir, spec, file)
        try:
            return destination, _download_verified(file, destination, cache_dir, spec)
        except DataError as error:
            raise DataError(f"dataset '{spec.name}': '{file.name}' not found locally "
                            f"(looked in: {', '.join(tried)}) and {error}") from None
    if file.url is not None:
        tried.append(f"{file.url} (downloads disabled)")
    if file.optional:
        return None
    raise DataError(
        f"dataset '{spec.name}': required file '{file.name}' not found; looked in: "
        + ", ".join(tried)
        + (". Pass --data-dir or set $SEQREC_KD_DATA_DIR to a mirror holding it."
           if file.url is None else "")
    )


def _cache_path(cache_dir: Path, spec: DatasetSpec, file: DataFile) -> Path:
    return cache_dir / "datasets" / (file.folder or spec.mirror_folder) / file.name


def _verified(path: Path, file: DataFile, spec: DatasetSpec) -> str:
    digest = sha256_of(path)
    if file.sha256 is not None and digest != file.sha256:
        raise DataError(
            f"dataset '{spec.name}': file {path} has SHA-256 {digest}, expected {file.sha256} "
            "(corrupt or a different release); replace the file or remove it from the cache"
        )
    if file.sha256 is None and file.path is None:  # a user's own local file needs no pin
        warnings.warn(
            f"dataset '{spec.name}': file {path} is not pinned by a checksum; its SHA-256 is {digest}",
            stacklevel=3,
        )
    return digest


def _download_verified(file: DataFile, destination: Path, cache_dir: Path, spec: DatasetSpec) -> str:
    """Download `file` (or extract it from its downloaded archive) into `destination`, atomically."""
    assert file.url is not None
    url, _, member = file.url.partition("#")
    destination.parent.mkdir(parents=True, exist_ok=True)
    if not member:
        _download(url, destination, file.sha256, label=f"{spec.name}/{file.name}")
        return _verified(destination, file, spec)
    archive = cache_dir / "downloads" / Path(urllib.request.url2pathname(url.rsplit("/", 1)[-1])).name
    if not archive.is_file():
        _download(url, archive, None, label=archive.name)
    try:
        with zipfile.ZipFile(archive) as bundle, bundle.open(member) as source:
            _write_atomically(destination, source, file.sha256, label=f"{archive}#{member}")
    except KeyError:
        raise DataError(f"dataset '{spec.name}': archive {archive} has no member '{member}'") from None
    except zipfile.BadZipFile as error:
        archive.unlink(missing_ok=True)
        raise DataError(f"dataset '{spec.name}': downloaded archive {archive} is not a zip file "
                        f"({error}); it was removed, retry the download") from None
    return _verified(destination, file, spec)


def _download(url: str, destination: Path, sha256: str | None, *, label: str) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {label}") as bar:
                _write_atomically(destination, response, sha256, label=url, progress=bar.update)
    except OSError as error:
        raise DataError(f"download of {url} failed: {error}") from None


def _write_atomically(destination, source, sha256: str | None, *, label: str, progress=None) -> None:
    """Stream `source` into a temporary sibling of `destination`, verify, then rename into place."""
    digest = hashlib.sha256()
    handle, temporary = tempfile.mkstemp(prefix=destination.name + ".", suffix=".part", dir=destination.parent)
    try:
        with os.fdopen(handle, "wb") as sink:
            while chunk := source.read(_CHUNK):
                sink.write(chunk)
                digest.update(chunk)
                if progress is not None:
                    progress(len(chunk))
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DataError(f"{label}: SHA-256 {digest.hexdigest()} does not match the expected "
                            f"{sha256}; nothing was kept in the cache")
        os.chmod(temporary, 0o644)
        os.replace(temporary, destination)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)

