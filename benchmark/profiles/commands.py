"""The bodies of `python -m benchmark.profiles` (see its `__main__` for the commands and options): loading
the split, the backend and the profile store, then generating, showing, counting, exporting, publishing
or importing profiles. Kept apart from the argument parser so that `--help` needs none of this."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from benchmark import paths
from benchmark.data.dataset import load_dataset
from benchmark.data.preprocess import PreprocessConfig
from benchmark.errors import DataError
from benchmark.profiles.backends import CacheOnly, GenerationParams
from benchmark.profiles.generate import generate_profiles, pending_conversations, user_conversations
from benchmark.profiles.lines import (
    JOBS_FORMAT,
    PUBLISHED_FORMAT,
    RESULTS_FORMAT,
    published_files,
    read_lines,
    write_lines,
)
from benchmark.profiles.prompts import PromptConfig, build_prompts
from benchmark.profiles.settings import ProfileResources, ProfileSettings
from benchmark.profiles.stats import profile_stats
from benchmark.profiles.store import StoredProfile, cache_store
from benchmark.profiles.weights import LLMS, source_for
from benchmark.split import Split, SplitConfig


def resources_for(args: argparse.Namespace) -> ProfileResources:
    """The generator named on the command line and the profile store of its cache folder."""
    settings = ProfileSettings(generator=args.model, generator_backend=args.backend, generator_url=args.base_url,
                               generator_concurrency=args.concurrency,
                               generator_requests_per_second=args.requests_per_second,
                               generator_dtype=args.dtype, generator_batch_size=args.batch_size)
    return ProfileResources(settings, args.cache_dir, args.workers)


def split_for(args: argparse.Namespace) -> Split:
    """Load the dataset and apply the split given on the command line."""
    log = load_dataset(args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir,
                       preprocessing=PreprocessConfig(args.k_core, args.k_core))
    return SplitConfig(quantile=args.quantile, target=args.target, validation=args.validation,
                       validation_fraction=args.validation_fraction).apply(log)


def run(args: argparse.Namespace) -> int:
    """Do the command that `args` (parsed by `benchmark.profiles.__main__`) names; returns the exit code."""
    if args.command == "import-results":
        return _import_results(args)
    split = split_for(args)
    prompts = PromptConfig(style=args.style, max_items=getattr(args, "max_items", PromptConfig.max_items),
                           chunk_size=args.chunk_size, history=args.history)
    params = GenerationParams(max_new_tokens=getattr(args, "max_new_tokens", GenerationParams.max_new_tokens))
    if args.command == "export-jobs":
        return _export_jobs(args, split, prompts, params)
    if args.command == "publish":
        return _publish(args, split, prompts, params)
    users = None
    if args.command == "show":
        matches = [i for i, u in enumerate(split.log.user_ids) if str(u) == args.user]
        if not matches:
            raise DataError(f"user '{args.user}' is not in dataset '{split.log.name}' after preprocessing")
        if not any(p.user == matches[0] for p in build_prompts(split, prompts)):
            raise DataError(f"user '{args.user}' has no interactions in the '{args.history}' history of this split "
                            f"(q={args.quantile}), so no profile")
        users = matches
    elif args.limit:
        users = [p.user for p in build_prompts(split, prompts)[: args.limit]]
    generating = args.command != "stats"
    with resources_for(args) as resources:
        backend = resources.backend() if generating else CacheOnly(resources.settings.backend_id)
        profiles, summary = generate_profiles(split, backend, resources.store, prompts=prompts, params=params,
                                              users=users, progress=args.command == "generate", generate=generating)
    if args.command == "generate":
        print(summary.line())
        for reason, count in summary.failures.items():
            print(f"  failed ({count}): {reason}")
    elif args.command == "show":
        user = users[0]
        prompt = next(p for p in build_prompts(split, prompts) if p.user == user)  # exists: checked above
        for chunk in prompt.chunks:
            print(chunk[-1]["content"])
        print("\nPROFILE:", profiles.texts.get(user) or f"(none: {profiles.missing.get(user)})")
    else:
        print(json.dumps(profile_stats(split, profiles.texts, profiles.missing, args.history), indent=2))
    return 0


def _export_jobs(args: argparse.Namespace, split: Split, prompts: PromptConfig, params: GenerationParams) -> int:
    if args.backend != "transformers":
        raise DataError("export-jobs: jobs files are for the transformers backend (benchmark.profiles.worker)")
    with resources_for(args) as resources:
        backend_id = resources.settings.backend_id
        pending = pending_conversations(split, backend_id, resources.store, prompts=prompts, params=params)
    header = {"format": JOBS_FORMAT, "backend": backend_id, "model": source_for(args.model, LLMS).label,
              "dtype": args.dtype, "params": params.as_dict(), "dataset": split.log.name}
    write_lines(args.out, header, ({"key": key, "messages": list(c)} for key, c in pending.items()))
    print(f"{args.out}: {len(pending)} conversations to generate")
    return 0


def _publish(args: argparse.Namespace, split: Split, prompts: PromptConfig, params: GenerationParams) -> int:
    with resources_for(args) as resources:
        backend_id = resources.settings.backend_id
        conversations = user_conversations(split, backend_id, prompts=prompts, params=params)
        stored = resources.store.profiles([key for key, _ in conversations.values()])
    missing = [user for user, (key, _) in conversations.items() if key not in stored]
    if missing and not args.partial:
        raise DataError(f"publish: {len(missing)} of {len(conversations)} users have no cached profile "
                        f"(run generate first, or publish with --partial)")
    earlier = published_keys(paths.published_profiles_dir(), leaving_out=args.out) if args.new_only else {}
    header = {"format": PUBLISHED_FORMAT, "backend": backend_id, "dataset": split.log.name,
              "split": split.config.as_dict(), "prompts": {k: v for k, v in asdict(prompts).items() if k != "templates"},
              "generation": params.as_dict(), "generated_on": args.generated_on, "users": len(conversations),
              "missing": len(missing), "in_earlier_files": sorted({earlier[key] for key, _ in conversations.values()
                                                                   if key in earlier})}
    rows = []
    for user, (key, _) in sorted(conversations.items()):
        if key not in stored or key in earlier:
            continue
        row = stored[key]
        rows.append({"user": str(split.log.user_ids[user]), "key": key, "status": row.status, "text": row.text,
                     "reason": row.reason, "prompt_tokens": row.prompt_tokens,
                     "completion_tokens": row.completion_tokens, "seconds": row.seconds})
    write_lines(args.out, header, rows)
    print(f"{args.out}: {len(rows)} profiles of {split.log.name} published")
    return 0


def published_keys(directory: Path | None, leaving_out: Path | None = None) -> dict[str, str]:
    """The cache key of every profile in the published files of `directory`, with its file's name; the file
    `leaving_out` (the part being republished in place) does not count as an earlier part of itself."""
    keys: dict[str, str] = {}
    for path in published_files(directory):
        if leaving_out is not None and path.resolve() == leaving_out.resolve():
            continue
        keys |= dict.fromkeys((row["key"] for row in read_lines(path, PUBLISHED_FORMAT)[1]), path.name)
    return keys


def _import_results(args: argparse.Namespace) -> int:
    store = cache_store(args.cache_dir)
    for path in args.results:
        header, rows = read_lines(path, RESULTS_FORMAT)
        store.put_profiles(StoredProfile(**row) for row in rows)
        failed = sum(row["status"] != "ok" for row in rows)
        print(f"{path}: {len(rows)} profiles from {header['backend']} on {header['device']} imported, {failed} failed")
    store.close()
    return 0

