"""Which generator, encoder and prompt produce the profiles a run distils from (plain data), the
`GENERATORS` table of LLM backends, and `ProfileResources`, which opens what the settings name.

Adding an LLM backend = its class in `backends.py` + one row of `GENERATORS` (`ProfileSettings`
validation, profile keys and `python -m benchmark.profiles --backend` all read the table). This module
is light (torch, the encoder and the prompt machinery are imported where used): command lines read the
table before parsing their arguments.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from benchmark.profiles.backends import (
    Backend,
    GenerationParams,
    LlamaCppBackend,
    OpenAIBackend,
    TransformersBackend,
)
from benchmark.profiles.weights import LLMS, materialize, source_for

if TYPE_CHECKING:
    from benchmark.profiles.encode import SentenceEncoder
    from benchmark.profiles.prompts import PromptConfig
    from benchmark.profiles.store import Store


@dataclass(frozen=True)
class Generator:
    """An LLM backend as settings name it: its identity without loading anything (what cached profiles are
    keyed by), how to load or connect to it (settings, cache folder, worker processes), and whether it is
    a server reached at `generator_url`."""

    identity: Callable[[ProfileSettings], str]
    load: Callable[[ProfileSettings, Path | None, int], Backend]
    served: bool = False


def _transformers_identity(settings: ProfileSettings) -> str:
    return TransformersBackend.identity(source_for(settings.generator, LLMS).label, settings.generator_dtype)


def _transformers(settings: ProfileSettings, cache_dir: Path | None, workers: int) -> Backend:
    return TransformersBackend.from_registry(settings.generator, cache_dir=cache_dir, dtype=settings.generator_dtype,
                                             batch_size=settings.generator_batch_size, workers=workers)


def _llamacpp(settings: ProfileSettings, cache_dir: Path | None, workers: int) -> Backend:
    source = source_for(settings.generator, LLMS)
    return LlamaCppBackend(materialize(source, cache_dir), source.label)


def _openai(settings: ProfileSettings, cache_dir: Path | None, workers: int) -> Backend:
    assert settings.generator_url is not None
    return OpenAIBackend(settings.generator_url, settings.generator, concurrency=settings.generator_concurrency,
                         api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
                         requests_per_second=settings.generator_requests_per_second)


GENERATORS: dict[str, Generator] = {  # the first is the default
    "transformers": Generator(_transformers_identity, _transformers),
    "llamacpp": Generator(lambda s: LlamaCppBackend.identity(source_for(s.generator, LLMS).label), _llamacpp),
    "openai": Generator(lambda s: OpenAIBackend.identity(str(s.generator_url), s.generator), _openai, served=True),
}


@dataclass(frozen=True)
class ProfileSettings:
    """Generator, encoder, prompt and decoding settings.

    `generator_backend`: `transformers` (in process; `generator` is a registered id or a local model
    directory), `llamacpp` (in process; a registered GGUF), or `openai`: any OpenAI-compatible server
    (vLLM, `transformers serve`, llama.cpp server) at `generator_url`, `generator` being the model name the
    server knows, queried `generator_concurrency` requests at a time. The backend, server and model are
    part of every profile's cache key, so profiles of different LLMs never mix.
    """

    generator: str = "smollm2-135m-instruct"
    generator_backend: str = field(default=next(iter(GENERATORS)), metadata={"omit_if_default": True})
    generator_url: str | None = field(default=None, metadata={"omit_if_default": True})
    generator_concurrency: int = field(default=8, metadata={"omit_if_default": True})
    generator_requests_per_second: float | None = field(default=None, metadata={"omit_if_default": True})
    generator_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    generator_batch_size: int = 32
    encoder: str = "all-minilm-l6-v2"
    style: Literal["short", "long"] = "short"
    max_items: int | None = 15  # None: the whole training-period history
    max_new_tokens: int = 112
    # the target pipeline after the encoder: none, PCA/UMAP to `target_dim` dimensions, or every dimension
    # standardised (zero mean, unit variance), each fitted on the training users only and not renormalised
    # (the official Beauty targets are UMAP-128)
    target_reduction: Literal["none", "pca", "umap", "standardise"] = field(default="none",
                                                                           metadata={"omit_if_default": True})
    target_dim: int = field(default=128, metadata={"omit_if_default": True})

    def __post_init__(self) -> None:
        if self.generator_backend not in GENERATORS:
            raise ValueError(f"profiles: generator_backend must be one of {', '.join(GENERATORS)}, "
                             f"got {self.generator_backend!r}")
        if GENERATORS[self.generator_backend].served != (self.generator_url is not None):
            served = ", ".join(name for name, generator in GENERATORS.items() if generator.served)
            raise ValueError("profiles: generator_url (e.g. http://127.0.0.1:8000/v1) is needed by, and only by, "
                             f"generator_backend: {served}")
        if self.target_reduction not in ("none", "pca", "umap", "standardise"):
            raise ValueError(f"profiles: target_reduction must be none, pca, umap or standardise, "
                             f"got {self.target_reduction!r}")
        if self.target_dim < 1:
            raise ValueError(f"profiles: target_dim must be >= 1, got {self.target_dim}")

    @property
    def prompts(self) -> PromptConfig:
        """The prompt configuration."""
        from benchmark.profiles.prompts import PromptConfig

        return PromptConfig(style=self.style, max_items=self.max_items)

    @property
    def generation(self) -> GenerationParams:
        """The decoding parameters."""
        return GenerationParams(max_new_tokens=self.max_new_tokens)

    @property
    def backend_id(self) -> str:
        """The generator's identity (what cached profiles are keyed by) without loading it."""
        return GENERATORS[self.generator_backend].identity(self)

    @property
    def identity(self) -> str:
        """Generator and encoder identity: what a distilling run's targets come from (enters run keys)."""
        return f"{self.backend_id}|{self.encoder}"


class ProfileResources:
    """The generator, encoder and profile store of one cache directory, each opened on first use; a context
    manager that closes what it opened (the store's database, the generator's worker processes).

    `generator_workers` is how many processes generate (a speed setting; not part of any key).
    """

    def __init__(self, settings: ProfileSettings, cache_dir: Path | None = None, generator_workers: int = 2):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.settings, self.cache_dir, self.generator_workers = settings, cache_dir, generator_workers
        self._store: Store | None = None
        self._encoder: SentenceEncoder | None = None
        self._backend: Backend | None = None

    def __enter__(self) -> ProfileResources:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    @property
    def store(self) -> Store:
        """The profile and embedding cache (opened on first use)."""
        if self._store is None:
            from benchmark.profiles.store import cache_store

            self._store = cache_store(self.cache_dir)
        return self._store

    def backend(self) -> Backend:
        """The generator, loaded or connected on first use (only needed when profiles are missing from the
        cache)."""
        if self._backend is None:
            self._backend = GENERATORS[self.settings.generator_backend].load(self.settings, self.cache_dir,
                                                                            self.generator_workers)
        return self._backend

    @property
    def encoder(self) -> SentenceEncoder:
        """The sentence encoder (loaded on first use)."""
        if self._encoder is None:
            from benchmark.profiles.encode import SentenceEncoder

            self._encoder = SentenceEncoder(self.settings.encoder)
        return self._encoder

    def close(self) -> None:
        """Close the store and stop the generator's worker processes (whatever was opened)."""
        if self._backend is not None and (close := getattr(self._backend, "close", None)) is not None:
            close()
        if self._store is not None:
            self._store.close()
        self._store = self._backend = None
