"""Model registry: name -> how to fit it on a split. Adding a model = one module + one entry here.

A fitted model is a callable mapping left-padded input sequences [B, max_len] to scores over the
whole catalog [B, n_items + 1] (column 0 = padding), with a `max_len` attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from baselines.popularity import most_pop, recent_pop
from benchmark.split import Split


class Recommender(Protocol):
    """What evaluation needs from any fitted model."""

    max_len: int

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor: ...


FitFunction = Callable[[Split, dict[str, Any], int], Recommender]


def _fit_most_pop(split: Split, params: dict[str, Any], seed: int) -> Recommender:
    return most_pop(split.log, split.train_rows, **params)


def _fit_recent_pop(split: Split, params: dict[str, Any], seed: int) -> Recommender:
    return recent_pop(split.log, split.train_rows, **params)


MODELS: dict[str, FitFunction] = {
    "mostpop": _fit_most_pop,
    "recentpop": _fit_recent_pop,
}


def get_model(name: str) -> FitFunction:
    """The fit function of a registered model; the error lists the registered names."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model '{name}'; registered: {sorted(MODELS)}") from None
