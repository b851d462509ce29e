"""Which generator, encoder and prompt produce the profiles a run distils from (plain data)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from benchmark.profiles.backends import (
    Backend,
    GenerationParams,
    LlamaCppBackend,
    OpenAIBackend,
    TransformersBackend,
)
from benchmark.profiles.encode import SentenceEncoder
from benchmark.profiles.prompts import PromptConfig
from benchmark.profiles.store import cache_store
from benchmark.profiles.weights import LLMS, materialize, source_for


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
    generator_backend: Literal["transformers", "llamacpp", "openai"] = field(
        default="transformers", metadata={"omit_if_default": True})
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
        if self.generator_backend not in ("transformers", "llamacpp", "openai"):
            raise ValueError(f"profiles: generator_backend must be transformers, llamacpp or openai, "
                             f"got {self.generator_backend!r}")
        if (self.generator_backend == "openai") != (self.generator_url is not None):
            raise ValueError("profiles: generator_url (e.g. http://127.0.0.1:8000/v1) is needed by, and only by, "
                             "generator_backend: openai")
        if self.target_reduction not in ("none", "pca", "umap", "standardise"):
            raise ValueError(f"profiles: target_reduction must be none, pca, umap or standardise, "
                             f"got {self.target_reduction!r}")
        if self.target_dim < 1:
            raise ValueError(f"profiles: target_dim must be >= 1, got {self.target_dim}")

    @property
    def prompts(self) -> PromptConfig:
        """The prompt configuration."""
        return PromptConfig(style=self.style, max_items=self.max_items)

    @property
    def generation(self) -> GenerationParams:
        """The decoding parameters."""
        return GenerationParams(max_new_tokens=self.max_new_tokens)

    @property
    def backend_id(self) -> str:
        """The generator's identity (what cached profiles are keyed by) without loading it."""
        if self.generator_backend == "openai":
            assert self.generator_url is not None
            return OpenAIBackend.identity(self.generator_url, self.generator)
        label = source_for(self.generator, LLMS).label
        if self.generator_backend == "llamacpp":
            return LlamaCppBackend.identity(label)
        return TransformersBackend.identity(label, self.generator_dtype)

    @property
    def identity(self) -> str:
        """Generator and encoder identity: what a distilling run's targets come from (enters run keys)."""
        return f"{self.backend_id}|{self.encoder}"


@dataclass
class ProfileResources:
    """Lazily opened generator, encoder and cache for one cache directory.

    `generator_workers` is how many processes generate (a speed setting; not part of any key).
    """

    settings: ProfileSettings
    cache_dir: Path | None = None
    generator_workers: int = 2

    def __post_init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.store = cache_store(self.cache_dir)
        self._encoder: SentenceEncoder | None = None

    def backend(self) -> Backend:
        """Load or connect to the generator (only needed when profiles are missing from the cache)."""
        settings = self.settings
        if settings.generator_backend == "openai":
            assert settings.generator_url is not None
            return OpenAIBackend(settings.generator_url, settings.generator,
                                 api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
                                 concurrency=settings.generator_concurrency,
                                 requests_per_second=settings.generator_requests_per_second)
        if settings.generator_backend == "llamacpp":
            source = source_for(settings.generator, LLMS)
            return LlamaCppBackend(materialize(source, self.cache_dir), source.label)
        return TransformersBackend.from_registry(settings.generator, cache_dir=self.cache_dir,
                                                 batch_size=settings.generator_batch_size,
                                                 dtype=settings.generator_dtype, workers=self.generator_workers)

    @property
    def encoder(self) -> SentenceEncoder:
        """The sentence encoder (loaded on first use)."""
        if self._encoder is None:
            self._encoder = SentenceEncoder(self.settings.encoder)
        return self._encoder
