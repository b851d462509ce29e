"""LLMEmb (Liu et al., AAAI 2025): a SASRec with the model's architecture and training settings is trained
first (LLMEmb's pre-trained SASRec, checkpointed beside the run so a paused run does not train it again);
the model gets the adapted frozen item-text table and the alignment objective (`alignment.py`)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch
from torch import nn

from baselines.llmemb import LLMEmbConfig, apply_llmemb
from baselines.sasrec import SASRec, SASRecConfig
from baselines.transformer import TransformerConfig
from benchmark.backbone_fit import fit_backbone
from benchmark.methods.alignment import AlignmentObjective
from benchmark.methods.base import FitContext, Method, Setup
from benchmark.methods.textinit import item_text_vectors
from benchmark.profiles.settings import ProfileSettings
from benchmark.split import Split
from benchmark.trainer import TrainConfig, companion_checkpoint


def llmemb_setup(model: nn.Module, split: Split, architecture: Any, training: TrainConfig, configs: list[Any],
                 context: FitContext) -> Setup:
    """The pre-trained SASRec, the adapted text table and the alignment objective."""
    alignment, settings = configs
    vectors, encoder = item_text_vectors(split, settings, context)
    torch.manual_seed(context.seed)
    common = {f.name: getattr(architecture, f.name) for f in fields(TransformerConfig)}
    teacher = SASRec(split.log.n_items, SASRecConfig(**common))
    checkpoint = None if context.checkpoint is None else companion_checkpoint(context.checkpoint, "teacher")
    pretrained = fit_backbone(teacher, split, training, evaluation=context.evaluation, checkpoint=checkpoint,
                              progress=context.progress, device=context.device, pause_when=context.pause_when)
    apply_llmemb(model, vectors)
    objective = AlignmentObjective(teacher.embedding.items.weight[: split.log.n_items + 1].cpu(), alignment)
    return objective, {"item_text_encoder": encoder, "pretrained_sasrec_best_val": pretrained.best_metric,
                       "pretrained_sasrec_seconds": pretrained.seconds}


LLMEMB = Method((LLMEmbConfig, ProfileSettings), llmemb_setup)
