"""A split's LLM profiles and their embeddings, through the profile cache: what a distilling run, the
suite's profile phase and the profile analyses all start from."""

from __future__ import annotations

from collections.abc import Callable

from benchmark.profiles.backends import CacheOnly
from benchmark.profiles.encode import UserEmbeddings, user_embeddings
from benchmark.profiles.generate import NOT_GENERATED, GenerationSummary, Profiles, generate_profiles
from benchmark.profiles.settings import ProfileResources
from benchmark.split import Split


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


def llm_profile_embeddings(split: Split, resources: ProfileResources, *, progress: bool = True) -> UserEmbeddings:
    """LLM-profile embeddings, generating the profiles not cached yet."""
    profiles, _ = llm_profiles(split, resources, progress=progress)
    return profile_embeddings(split, profiles, resources, progress=progress)


def profile_embeddings(split: Split, profiles: Profiles, resources: ProfileResources, *,
                       progress: bool = True) -> UserEmbeddings:
    """The embeddings of profiles already at hand (through the embedding cache)."""
    return user_embeddings(split.log.n_users, profiles.texts, resources.encoder, resources.store, progress=progress)
