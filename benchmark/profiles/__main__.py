"""`python -m benchmark.profiles generate|show|stats|encode`: LLM user profiles for a dataset split.

Profiles are built from each user's training-period history only, cached in
<cache-dir>/profiles/store.sqlite, and a rerun generates only what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from benchmark.data.dataset import load_dataset
from benchmark.data.errors import DataError
from benchmark.data.preprocess import PreprocessConfig
from benchmark.profiles.backends import (
    Backend,
    CacheOnly,
    GenerationParams,
    LlamaCppBackend,
    OpenAIBackend,
    TransformersBackend,
)
from benchmark.profiles.generate import generate_profiles
from benchmark.profiles.prompts import PromptConfig, build_prompts
from benchmark.profiles.stats import profile_stats
from benchmark.profiles.store import cache_store
from benchmark.profiles.weights import LLMS, materialize, source_for
from benchmark.split import TARGET_KINDS, VALIDATION_KINDS, Split, SplitConfig


def make_backend(args: argparse.Namespace, *, load: bool = True) -> Backend:
    """The backend named on the command line (with `load=False`, only its identity)."""
    if args.backend == "openai":
        if not args.base_url:
            raise DataError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if not load:
            return CacheOnly(OpenAIBackend.identity(args.base_url, args.model))
        return OpenAIBackend(args.base_url, args.model, api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
                             concurrency=args.concurrency, requests_per_second=args.requests_per_second)
    source = source_for(args.model, LLMS)
    model_id = source.label
    if args.backend == "llamacpp":
        if not load:
            return CacheOnly(LlamaCppBackend.identity(model_id))
        return LlamaCppBackend(materialize(source, args.cache_dir), model_id)
    if not load:
        return CacheOnly(TransformersBackend.identity(model_id, args.dtype))
    return TransformersBackend.from_registry(args.model, cache_dir=args.cache_dir, batch_size=args.batch_size,
                                             dtype=args.dtype, workers=args.workers)


def split_for(args: argparse.Namespace) -> Split:
    """Load the dataset and apply the split given on the command line."""
    log = load_dataset(args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir,
                       preprocessing=PreprocessConfig(args.k_core, args.k_core))
    return SplitConfig(quantile=args.quantile, target=args.target, validation=args.validation).apply(log)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.profiles", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    subs = {name: commands.add_parser(name, help=text) for name, text in [
        ("generate", "generate (or complete) the profiles of every user"),
        ("show", "one user's training history next to their profile"),
        ("stats", "length, empty/duplicate rate, top-genre mentions")]}
    for sub in subs.values():
        sub.add_argument("--dataset", required=True, help="registered name or generic CSV YAML")
        sub.add_argument("--data-dir")
        sub.add_argument("--cache-dir")
        sub.add_argument("--k-core", type=int, default=5)
        sub.add_argument("--quantile", type=float, default=0.9)
        sub.add_argument("--target", choices=TARGET_KINDS, default="first")
        sub.add_argument("--validation", choices=VALIDATION_KINDS, default="by_time")
        sub.add_argument("--backend", choices=["transformers", "openai", "llamacpp"], default="transformers")
        sub.add_argument("--model", default="smollm2-135m-instruct", help="registered id, local path, or server model")
        sub.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
        sub.add_argument("--concurrency", type=int, default=8)
        sub.add_argument("--requests-per-second", type=float)
        sub.add_argument("--batch-size", type=int, default=32)
        sub.add_argument("--workers", type=int, default=2,
                         help="transformers backend: generating processes sharing the CPU threads")
        sub.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
        sub.add_argument("--style", choices=["short", "long"], default="short")
        sub.add_argument("--history", choices=["fit", "train"], default="fit",
                         help="fit: the rows models are fitted on (what distillation uses); train: all <= cutoff")
        sub.add_argument("--max-items", type=int, default=PromptConfig.max_items)
        sub.add_argument("--chunk-size", type=int)
        sub.add_argument("--max-new-tokens", type=int, default=GenerationParams.max_new_tokens)
        sub.add_argument("--limit", type=int, help="only the first N users (a quick look)")
    subs["show"].add_argument("user", help="original user id")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    split = split_for(args)
    prompts = PromptConfig(style=args.style, max_items=args.max_items, chunk_size=args.chunk_size,
                           history=args.history)
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
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
    backend = make_backend(args, load=generating)
    store = cache_store(args.cache_dir)
    profiles, summary = generate_profiles(split, backend, store, prompts=prompts, params=params, users=users,
                                          progress=args.command == "generate", generate=generating)
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
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
