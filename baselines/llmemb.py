"""LLMEmb-style item embeddings from item text (after Liu et al., AAAI 2025; simplified).

LLMEmb fine-tunes an LLM to embed items and adapts those embeddings for a sequential recommender.
Here, as a cheap and documented simplification, each item's text (title, year, genres/category) is
embedded with the same sentence encoder as the profiles (no LLM fine-tuning), and then either

- `init`: reduced to the model dimension with PCA (fitted on the catalog's item texts; no interaction
  data involved), rescaled to the backbone's initialisation scale and copied into the item embedding
  table, which then trains as usual; or
- `frozen`: kept frozen, with the item embedding table computed by a trainable linear adapter from
  the text vectors (extra tokens such as BERT4Rec's [MASK] keep a trainable row). The model then
  carries the text vectors and the adapter instead of a free embedding table.

No profile loss in either mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from torch import nn

from benchmark.interfaces import PADDING


@dataclass(frozen=True)
class LLMEmbConfig:
    """How item-text embeddings enter the item embedding table."""

    llmemb_mode: Literal["init", "frozen"] = "init"

    def __post_init__(self) -> None:
        if self.llmemb_mode not in ("init", "frozen"):
            raise ValueError(f"llmemb: llmemb_mode must be init or frozen, got {self.llmemb_mode!r}")


def initialise_item_embeddings(items: nn.Embedding, text_vectors: np.ndarray, seed: int = 0) -> None:
    """Overwrite rows 1..n of `items` with PCA-reduced text vectors [n, encoder_dim] at the current scale."""
    dim = items.weight.shape[1]
    _check_rows(items.weight.shape[0], text_vectors)
    components = min(dim, *text_vectors.shape)
    reduced = PCA(n_components=components, random_state=seed).fit_transform(text_vectors)
    if components < dim:
        reduced = np.pad(reduced, ((0, 0), (0, dim - components)))
    with torch.no_grad():
        scale = items.weight[1:].std().item()
        values = torch.as_tensor(reduced, dtype=items.weight.dtype)
        items.weight[1 : 1 + len(values)] = values / values.std().clamp(min=1e-8) * scale


class AdaptedItemEmbedding(nn.Module):
    """Item embeddings = adapter(frozen text vectors); a drop-in for nn.Embedding (`weight`, forward)."""

    def __init__(self, text_vectors: np.ndarray, n_tokens: int, dim: int):
        super().__init__()
        _check_rows(n_tokens, text_vectors)
        self.register_buffer("text", torch.as_tensor(text_vectors, dtype=torch.float32))
        self.adapter = nn.Linear(text_vectors.shape[1], dim)
        self.extra = nn.Parameter(torch.randn(n_tokens - 1 - len(text_vectors), dim) * 0.02)
        self.padding_idx = PADDING

    @property
    def weight(self) -> torch.Tensor:
        """[n_tokens, dim]: zero padding row, adapted item rows, trainable extra-token rows."""
        items = self.adapter(self.text)
        return torch.cat([items.new_zeros(1, items.shape[1]), items, self.extra])

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Look up rows like nn.Embedding."""
        return F.embedding(inputs, self.weight, padding_idx=PADDING)


def apply_llmemb(model: nn.Module, text_vectors: np.ndarray, config: LLMEmbConfig, seed: int = 0) -> None:
    """Put item-text knowledge into `model.embedding.items` according to `config`."""
    if len(text_vectors) != model.n_items:
        raise ValueError(f"llmemb: {len(text_vectors)} item texts for {model.n_items} items")
    items = model.embedding.items
    if config.llmemb_mode == "init":
        initialise_item_embeddings(items, text_vectors, seed)
    else:
        model.embedding.items = AdaptedItemEmbedding(text_vectors, items.weight.shape[0], items.weight.shape[1])


def _check_rows(n_tokens: int, text_vectors: np.ndarray) -> None:
    if not 0 < len(text_vectors) <= n_tokens - 1:
        raise ValueError(f"llmemb: {len(text_vectors)} item texts for a table of {n_tokens} rows")
