"""Item embeddings from item text: the text-initialisation control and LLMEmb's adapted table.

Each item's text (title, year, genres/category) is embedded with the sentence encoder of the profiles.

Text initialisation (`*-textinit`, a cheap control; `TextInitConfig`), in one of two modes:
- `init`: reduced to the model dimension with PCA (fitted on the catalog's item texts; no interaction
  data involved), rescaled to the backbone's initialisation scale and copied into the item embedding
  table, which then trains as usual;
- `frozen`: kept frozen, with the item embedding table computed by a trainable linear adapter from
  the text vectors (extra tokens such as BERT4Rec's [MASK] keep a trainable row).

LLMEmb (Liu et al., AAAI 2025; `*-llmemb`, `LLMEmbConfig`): the frozen text table feeds a trainable
two-layer adapter (text dim -> half of it -> model dim, no activation between, as in the LLMEmb code),
and training adds an alignment loss towards a pre-trained SASRec's item embeddings (see
`benchmark/methods/alignment.py`). LLMEmb's first stage, fine-tuning an LLM into an item encoder, is replaced by
the sentence encoder. No profile loss in any of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.interfaces import PADDING


@dataclass(frozen=True)
class TextInitConfig:
    """How item-text embeddings enter the item embedding table of the text-initialisation control (the
    field keeps the name its published runs were keyed with)."""

    llmemb_mode: Literal["init", "frozen"] = "init"

    def __post_init__(self) -> None:
        if self.llmemb_mode not in ("init", "frozen"):
            raise ValueError(f"textinit: llmemb_mode must be init or frozen, got {self.llmemb_mode!r}")


@dataclass(frozen=True)
class LLMEmbConfig:
    """LLMEmb's adapter and alignment loss (defaults: LLMEmb's temperature 2 and weight 0.01).
    `align_positions` caps the target positions per batch the alignment loss compares (its cost grows
    with their square; LLMEmb compares every position of a batch on a GPU)."""

    align_weight: float = 0.01
    align_temperature: float = 2.0
    align_positions: int = 1024

    def __post_init__(self) -> None:
        if self.align_weight < 0 or self.align_temperature <= 0 or self.align_positions < 2:
            raise ValueError(f"llmemb: align_weight >= 0, align_temperature > 0 and align_positions >= 2 needed, "
                             f"got {self.align_weight}, {self.align_temperature}, {self.align_positions}")


def initialise_item_embeddings(items: nn.Embedding, text_vectors: np.ndarray, seed: int = 0) -> None:
    """Overwrite rows 1..n of `items` with PCA-reduced text vectors [n, encoder_dim] at the current scale."""
    dim = items.weight.shape[1]
    _check_rows(items.weight.shape[0], text_vectors)
    components = min(dim, *text_vectors.shape)
    from sklearn.decomposition import PCA  # here, not at import: scikit-learn takes a second to load

    reduced = PCA(n_components=components, random_state=seed).fit_transform(text_vectors)
    if components < dim:
        reduced = np.pad(reduced, ((0, 0), (0, dim - components)))
    with torch.no_grad():
        scale = items.weight[1:].std().item()
        values = torch.as_tensor(reduced, dtype=items.weight.dtype)
        items.weight[1 : 1 + len(values)] = values / values.std().clamp(min=1e-8) * scale


class AdaptedItemEmbedding(nn.Module):
    """Item embeddings = adapter(frozen text vectors); a drop-in for nn.Embedding (`weight`, forward)."""

    def __init__(self, text_vectors: np.ndarray, n_tokens: int, dim: int, hidden: int | None = None):
        super().__init__()
        _check_rows(n_tokens, text_vectors)
        self.register_buffer("text", torch.as_tensor(text_vectors, dtype=torch.float32))
        width = text_vectors.shape[1]
        self.adapter = nn.Linear(width, dim) if hidden is None else \
            nn.Sequential(nn.Linear(width, hidden), nn.Linear(hidden, dim))
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


def apply_text_init(model: nn.Module, text_vectors: np.ndarray, config: TextInitConfig, seed: int = 0) -> None:
    """Put item-text knowledge into `model.embedding.items` according to `config`."""
    _check_items(model, text_vectors)
    items = model.embedding.items
    if config.llmemb_mode == "init":
        initialise_item_embeddings(items, text_vectors, seed)
    else:
        model.embedding.items = AdaptedItemEmbedding(text_vectors, items.weight.shape[0], items.weight.shape[1])


def apply_llmemb(model: nn.Module, text_vectors: np.ndarray) -> None:
    """Replace `model.embedding.items` by LLMEmb's table: frozen text vectors through a two-layer adapter."""
    _check_items(model, text_vectors)
    rows, dim = model.embedding.items.weight.shape
    model.embedding.items = AdaptedItemEmbedding(text_vectors, rows, dim, hidden=text_vectors.shape[1] // 2)


def _check_items(model: nn.Module, text_vectors: np.ndarray) -> None:
    if len(text_vectors) != model.n_items:
        raise ValueError(f"llmemb: {len(text_vectors)} item texts for {model.n_items} items")


def _check_rows(n_tokens: int, text_vectors: np.ndarray) -> None:
    if not 0 < len(text_vectors) <= n_tokens - 1:
        raise ValueError(f"llmemb: {len(text_vectors)} item texts for a table of {n_tokens} rows")
