"""Generating user profiles with any backend, through the cache.

Each conversation's cache key hashes the backend id (model and weights), the rendered conversation
(template text and history) and the generation parameters, so a rerun costs nothing and a changed
prompt regenerates only what changed. Empty or failed generations are retried (with sampling, since a
greedy retry would repeat itself), then recorded as failed with the reason; such users simply have no
profile. A generation cut off by `max_new_tokens` keeps its complete sentences only.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from benchmark.profiles.backends import Backend, Conversation, GenerationParams
from benchmark.profiles.prompts import PromptConfig, aggregation_prompt, build_prompts, template_for
from benchmark.profiles.store import Store
from benchmark.profiles.worker import generate_with_retries, stored_row
from benchmark.split import Split

NOT_GENERATED = "not generated yet"  # why a user has no profile when generation stopped (or never ran)


def profile_key(backend_id: str, conversation: Conversation, params: GenerationParams) -> str:
    """Cache key of one generation."""
    payload = json.dumps({"backend": backend_id, "messages": list(conversation), "params": params.as_dict()},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class GenerationSummary:
    """Counts and throughput of one `generate_profiles` call."""

    users: int = 0
    cached: int = 0
    generated: int = 0
    failed: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        """One-line human summary."""
        rate = self.generated / self.seconds * 60 if self.seconds else 0.0
        tokens = self.completion_tokens / self.seconds if self.seconds else 0.0
        return (f"{self.users} users: {self.cached} cached, {self.generated} generated, {self.failed} failed; "
                f"{rate:.1f} profiles/min, {tokens:.1f} generated tokens/s over {self.seconds:.0f} s")


@dataclass(frozen=True)
class Profiles:
    """Final profile text per user (dense user id) and the reason for every user without one."""

    texts: dict[int, str]
    missing: dict[int, str]


def generate_profiles(split: Split, backend: Backend, store: Store, *, prompts: PromptConfig = PromptConfig(),
                      params: GenerationParams = GenerationParams(), block: int = 128, retries: int = 2,
                      users: Sequence[int] | None = None, progress: bool = True, generate: bool = True,
                      may_start: Callable[[float | None], bool] = lambda _: True) -> tuple[Profiles, GenerationSummary]:
    """Profiles for every user with a training-period history (or the given dense `users`).

    With `generate=False` only the cache is read (the backend's `id` is all that is used) and users
    without a cached profile are reported missing. `may_start` is asked before each block with the
    block's expected seconds (None before one was timed), e.g. a time budget; users whose block it
    refused are missing as `NOT_GENERATED`.
    """
    summary = GenerationSummary()
    started = time.perf_counter()
    user_prompts = build_prompts(split, prompts)
    if users is not None:
        wanted = set(users)
        user_prompts = [p for p in user_prompts if p.user in wanted]
    summary.users = len(user_prompts)
    chunk_conversations = [c for p in user_prompts for c in p.chunks]
    chunk_texts = _run(chunk_conversations, backend, store, params, block, retries, summary, progress, "profiles",
                       generate, may_start)
    texts, missing, aggregate_for = {}, {}, {}
    template = template_for(split.log.domain, prompts.templates)
    position = 0
    for prompt in user_prompts:
        outcomes = chunk_texts[position:position + len(prompt.chunks)]
        position += len(prompt.chunks)
        failed = [reason for ok, reason in outcomes if not ok]
        if failed:
            missing[prompt.user] = failed[0]
        elif len(outcomes) == 1:
            texts[prompt.user] = outcomes[0][1]
        else:
            aggregate_for[prompt.user] = aggregation_prompt(template, [t for _, t in outcomes])
    if aggregate_for:
        merged = _run(list(aggregate_for.values()), backend, store, params, block, retries, summary, progress,
                      "aggregate", generate, may_start)
        for user, (ok, value) in zip(aggregate_for, merged, strict=True):
            (texts if ok else missing)[user] = value
    summary.seconds = time.perf_counter() - started
    return Profiles(texts, missing), summary


def user_conversations(split: Split, backend_id: str, *, prompts: PromptConfig = PromptConfig(),
                       params: GenerationParams = GenerationParams()) -> dict[int, tuple[str, Conversation]]:
    """Per user (dense id): the cache key and the conversation of their profile.

    Only single-conversation profiles: the merge step of chunked histories needs the chunk profiles first.
    """
    if prompts.chunk_size is not None:
        raise ValueError("prompts: profile files hold whole-history conversations; chunk_size must be unset")
    return {p.user: (profile_key(backend_id, p.chunks[0], params), p.chunks[0]) for p in build_prompts(split, prompts)}


def pending_conversations(split: Split, backend_id: str, store: Store, *, prompts: PromptConfig = PromptConfig(),
                          params: GenerationParams = GenerationParams()) -> dict[str, Conversation]:
    """The profile conversations of `split` that the store lacks (or holds as failed), by cache key."""
    conversations = dict(user_conversations(split, backend_id, prompts=prompts, params=params).values())
    stored = store.profiles(list(conversations))
    return {key: c for key, c in conversations.items() if key not in stored or stored[key].status != "ok"}


def _run(conversations: list[Conversation], backend: Backend, store: Store, params: GenerationParams, block: int,
         retries: int, summary: GenerationSummary, progress: bool, label: str, generate: bool,
         may_start: Callable[[float | None], bool]) -> list[tuple[bool, str]]:
    """(ok, text-or-reason) per conversation, generating what the store lacks (failed rows are retried)
    block by block while `may_start` allows the next one."""
    keys = [profile_key(backend.id, c, params) for c in conversations]
    stored = store.profiles(keys)
    todo = [i for i, key in enumerate(keys) if key not in stored or stored[key].status != "ok"]
    todo.sort(key=lambda i: sum(len(m["content"]) for m in conversations[i]))  # similar lengths share batches
    summary.cached += len(conversations) - len(todo)

    def outcome(key: str) -> tuple[bool, str]:
        if key not in stored:
            return False, NOT_GENERATED
        return (True, stored[key].text) if stored[key].status == "ok" else (False, stored[key].reason)

    if not generate:
        return [outcome(key) for key in keys]
    bar = tqdm(total=len(todo), desc=f"{label} ({backend.id})", unit="profile", disable=not progress or not todo)
    generating_seconds = 0.0
    for start in range(0, len(todo), block):
        index = todo[start:start + block]
        if not may_start(generating_seconds / start * len(index) if start else None):
            break
        block_started = time.perf_counter()
        results = generate_with_retries([conversations[i] for i in index], backend, params, retries)
        block_seconds = time.perf_counter() - block_started
        generating_seconds += block_seconds
        seconds = block_seconds / max(len(index), 1)
        rows = [stored_row(keys[i], result, seconds, backend.id) for i, result in zip(index, results, strict=True)]
        for row in rows:
            summary.generated += row.status == "ok"
            summary.failed += row.status != "ok"
            summary.completion_tokens += row.completion_tokens
            if row.reason is not None:
                summary.failures[row.reason] = summary.failures.get(row.reason, 0) + 1
        store.put_profiles(rows)  # committed: a kill after this line loses nothing of this block
        stored.update({row.key: row for row in rows})
        bar.update(len(index))
        elapsed = bar.format_dict["elapsed"] or 1e-9
        bar.set_postfix_str(f"{summary.completion_tokens / elapsed:.0f} tok/s, {bar.n / elapsed * 60:.0f}/min")
    bar.close()
    return [outcome(key) for key in keys]
