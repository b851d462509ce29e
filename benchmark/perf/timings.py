"""Benchmark scripts that print timings (not timed tests).

- `python -m benchmark.perf eval`: full-ranking evaluation on a real dataset, per target kind.
- `python -m benchmark.perf train`: seconds per training epoch, sequences/s, peak RSS and evaluation
  time of SASRec and BERT4Rec on ML-1M at a named configuration.
- `python -m benchmark.perf distill`: training time per epoch with and without the distillation loss,
  and inference latency of a distilled vs a plain model of the same configuration.
- `python -m benchmark.perf profiles`: profiles/min and generated tokens/s of the default generator
  (transformers backend, no cache) for several batch sizes / history lengths, and encoder sentences/s.

Run them on a quiet machine: a concurrent job changes every figure.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch

from benchmark.data.dataset import load_dataset
from benchmark.metrics import evaluate
from benchmark.profiles.backends import GenerationParams
from benchmark.profiles.prompts import PromptConfig
from benchmark.registry import NEURAL_BACKBONES, get_model
from benchmark.split import TARGET_KINDS, SplitConfig

# Named configurations. "rectools": the setting RecTools 0.19's SASRec was timed at on this kind of
# machine (~170 s per ML-1M epoch, 2 cores); "suite": the small setting the suites use.
TRAIN_CONFIGS: dict[str, dict] = {
    "rectools": {"dim": 256, "blocks": 2, "heads": 4, "dropout": 0.2, "max_len": 100, "batch_size": 128},
    "suite": {"dim": 64, "blocks": 2, "heads": 2, "dropout": 0.2, "max_len": 200, "batch_size": 128},
}


def time_evaluation(dataset: str, data_dir: str | None, quantile: float, repeats: int) -> list[dict]:
    """Best-of-`repeats` evaluation time per target kind, with random scores."""
    log = load_dataset(dataset, data_dir=data_dir)
    generator = torch.Generator().manual_seed(0)

    def random_scores(inputs: torch.Tensor) -> torch.Tensor:
        return torch.rand(inputs.shape[0], log.n_items + 1, generator=generator)

    rows = []
    for target in TARGET_KINDS:
        split = SplitConfig(quantile=quantile, target=target).apply(log)
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            evaluate(random_scores, log, split.test, max_len=50)
            timings.append(time.perf_counter() - started)
        rows.append({"target": target, "tasks": len(split.test), "users": len(set(split.test.user.tolist())),
                     "targets": int(split.test.target_rows.size), "seconds": min(timings)})
    return rows


def time_training(model_name: str, config_name: str, precision: str, epochs: int, dataset: str,
                  data_dir: str | None) -> dict:
    """Train `epochs` epochs (no validation) in this process; report per-epoch time, throughput, RSS, eval time."""
    from benchmark.backbone_fit import training_data
    from benchmark.trainer import TrainConfig, train

    settings = dict(TRAIN_CONFIGS[config_name])
    batch_size = settings.pop("batch_size")
    log = load_dataset(dataset, data_dir=data_dir)
    split = SplitConfig(quantile=0.9, target="last").apply(log)
    torch.manual_seed(0)
    model = get_model(model_name).build_backbone(log.n_items, settings)
    data = training_data(split, split.train_rows, model.max_len + 1)
    result = train(model, data, lambda _: {"ndcg@10": 0.0},
                   TrainConfig(max_epochs=epochs, patience=epochs, batch_size=batch_size, precision=precision),
                   progress=False)
    seconds = [row["epoch_seconds"] for row in result.history]
    started = time.perf_counter()
    evaluate(model, log, split.test, max_len=model.max_len)
    return {"model": model_name, "config": config_name, "precision": precision, "sequences": len(data.users),
            "first_epoch_s": seconds[0], "epoch_s": min(seconds), "sequences_per_s": len(data.users) / min(seconds),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "eval_s": time.perf_counter() - started, "eval_users": len(split.test)}


def time_distillation(dataset: str, data_dir: str | None, config_name: str, epochs: int, repeats: int) -> dict:
    """Epoch time of SASRec with and without distillation (random unit-norm targets of the default encoder's
    dimension: the cost does not depend on what the targets are) and scoring latency of both models."""
    from benchmark.backbone_fit import training_data
    from benchmark.distill import DistillationObjective, DistillConfig
    from benchmark.targets import random_targets
    from benchmark.trainer import TrainConfig, train

    settings = dict(TRAIN_CONFIGS[config_name])
    batch_size = settings.pop("batch_size")
    split = SplitConfig(quantile=0.9, target="last").apply(load_dataset(dataset, data_dir=data_dir))
    targets = random_targets(split, 384, seed=0)
    models, epoch_seconds = {}, {}
    for variant in ("plain", "distilled"):
        torch.manual_seed(0)
        model = get_model("sasrec").build_backbone(split.log.n_items, settings)
        data = training_data(split, split.validation.train_rows, model.max_len + 1)
        objective = (DistillationObjective(model.config.dim, targets.matrix, targets.has_target,
                                           DistillConfig(layer=model.config.blocks, distil_epochs=epochs))
                     if variant == "distilled" else None)
        result = train(model, data, lambda _: {"ndcg@10": 0.0},
                       TrainConfig(max_epochs=epochs, patience=epochs, batch_size=batch_size),
                       objective=objective, progress=False)
        models[variant], epoch_seconds[variant] = model, min(r["epoch_seconds"] for r in result.history)
    inputs = split.inputs(split.test, models["plain"].max_len)
    latency = {}
    with torch.inference_mode():
        for model in models.values():
            model(inputs[:64])  # warm-up
        for variant in list(models) * repeats:  # interleaved, best of `repeats`
            started = time.perf_counter()
            models[variant](inputs)
            latency[variant] = min(latency.get(variant, float("inf")), time.perf_counter() - started)
    same_parameters = ({k: v.shape for k, v in models["plain"].state_dict().items()}
                       == {k: v.shape for k, v in models["distilled"].state_dict().items()})
    return {"epoch_plain": epoch_seconds["plain"], "epoch_distilled": epoch_seconds["distilled"],
            "latency_plain": latency["plain"], "latency_distilled": latency["distilled"],
            "users": len(inputs), "same_parameters": same_parameters}


def time_profiles(dataset: str, data_dir: str | None, users: int, batch_size: int, max_items: int, dtype: str,
                  max_new_tokens: int, workers: int) -> dict:
    """Generate profiles for the first `users` users without the cache, then encode them."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from benchmark.profiles.backends import TransformersBackend
    from benchmark.profiles.encode import SentenceEncoder
    from benchmark.profiles.prompts import build_prompts

    split = SplitConfig(quantile=0.9).apply(load_dataset(dataset, data_dir=data_dir))
    conversations = [p.chunks[0] for p in build_prompts(split, PromptConfig(max_items=max_items))[:users]]
    backend = TransformersBackend.from_registry("smollm2-135m-instruct", batch_size=batch_size, dtype=dtype,
                                                workers=workers)
    # warm-up: one short batch per worker, so each process has imported and loaded its model
    backend.generate([[c[0], {"role": "user", "content": "Hi"}] for c in conversations[:workers * batch_size]],
                     GenerationParams(max_new_tokens=1))
    started = time.perf_counter()
    results = backend.generate(conversations, GenerationParams(max_new_tokens=max_new_tokens))
    seconds = time.perf_counter() - started
    backend.close()
    texts = [r.text for r in results if r.text]
    encoder = SentenceEncoder()
    encoder.encode(texts[:8])  # warm-up
    encode_started = time.perf_counter()
    encoder.encode(texts)
    encode_seconds = time.perf_counter() - encode_started
    tokens = sum(r.completion_tokens for r in results)
    return {"users": len(results), "batch_size": batch_size, "max_items": max_items, "dtype": dtype,
            "profiles_per_min": len(results) / seconds * 60, "tokens_per_s": tokens / seconds,
            "mean_tokens": tokens / len(results), "mean_prompt_tokens": sum(r.prompt_tokens for r in results) / len(results),
            "stopped_share": sum(r.finish_reason == "stop" for r in results) / len(results),
            "sentences_per_s": len(texts) / encode_seconds, "example": texts[0] if texts else ""}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    evaluation = commands.add_parser("eval", help="time full-ranking evaluation")
    training = commands.add_parser("train", help="time training epochs of SASRec and BERT4Rec")
    profiles = commands.add_parser("profiles", help="time profile generation and encoding")
    distill = commands.add_parser("distill", help="distillation overhead in training, latency at inference")
    for sub in (evaluation, training, profiles, distill):
        sub.add_argument("--dataset", default="ml-1m-5core")
        sub.add_argument("--data-dir")
    evaluation.add_argument("--quantile", type=float, default=0.9)
    evaluation.add_argument("--repeats", type=int, default=3)
    training.add_argument("--models", nargs="+", default=["sasrec", "bert4rec"], choices=NEURAL_BACKBONES)
    training.add_argument("--config", nargs="+", default=["rectools"], choices=sorted(TRAIN_CONFIGS))
    training.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    training.add_argument("--epochs", type=int, default=2, help="epochs per measurement (the fastest is reported)")
    profiles.add_argument("--users", type=int, default=64)
    profiles.add_argument("--batch-size", type=int, nargs="+", default=[32])
    profiles.add_argument("--max-items", type=int, nargs="+", default=[PromptConfig.max_items])
    profiles.add_argument("--dtype", nargs="+", default=["bfloat16"], choices=["bfloat16", "float32"])
    profiles.add_argument("--max-new-tokens", type=int, default=GenerationParams.max_new_tokens)
    profiles.add_argument("--workers", type=int, nargs="+", default=[2])
    distill.add_argument("--config", default="suite", choices=sorted(TRAIN_CONFIGS))
    distill.add_argument("--epochs", type=int, default=2)
    distill.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    if args.command == "distill":
        row = time_distillation(args.dataset, args.data_dir, args.config, args.epochs, args.repeats)
        print(f"distillation on {args.dataset}, SASRec config {args.config} {TRAIN_CONFIGS[args.config]}:")
        print(f"  training: plain {row['epoch_plain']:.1f} s/epoch, distilled {row['epoch_distilled']:.1f} s/epoch "
              f"(overhead {row['epoch_distilled'] / row['epoch_plain'] - 1:+.1%})")
        print(f"  inference ({row['users']} users): plain {row['latency_plain'] * 1000:.1f} ms, distilled "
              f"{row['latency_distilled'] * 1000:.1f} ms, ratio {row['latency_distilled'] / row['latency_plain']:.2f}; "
              f"identical parameter sets: {row['same_parameters']}")
        return 0
    if args.command == "profiles":
        print(f"profile generation on {args.dataset}, SmolLM2-135M-Instruct (transformers), "
              f"{args.users} users, torch threads {torch.get_num_threads()}")
        for dtype in args.dtype:
            for max_items in args.max_items:
                for batch_size, workers in itertools.product(args.batch_size, args.workers):
                    row = time_profiles(args.dataset, args.data_dir, args.users, batch_size, max_items, dtype,
                                        args.max_new_tokens, workers)
                    print(f"  {dtype} batch {batch_size:3} workers {workers} max_items {max_items:3} (prompt {row['mean_prompt_tokens']:.0f} tok): "
                          f"{row['profiles_per_min']:6.1f} profiles/min, {row['tokens_per_s']:6.1f} tok/s, "
                          f"{row['mean_tokens']:.0f} tokens/profile, {row['stopped_share']:.0%} ended by EOS; "
                          f"encoder {row['sentences_per_s']:.0f} sentences/s", flush=True)
                    print(f"    e.g. {row['example'][:300]!r}", flush=True)
        return 0
    if args.command == "eval":
        rows = time_evaluation(args.dataset, args.data_dir, args.quantile, args.repeats)
        print(f"full-ranking evaluation on {args.dataset} (q={args.quantile}), torch threads "
              f"{torch.get_num_threads()}, best of {args.repeats}:")
        for row in rows:
            print(f"  target {row['target']:10} {row['tasks']:7,} tasks {row['users']:6,} users "
                  f"{row['targets']:7,} targets  {row['seconds']:.3f} s")
        return 0
    print(f"training on {args.dataset}, torch threads {torch.get_num_threads()}; each line is a fresh process")
    for config in args.config:
        print(f"  config {config}: {TRAIN_CONFIGS[config]}")
    for model in args.models:
        for config in args.config:
            for precision in args.precision:
                # a fresh process per measurement, so peak RSS is that measurement's own
                with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                    row = pool.submit(time_training, model, config, precision, args.epochs,
                                      args.dataset, args.data_dir).result()
                print(f"  {row['model']:8} {row['config']:8} {row['precision']}: {row['epoch_s']:6.1f} s/epoch "
                      f"(first {row['first_epoch_s']:.1f}), {row['sequences_per_s']:6.1f} sequences/s, "
                      f"peak RSS {row['peak_rss_gib']:.2f} GiB, eval {row['eval_users']} users {row['eval_s']:.2f} s",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
