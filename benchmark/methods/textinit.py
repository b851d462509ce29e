"""Text-initialised item embeddings (the side-information control of LLMEmb-style methods): the item
table starts from (or is adapted from) every item's text embedding; the backbone's own loss."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from baselines.llmemb import TextInitConfig, apply_text_init
from benchmark.methods.base import FitContext, Method, Setup
from benchmark.profiles.encode import encode_cached
from benchmark.profiles.prompts import catalog_texts
from benchmark.profiles.settings import ProfileResources, ProfileSettings
from benchmark.split import Split
from benchmark.trainer import TrainConfig


def item_text_vectors(split: Split, settings: ProfileSettings, context: FitContext) -> tuple[np.ndarray, str]:
    """Every item's text embedded by the settings' encoder (cached), and the encoder's identity."""
    with ProfileResources(settings, context.cache_dir) as resources:
        texts = catalog_texts(split.log, settings.prompts.templates)
        return encode_cached(resources.encoder, texts, resources.store, progress=context.progress), resources.encoder.id


def text_init_setup(model: nn.Module, split: Split, architecture: Any, training: TrainConfig, configs: list[Any],
                    context: FitContext) -> Setup:
    """Item embeddings initialised (or adapted) from item text; the model's own loss."""
    initialisation, settings = configs
    vectors, encoder = item_text_vectors(split, settings, context)
    apply_text_init(model, vectors, initialisation, context.seed)
    return None, {"item_text_encoder": encoder}


TEXT_INIT = Method((TextInitConfig, ProfileSettings), text_init_setup)
