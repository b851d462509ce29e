"""BERT4Rec (Sun et al., CIKM 2019): a bidirectional transformer trained to recover masked items.

Training masks each real position with probability `mask_prob` (at least one per sequence) by a
[MASK] token and scores the masked positions with cross-entropy over the whole catalog. At inference
[MASK] is appended after the history and its output is scored. Blocks are post-norm BERT layers with
a GELU feed-forward of width 4 * dim; the output head is a dense + GELU + LayerNorm transform and a
dot product with the (tied) item embeddings plus a per-item bias, as in the original.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from baselines.losses import full_softmax_ce
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
class BERT4RecConfig(TransformerConfig):
    """BERT4Rec architecture and masking."""

    dropout: float = 0.1
    mask_prob: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.mask_prob < 1:
            raise ValueError(f"bert4rec: mask_prob must be in (0, 1), got {self.mask_prob}")


class BERTBlock(nn.Module):
    """Post-norm transformer layer: LN(x + attention(x)), then LN(x + FFN(x))."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.attention = SelfAttention(dim, heads, dropout)
        self.attention_norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), Dropout(dropout))
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.dropout = Dropout(dropout)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """states [B, L, dim], mask [B, 1, L, L] -> [B, L, dim]."""
        states = self.attention_norm(states + self.dropout(self.attention(states, states, mask)))
        return self.feed_forward_norm(states + self.feed_forward(states))


class BERT4Rec(nn.Module):
    """Bidirectional masked-item sequential recommender."""

    causal = False

    def __init__(self, n_items: int, config: BERT4RecConfig = BERT4RecConfig()):
        super().__init__()
        self.n_items, self.config, self.max_len = n_items, config, config.max_len
        self.mask_token = n_items + 1
        self.embedding = ItemAndPositionEmbedding(n_items + 2, config.dim, config.max_len, config.dropout, scale=False)
        self.embedding_norm = nn.LayerNorm(config.dim)
        self.blocks = nn.ModuleList(BERTBlock(config.dim, config.heads, config.dropout) for _ in range(config.blocks))
        self.head = nn.Sequential(nn.Linear(config.dim, config.dim), nn.GELU(), nn.LayerNorm(config.dim))
        self.output_bias = nn.Parameter(torch.zeros(n_items + 1))
        truncated_normal_(self)

    def hidden_states(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """Output of every block, then the final states (the last block's output); each [B, L, dim]."""
        real = (inputs != PADDING).unsqueeze(-1)
        mask = attention_mask(inputs, causal=self.causal)
        states, outputs = self.embedding_norm(self.embedding(inputs)) * real, []
        for block in self.blocks:
            states = block(states, mask) * real
            outputs.append(states)
        outputs.append(states)
        return outputs

    def _output_head(self, final: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(final), self.embedding.items.weight[: self.n_items + 1]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Next-item scores [B, n_items + 1]: [MASK] appended after the last `max_len - 1` items."""
        history = inputs[:, -(self.max_len - 1):]
        masked = torch.cat([history, torch.full_like(history[:, :1], self.mask_token)], dim=1)
        transformed, weights = self._output_head(self.hidden_states(masked)[-1][:, -1])
        return transformed @ weights.T + self.output_bias

    def scores(self, inputs: torch.Tensor) -> torch.Tensor:
        """Same as calling the model."""
        return self(inputs)

    def training_batch(self, users: torch.Tensor, sequences: torch.Tensor, generator: torch.Generator) -> SequenceBatch:
        """Cloze task on the last `max_len` items: mask real positions with probability `mask_prob`."""
        sequences = sequences[:, -self.max_len:]
        real = sequences != PADDING
        masked = (torch.rand(sequences.shape, generator=generator) < self.config.mask_prob) & real
        # every sequence gets at least one masked position: its last item
        none = ~masked.any(1)
        masked[none, -1] = True
        inputs = torch.where(masked, self.mask_token, sequences)
        return SequenceBatch(users, inputs, torch.where(masked, sequences, PADDING))

    def loss(self, final_hidden: torch.Tensor, batch: SequenceBatch, generator: torch.Generator) -> torch.Tensor:
        """Cross-entropy over all items at the masked positions."""
        transformed, weights = self._output_head(final_hidden)
        return full_softmax_ce(transformed, batch.targets, weights, self.output_bias)
