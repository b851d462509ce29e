"""Building blocks shared by the transformer backbones (the interface they implement is
`benchmark.interfaces.Backbone`: the trainer and the distillation objective rely on nothing else, so an
auxiliary loss can be attached to any block of any backbone without touching the model class)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.interfaces import PADDING


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture hyper-parameters common to SASRec and BERT4Rec."""

    dim: int = 64
    blocks: int = 2
    heads: int = 2
    dropout: float = 0.2
    max_len: int = 200

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"model: dim ({self.dim}) must be divisible by heads ({self.heads})")
        if min(self.dim, self.blocks, self.heads, self.max_len) < 1 or not 0 <= self.dropout < 1:
            raise ValueError(f"model: invalid architecture {asdict(self)}")


class Dropout(nn.Module):
    """Inverted dropout, distributed exactly like nn.Dropout, with the keep-mask drawn by torch.rand.

    On CPU torch.rand is about 3.5x faster than the bernoulli_ that nn.Dropout uses, and dropout
    masks are a sizeable share of a training step.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Zero each element with probability p and scale the rest by 1 / (1 - p) (training only)."""
        if not self.training or self.p == 0:
            return inputs
        keep = torch.rand(inputs.shape, device=inputs.device) >= self.p
        return inputs * keep * (1.0 / (1.0 - self.p))


class SelfAttention(nn.Module):
    """Multi-head attention with a boolean mask (True = may attend).

    Inference uses scaled_dot_product_attention; training with attention dropout spells the same
    computation out so the dropout mask comes from the faster `Dropout`.
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.output = nn.Linear(dim, dim)
        self.attention_dropout = Dropout(dropout)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """queries, keys: [B, L, dim]; mask: [B, 1, L, L]."""
        batch, length, dim = queries.shape
        head_dim = dim // self.heads
        q = self.query(queries).view(batch, length, self.heads, head_dim).transpose(1, 2)
        k, v = self.key_value(keys).view(batch, length, 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        if self.training and self.attention_dropout.p > 0:
            weights = (q @ k.transpose(-1, -2) * head_dim**-0.5).masked_fill(~mask, -torch.inf).softmax(-1)
            attended = self.attention_dropout(weights) @ v
        else:
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.output(attended.transpose(1, 2).reshape(batch, length, dim))


def attention_mask(inputs: torch.Tensor, *, causal: bool, padding_keys: bool = False) -> torch.Tensor:
    """[B, 1, L, L] mask: real positions attend to real positions (earlier ones only if causal), and to
    padding positions too with `padding_keys`.

    A padding position attends to itself only, which keeps its (discarded) output finite without
    letting it influence any real position.
    """
    length = inputs.shape[1]
    real_keys = (inputs != PADDING)[:, None, None, :] | padding_keys
    itself = torch.eye(length, dtype=torch.bool, device=inputs.device)
    allowed = real_keys | itself
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=inputs.device).tril()
    return allowed


class ItemAndPositionEmbedding(nn.Module):
    """Item embedding (row 0 = padding, plus any extra tokens) and learned positions aligned to the right.

    Positions count from the end of the (left-padded) window, so trimming leading padding columns
    from a batch never changes any position's embedding.
    """

    def __init__(self, n_tokens: int, dim: int, max_len: int, dropout: float, *, scale: bool):
        super().__init__()
        self.items = nn.Embedding(n_tokens, dim, padding_idx=PADDING)
        self.positions = nn.Embedding(max_len, dim)
        self.dropout = Dropout(dropout)
        self.scale = math.sqrt(dim) if scale else 1.0
        self.max_len = max_len

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs [B, L] (L <= max_len) -> embeddings [B, L, dim], zero at padding."""
        length = inputs.shape[1]
        positions = torch.arange(self.max_len - length, self.max_len, device=inputs.device)
        embedded = self.items(inputs) * self.scale + self.positions(positions)[None]
        return self.dropout(embedded) * (inputs != PADDING).unsqueeze(-1)


def truncated_normal_(module: nn.Module, std: float = 0.02) -> None:
    """BERT-style initialisation for Linear/Embedding weights (zero biases, unit LayerNorm)."""
    for child in module.modules():
        if isinstance(child, nn.Linear | nn.Embedding):
            nn.init.trunc_normal_(child.weight, std=std, a=-2 * std, b=2 * std)
            if isinstance(child, nn.Linear) and child.bias is not None:
                nn.init.zeros_(child.bias)
            if isinstance(child, nn.Embedding) and child.padding_idx is not None:
                with torch.no_grad():
                    child.weight[child.padding_idx].zero_()
        elif isinstance(child, nn.LayerNorm):
            nn.init.ones_(child.weight)
            nn.init.zeros_(child.bias)
