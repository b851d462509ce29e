"""Next-item losses, each a small function of hidden states, targets and the item embedding table.

All losses are computed only at positions whose target is not padding, so padding never contributes.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from benchmark.interfaces import PADDING

LossName = Literal["ce", "sampled_softmax", "bce", "gbce"]


def full_softmax_ce(hidden: torch.Tensor, targets: torch.Tensor, item_weights: torch.Tensor,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over the whole catalog at every position with a target ("SASRec+" / BERT4Rec).

    hidden [B, L, d]; targets [B, L] (0 = no loss); item_weights [n_items + 1, d] (row 0 = padding,
    never a class); bias [n_items + 1] or None. Numerically the same as F.cross_entropy on the full
    logits, but fused (see `_FullSoftmaxCE`), which matters when the catalog is large.
    """
    selected = targets != PADDING
    return _FullSoftmaxCE.apply(hidden[selected], item_weights, bias, targets[selected])


class _FullSoftmaxCE(torch.autograd.Function):
    """Mean softmax cross-entropy of `states @ weights.T + bias` against `targets`.

    As the loss is the end of the graph, the gradient (softmax - one-hot) is computed in place on the
    logits during the forward pass: no separate log-softmax output, no zero-filled gradient and no
    log-softmax backward pass over the [N, n_items + 1] matrix. The matrix products follow the
    autocast state (bf16 under `precision: bf16`); the softmax itself is always computed in float32.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, states: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor):
        logits = states @ weights.T if bias is None else torch.addmm(bias, states, weights.T)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        logits[:, PADDING] = -torch.inf
        # In-place softmax (several times faster than log_softmax on CPU for wide matrices).
        logits.sub_(logits.amax(dim=1, keepdim=True))
        target_logits = logits.gather(1, targets[:, None])
        logits.exp_()
        normalisers = logits.sum(dim=1, keepdim=True)
        loss = (normalisers.log() - target_logits).mean()
        gradient = logits.div_(normalisers)
        gradient[torch.arange(len(targets)), targets] -= 1.0
        ctx.has_bias = bias is not None
        ctx.save_for_backward(states, weights, gradient.to(torch.promote_types(states.dtype, weights.dtype)))
        return loss

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad_loss: torch.Tensor):
        states, weights, gradient = ctx.saved_tensors
        scale = grad_loss / gradient.shape[0]
        grad_states = (gradient @ weights.to(gradient.dtype)) * scale
        grad_weights = (gradient.T @ states.to(gradient.dtype)) * scale
        grad_bias = gradient.sum(0, dtype=grad_loss.dtype) * scale if ctx.has_bias else None
        return grad_states, grad_weights, grad_bias, None


def sampled_logits(hidden: torch.Tensor, targets: torch.Tensor, item_weights: torch.Tensor,
                   n_negatives: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of the positive and of `n_negatives` uniform negatives per position with a target.

    Returns (positive [N], negatives [N, n_negatives]); a negative equal to the positive is masked
    with -inf so it never counts as a negative.
    """
    selected = targets != PADDING
    states, positives = hidden[selected], targets[selected]
    n_items = item_weights.shape[0] - 1
    negatives = torch.randint(1, n_items + 1, (positives.shape[0], n_negatives), generator=generator).to(hidden.device)
    positive_scores = (states * item_weights[positives]).sum(-1)
    negative_scores = torch.einsum("nd,nkd->nk", states, item_weights[negatives])
    negative_scores = negative_scores.masked_fill(negatives == positives[:, None], -torch.inf)
    return positive_scores, negative_scores


def sampled_softmax(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy over the positive and the sampled negatives."""
    logits = torch.cat([positive[:, None], negative], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def bce(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with sampled negatives (original SASRec: one negative per position)."""
    return _binary(positive, negative, beta=1.0)


def gbce(positive: torch.Tensor, negative: torch.Tensor, n_items: int, t: float) -> torch.Tensor:
    """Generalised BCE (Petrov & Macdonald, RecSys 2023): the positive's probability is raised to
    beta = alpha * (t * (1 - 1/alpha) + 1/alpha), alpha = n_negatives / (n_items - 1), which corrects
    the overconfidence that negative sampling induces; t = 0 gives plain BCE, t = 1 full calibration.
    """
    alpha = negative.shape[1] / (n_items - 1)
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    return _binary(positive, negative, beta=beta)


def _binary(positive: torch.Tensor, negative: torch.Tensor, beta: float) -> torch.Tensor:
    valid = torch.isfinite(negative)
    negative_terms = F.softplus(torch.where(valid, negative, 0.0)) * valid
    return (beta * F.softplus(-positive) + negative_terms.sum(1)).mean()
