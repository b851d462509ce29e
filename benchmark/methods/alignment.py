"""LLMEmb's alignment loss (Liu et al., AAAI 2025): the adapted text embeddings of the items a batch
predicts are pulled towards a pre-trained SASRec's embeddings of the same items.

The loss is LLMEmb's soft-label contrastive loss between the two sets of item vectors X (the
recommender's) and Y (the adapted text): logits X·Yᵀ/τ, soft targets softmax((X·Xᵀ + Y·Yᵀ)/2 · τ) (the
temperature multiplies there, as in the LLMEmb code), cross-entropy in both directions, averaged. The
total loss is the model's own next-item loss + weight · alignment. The pre-trained table is a buffer of
the objective, so the trained model is a plain backbone with an adapted item table.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from baselines.llmemb import LLMEmbConfig
from benchmark.interfaces import PADDING, SequenceBatch
from benchmark.trainer import Objective


def soft_contrastive(x: torch.Tensor, y: torch.Tensor, temperature: float) -> torch.Tensor:
    """LLMEmb's soft-label contrastive loss between paired rows of x and y ([N, d] each)."""
    logits = x @ y.T / temperature
    targets = F.softmax((x @ x.T + y @ y.T) / 2 * temperature, dim=-1)
    forward = -(targets * F.log_softmax(logits, dim=-1)).sum(1)
    backward = -(targets.T * F.log_softmax(logits.T, dim=-1)).sum(1)
    return ((forward + backward) / 2).mean()


class AlignmentObjective(Objective):
    """Next-item loss + weight · alignment of the model's (adapted) item embeddings of the batch's target
    items with `teacher_items` ([n_items + 1, dim], row = item id)."""

    def __init__(self, teacher_items: torch.Tensor, config: LLMEmbConfig):
        super().__init__()
        self.config = config
        self.register_buffer("teacher", teacher_items.detach().float(), persistent=False)

    def forward(self, model: Any, batch: SequenceBatch, epoch: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """The combined loss and its parts."""
        rec = model.loss(model.hidden_states(batch.inputs)[-1], batch, generator)
        items = batch.targets[batch.targets != PADDING]
        if len(items) > self.config.align_positions:
            chosen = torch.randperm(len(items), generator=generator)[: self.config.align_positions]
            items = items[chosen.to(items.device)]
        align = soft_contrastive(self.teacher[items], model.embedding.items(items), self.config.align_temperature)
        loss = rec + self.config.align_weight * align
        return loss, {"loss": float(loss.detach()), "rec_loss": float(rec.detach()), "align_loss": float(align.detach())}
