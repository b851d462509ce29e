"""Which generator, encoder and prompt produce the profiles a run distils from (plain data)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from benchmark.profiles.backends import Backend, GenerationParams, TransformersBackend
from benchmark.profiles.encode import SentenceEncoder
from benchmark.profiles.prompts import PromptConfig
from benchmark.profiles.store import cache_store
from benchmark.profiles.weights import LLMS, source_for


@dataclass(frozen=True)
class ProfileSettings:
    """Generator (in-process transformers), encoder, prompt and decoding settings."""

    generator: str = "smollm2-135m-instruct"
    generator_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    generator_batch_size: int = 32
    encoder: str = "all-minilm-l6-v2"
    style: Literal["short", "long"] = "short"
    max_items: int | None = 15  # None: the whole training-period history
    max_new_tokens: int = 112
    # the target pipeline after the encoder: none, or PCA/UMAP to `target_dim` dimensions fitted on the
    # training users only, not renormalised (the official Beauty targets are UMAP-128)
    target_reduction: Literal["none", "pca", "umap"] = field(default="none", metadata={"omit_if_default": True})
    target_dim: int = field(default=128, metadata={"omit_if_default": True})

    def __post_init__(self) -> None:
        if self.target_reduction not in ("none", "pca", "umap"):
            raise ValueError(f"profiles: target_reduction must be none, pca or umap, got {self.target_reduction!r}")
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
        return TransformersBackend.identity(source_for(self.generator, LLMS).label, self.generator_dtype)

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
        """Load the generator (only needed when profiles are missing from the cache)."""
        return TransformersBackend.from_registry(self.settings.generator, cache_dir=self.cache_dir,
                                                 batch_size=self.settings.generator_batch_size,
                                                 dtype=self.settings.generator_dtype,
                                                 workers=self.generator_workers)

    @property
    def encoder(self) -> SentenceEncoder:
        """The sentence encoder (loaded on first use)."""
        if self._encoder is None:
            self._encoder = SentenceEncoder(self.settings.encoder)
        return self._encoder
