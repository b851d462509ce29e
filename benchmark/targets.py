"""Distillation targets per user: the LLM profile embedding and the controls that test it.

- `llm`: the sentence embedding of the user's LLM profile (generated from training-period history).
- `shuffled`: the same embeddings permuted across users (same distribution, wrong user).
- `random`: Gaussian vectors of the same dimension, unit norm like the (normalised) sentence embeddings.
- `side_info`: the encoder's embedding of the concatenated raw item metadata of the history the
  prompt would have shown (no LLM).
- `side_info_mean`: the mean of the history items' text embeddings (no LLM).
- `oracle` (LEAKY, an upper bound, never a method): the encoder's embedding of the text of the items each
  user interacts with AFTER the cutoff, the test period itself. If distilling even this does not help,
  the distillation channel is the limit, not the LLM.

Every target but `oracle` is built from the same training-period rows as the prompts (by default the
rows the evaluated model is fitted on).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import pandas as pd

from benchmark import paths
from benchmark.files import atomic_output
from benchmark.profile_settings import ProfileResources
from benchmark.profiles.backends import CacheOnly
from benchmark.profiles.encode import (
    SentenceEncoder,
    UserEmbeddings,
    encode_cached,
    reduce_dimension,
    user_embeddings,
)
from benchmark.profiles.generate import NOT_GENERATED, GenerationSummary, Profiles, generate_profiles
from benchmark.profiles.prompts import PromptConfig, catalog_texts, item_lines, recent_history, template_for
from benchmark.profiles.store import Store
from benchmark.split import HistoryScope, Split

DistillTarget = Literal["llm", "shuffled", "random", "side_info", "side_info_mean", "oracle"]
DISTILL_TARGETS: tuple[str, ...] = get_args(DistillTarget)
LLM_TARGETS = ("llm", "shuffled")  # the targets made of LLM profiles


@dataclass(frozen=True)
class TargetConfig:
    """Which target a distilled model is pulled towards: the method's (`llm`) or a control's."""

    target: DistillTarget = field(default="llm", metadata={"omit_if_default": True})

    def __post_init__(self) -> None:
        if self.target not in DISTILL_TARGETS:
            raise ValueError(f"distill: target must be one of {', '.join(DISTILL_TARGETS)}, got {self.target!r}")


def build_targets(split: Split, kind: DistillTarget, resources: ProfileResources, seed: int, *,
                  progress: bool = True) -> UserEmbeddings:
    """The distillation targets of `kind` for every user of `split`, through the configured reduction
    (every kind alike, so that a control differs from the method in its content only)."""
    settings = resources.settings
    if kind == "side_info":
        texts = side_info_texts(split, settings.prompts)
        embeddings = user_embeddings(split.log.n_users, texts, resources.encoder, resources.store, progress=progress)
    elif kind == "side_info_mean":
        embeddings = side_info_mean(split, resources.encoder, resources.store, settings.prompts, progress=progress)
    elif kind == "oracle":
        texts = oracle_texts(split, settings.prompts)
        embeddings = user_embeddings(split.log.n_users, texts, resources.encoder, resources.store, progress=progress)
    elif kind == "random":
        embeddings = random_targets(split, resources.encoder.dim, seed, settings.prompts.history)
    else:
        embeddings = llm_profile_targets(split, resources, progress=progress)
    embeddings = reduced(embeddings, split, resources)
    return shuffled(embeddings, seed) if kind == "shuffled" else embeddings


def reduced(embeddings: UserEmbeddings, split: Split, resources: ProfileResources) -> UserEmbeddings:
    """`embeddings` through the settings' reduction, fitted on the users the model is fitted on; the
    result is cached on disk (a UMAP fit takes minutes and every seed and control reuses it)."""
    settings = resources.settings
    if settings.target_reduction == "none":
        return embeddings
    fit_users = np.unique(split.log.user[split.validation.train_rows])
    digest = hashlib.sha256()
    for part in (embeddings.matrix, embeddings.has_target, fit_users):
        digest.update(np.ascontiguousarray(part).tobytes())
    digest.update(f"{settings.target_reduction}{settings.target_dim}".encode())
    path = paths.cache_dir(resources.cache_dir) / "targets" / f"{digest.hexdigest()[:24]}.npy"
    label = f"{embeddings.encoder}+{settings.target_reduction}{settings.target_dim}"
    if path.is_file():
        return UserEmbeddings(np.load(path), embeddings.has_target, label)
    result = reduce_dimension(embeddings, fit_users, settings.target_dim, settings.target_reduction)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        np.save(handle, result.matrix)
    return result


def llm_profiles(split: Split, resources: ProfileResources, *, progress: bool = True,
                 may_start: Callable[[float | None], bool] = lambda _: True) -> tuple[Profiles, GenerationSummary]:
    """The split's LLM profiles, generating the uncached ones while `may_start` allows the next block (see
    `generate_profiles`); the generator is loaded only if some profile is not cached yet."""
    settings = resources.settings
    cached = generate_profiles(split, CacheOnly(settings.backend_id), resources.store, prompts=settings.prompts,
                               params=settings.generation, generate=False, progress=False)
    if NOT_GENERATED not in cached[0].missing.values():
        return cached
    return generate_profiles(split, resources.backend(), resources.store, prompts=settings.prompts,
                             params=settings.generation, progress=progress, may_start=may_start)


def llm_profile_targets(split: Split, resources: ProfileResources, *, progress: bool = True) -> UserEmbeddings:
    """LLM-profile embeddings, generating the profiles not cached yet."""
    profiles, _ = llm_profiles(split, resources, progress=progress)
    return profile_embeddings(split, profiles, resources, progress=progress)


def profile_embeddings(split: Split, profiles: Profiles, resources: ProfileResources, *,
                       progress: bool = True) -> UserEmbeddings:
    """The embeddings of profiles already at hand (through the embedding cache)."""
    return user_embeddings(split.log.n_users, profiles.texts, resources.encoder, resources.store, progress=progress)


def shuffled(embeddings: UserEmbeddings, seed: int) -> UserEmbeddings:
    """Profiles permuted among the users that have one."""
    rows = np.flatnonzero(embeddings.has_target)
    permuted = embeddings.matrix.copy()
    permuted[rows] = embeddings.matrix[np.random.default_rng(seed).permutation(rows)]
    return UserEmbeddings(permuted, embeddings.has_target, f"{embeddings.encoder}+shuffled{seed}")


def random_targets(split: Split, dim: int, seed: int, history: HistoryScope = "fit") -> UserEmbeddings:
    """Gaussian vectors scaled to unit norm (like normalised sentence embeddings), one per user with a
    training-period history; no LLM and no data involved beyond who has a history."""
    has = np.bincount(split.histories(history)["user"].to_numpy(), minlength=split.log.n_users) > 0
    matrix = np.random.default_rng(seed).normal(size=(split.log.n_users, dim)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix[~has] = 0.0
    return UserEmbeddings(matrix, has, f"random{seed}-dim{dim}")


def side_info_texts(split: Split, prompts: PromptConfig = PromptConfig()) -> dict[int, str]:
    """Per user: the raw metadata lines of the training-period items a prompt would show, joined."""
    return joined_item_lines(split, recent_history(split, prompts), prompts)


def joined_item_lines(split: Split, rows: pd.DataFrame, prompts: PromptConfig) -> dict[int, str]:
    """Per user in `rows` (log rows, in order): their items' metadata lines as a prompt renders them, joined."""
    template = template_for(split.log.domain, prompts.templates)
    lines = np.asarray(item_lines(split.log, rows, template.item_fields), dtype=object)
    return {int(user): "\n".join(line[2:] for line in lines[index])
            for user, index in rows.groupby("user", sort=True).indices.items()}


def oracle_texts(split: Split, prompts: PromptConfig = PromptConfig()) -> dict[int, str]:
    """Per user with interactions after the cutoff: the metadata lines of those test-period items, joined
    (LEAKY by construction: the `oracle` upper bound)."""
    frame = split.log.frame()
    return joined_item_lines(split, frame[frame["timestamp"] > split.cutoff], prompts)


def side_info_mean(split: Split, encoder: SentenceEncoder, store: Store, prompts: PromptConfig = PromptConfig(),
                   *, progress: bool = True) -> UserEmbeddings:
    """Per user: the mean embedding of their training-period items' text lines."""
    log = split.log
    item_vectors = encode_cached(encoder, catalog_texts(log, prompts.templates), store, progress=progress)
    histories = recent_history(split, prompts)
    sums = np.zeros((log.n_users, item_vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, histories["user"].to_numpy(), item_vectors[histories["item"].to_numpy() - 1])
    counts = np.bincount(histories["user"].to_numpy(), minlength=log.n_users)
    has = counts > 0
    sums[has] /= counts[has, None]
    return UserEmbeddings(sums.astype(np.float32), has, f"{encoder.id}+item-mean")
