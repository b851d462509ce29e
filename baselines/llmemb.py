"""LLMEmb-style item embedding initialisation (after Liu et al., AAAI 2025; simplified).

LLMEmb fine-tunes an LLM to embed items and adapts those embeddings for a sequential recommender.
Here, as a cheap and documented simplification: each item's text (title, year, genres/category) is
embedded with the same sentence encoder as the profiles, reduced to the model dimension with PCA
(fitted on the catalog's item texts; no interaction data involved), rescaled to the backbone's
initialisation scale, and copied into the item embedding table before training. No profile loss.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch import nn


def initialise_item_embeddings(items: nn.Embedding, text_vectors: np.ndarray, seed: int = 0) -> None:
    """Overwrite rows 1..n of `items` with PCA-reduced text vectors [n, encoder_dim] at the current scale."""
    dim = items.weight.shape[1]
    if text_vectors.shape[0] != items.weight.shape[0] - 1:
        raise ValueError(f"llmemb: {text_vectors.shape[0]} item texts for {items.weight.shape[0] - 1} items")
    components = min(dim, *text_vectors.shape)
    reduced = PCA(n_components=components, random_state=seed).fit_transform(text_vectors)
    if components < dim:
        reduced = np.pad(reduced, ((0, 0), (0, dim - components)))
    with torch.no_grad():
        scale = items.weight[1:].std().item()
        values = torch.as_tensor(reduced, dtype=items.weight.dtype)
        items.weight[1:] = values / values.std().clamp(min=1e-8) * scale
