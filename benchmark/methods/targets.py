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

Adding a target = one builder function + one row of `TARGETS` (the suite's `target:` values, the
ablation controls, the profile generation and the leaky mark all read the table).

Every target but `oracle` is built from the same training-period rows as the prompts (by default the
rows the evaluated model is fitted on).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmark import paths
from benchmark.files import atomic_output
from benchmark.profiles.encode import (
    SentenceEncoder,
    UserEmbeddings,
    encode_cached,
    reduce_dimension,
    user_embeddings,
)
from benchmark.profiles.pipeline import llm_profile_embeddings
from benchmark.profiles.prompts import PromptConfig, catalog_texts, item_lines, recent_history, template_for
from benchmark.profiles.settings import ProfileResources
from benchmark.profiles.store import Store
from benchmark.split import HistoryScope, Split


@dataclass(frozen=True)
class Target:
    """A distillation target: how to build it (split, resources, seed, progress -> one vector per user),
    whether it is made of LLM profiles (then every user's profile is generated through the profile
    cache before training), whether its vectors are permuted among users after the reduction (a control
    that differs from its source in assignment only), and whether it uses test-period information (leaky:
    reported, never ranked)."""

    build: Callable[[Split, ProfileResources, int, bool], UserEmbeddings]
    uses_profiles: bool = False
    permuted: bool = False
    leaky: bool = False


def _llm(split: Split, resources: ProfileResources, seed: int, progress: bool) -> UserEmbeddings:
    return llm_profile_embeddings(split, resources, progress=progress)


def _side_info(split: Split, resources: ProfileResources, seed: int, progress: bool) -> UserEmbeddings:
    texts = side_info_texts(split, resources.settings.prompts)
    return user_embeddings(split.log.n_users, texts, resources.encoder, resources.store, progress=progress)


def _side_info_mean(split: Split, resources: ProfileResources, seed: int, progress: bool) -> UserEmbeddings:
    return side_info_mean(split, resources.encoder, resources.store, resources.settings.prompts, progress=progress)


def _oracle(split: Split, resources: ProfileResources, seed: int, progress: bool) -> UserEmbeddings:
    texts = oracle_texts(split, resources.settings.prompts)
    return user_embeddings(split.log.n_users, texts, resources.encoder, resources.store, progress=progress)


def _random(split: Split, resources: ProfileResources, seed: int, progress: bool) -> UserEmbeddings:
    return random_targets(split, resources.encoder.dim, seed, resources.settings.prompts.history)


TARGETS: dict[str, Target] = {  # the first is the method's; `target: NAME` in a suite picks one
    "llm": Target(_llm, uses_profiles=True),
    "shuffled": Target(_llm, uses_profiles=True, permuted=True),
    "random": Target(_random),
    "side_info": Target(_side_info),
    "side_info_mean": Target(_side_info_mean),
    "oracle": Target(_oracle, leaky=True),
}
METHOD_TARGET = next(iter(TARGETS))
CONTROL_TARGETS = tuple(name for name in TARGETS if name != METHOD_TARGET)
LLM_TARGETS = tuple(name for name, target in TARGETS.items() if target.uses_profiles)


@dataclass(frozen=True)
class TargetConfig:
    """Which target a distilled model is pulled towards: the method's (`llm`) or a control's."""

    target: str = field(default=METHOD_TARGET, metadata={"omit_if_default": True})

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"distill: target must be one of {', '.join(TARGETS)}, got {self.target!r}")


def build_targets(split: Split, kind: str, resources: ProfileResources, seed: int, *,
                  progress: bool = True) -> UserEmbeddings:
    """The distillation targets of `kind` for every user of `split`, through the configured reduction
    (every kind alike, so that a control differs from the method in its content only)."""
    target = TARGETS[kind]
    embeddings = reduced(target.build(split, resources, seed, progress), split, resources)
    return shuffled(embeddings, seed) if target.permuted else embeddings


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
