"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item history, next-item
prediction by dot product with the item embedding table.

The block is the original one: the query is layer-normalised and is also the residual branch of the
attention; a point-wise feed-forward network of width `dim`; padding zeroed after every block; a final
layer norm. Losses: full-softmax cross-entropy at every position (default; "SASRec+", Klenitskiy &
Vasilev, RecSys 2023), sampled softmax, BCE with one negative (the original) and gBCE (Petrov &
Macdonald, RecSys 2023).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from baselines.losses import LossName, bce, full_softmax_ce, gbce, sampled_logits, sampled_softmax
from baselines.transformer import (
    Dropout,
    ItemAndPositionEmbedding,
    SelfAttention,
    TransformerConfig,
    attention_mask,
    truncated_normal_,
)
from benchmark.interfaces import PADDING, SequenceBatch


@dataclass(frozen=True)
class SASRecConfig(TransformerConfig):
    """SASRec architecture and loss."""

    loss: LossName = "ce"
    n_negatives: int = 256
    gbce_t: float = 0.75
    # Where the reference implementations differ (Kang & McAuley's and the distillation paper's official
    # code have neither): dropout on the attention block's output before the residual, and padding
    # positions hidden from attention as keys. Without the mask, every sequence is left-padded to
    # `max_len` and attends to its zero padding states, as the official code does.
    attention_output_dropout: bool = field(default=True, metadata={"omit_if_default": True})
    mask_padding_keys: bool = field(default=True, metadata={"omit_if_default": True})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss not in ("ce", "sampled_softmax", "bce", "gbce"):
            raise ValueError(f"sasrec: loss must be ce, sampled_softmax, bce or gbce, got {self.loss!r}")
        if self.n_negatives < 1:
            raise ValueError(f"sasrec: n_negatives must be >= 1, got {self.n_negatives}")


class SASRecBlock(nn.Module):
    """One SASRec block: LN(query) -> attention (+ query residual) -> LN -> FFN (+ residual)."""

    def __init__(self, dim: int, heads: int, dropout: float, output_dropout: bool = True):
        super().__init__()
        self.query_norm = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads, dropout)
        self.attention_dropout = Dropout(dropout if output_dropout else 0.0)
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), Dropout(dropout),
                                          nn.Linear(dim, dim), Dropout(dropout))

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """states [B, L, dim], mask [B, 1, L, L] -> [B, L, dim]."""
        query = self.query_norm(states)
        states = query + self.attention_dropout(self.attention(query, states, mask))
        normed = self.feed_forward_norm(states)
        return normed + self.feed_forward(normed)


class SASRec(nn.Module):
    """Self-attentive sequential recommender."""

    causal = True

    def __init__(self, n_items: int, config: SASRecConfig = SASRecConfig()):
        super().__init__()
        self.n_items, self.config, self.max_len = n_items, config, config.max_len
        self.embedding = ItemAndPositionEmbedding(n_items + 1, config.dim, config.max_len, config.dropout, scale=True)
        self.blocks = nn.ModuleList(SASRecBlock(config.dim, config.heads, config.dropout, config.attention_output_dropout)
                                    for _ in range(config.blocks))
        self.final_norm = nn.LayerNorm(config.dim)
        truncated_normal_(self)

    def hidden_states(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """Output of every block, then the final layer-normalised states; each [B, L, dim] (where padding
        keys are attended, computed over the window padded to its full width)."""
        width = inputs.shape[1]
        if not self.config.mask_padding_keys:
            inputs = F.pad(inputs, (self.max_len - width, 0), value=PADDING)
        real = (inputs != PADDING).unsqueeze(-1)
        mask = attention_mask(inputs, causal=self.causal, padding_keys=not self.config.mask_padding_keys)
        states, outputs = self.embedding(inputs), []
        for block in self.blocks:
            states = block(states, mask) * real
            outputs.append(states)
        outputs.append(self.final_norm(states) * real)
        return [output[:, -width:] for output in outputs]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Next-item scores [B, n_items + 1] after left-padded histories [B, L] (a plain scorer)."""
        last = self.hidden_states(inputs[:, -self.max_len:])[-1][:, -1]
        return last @ self.embedding.items.weight.T

    def scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """Same as calling the model."""
        return self(inputs)

    def training_batch(self, users: torch.Tensor, sequences: torch.Tensor, generator: torch.Generator) -> SequenceBatch:
        """Shifted-sequence task: predict item t+1 from items <= t. sequences: [B, L + 1], left-padded."""
        return SequenceBatch(users, sequences[:, :-1], sequences[:, 1:] * (sequences[:, :-1] != PADDING))

    def loss(self, final_hidden: torch.Tensor, batch: SequenceBatch, generator: torch.Generator) -> torch.Tensor:
        """The configured next-item loss at every position with a target."""
        weights = self.embedding.items.weight
        if self.config.loss == "ce":
            return full_softmax_ce(final_hidden, batch.targets, weights)
        n_negatives = 1 if self.config.loss == "bce" else self.config.n_negatives
        positive, negative = sampled_logits(final_hidden, batch.targets, weights, n_negatives, generator)
        if self.config.loss == "sampled_softmax":
            return sampled_softmax(positive, negative)
        if self.config.loss == "bce":
            return bce(positive, negative)
        return gbce(positive, negative, self.n_items, self.config.gbce_t)
