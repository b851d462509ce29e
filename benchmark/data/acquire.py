"""Find a dataset's files: explicit path, local mirror, download cache, or HTTP(S) download.

Every file is checked against its pinned SHA-256 wherever it comes from. Downloads stream into a
temporary file next to the destination and are renamed into place only after verification, so a
half-written or corrupt file never looks complete.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

from benchmark.data.spec import DataFile, DatasetSpec
from benchmark.errors import DataError
from benchmark.files import archive_cache_path, download, extract_member, sha256_of


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
    if not member:
        download(url, destination, file.sha256, label=f"{spec.name}/{file.name}")
        return _verified(destination, file, spec)
    archive = archive_cache_path(cache_dir, url)
    if not archive.is_file():
        download(url, archive, None, label=archive.name)
    try:
        extract_member(archive, member, destination, file.sha256)
    except DataError as error:
        raise DataError(f"dataset '{spec.name}': {error}") from None
    return _verified(destination, file, spec)
