"""The measurements behind `python -m benchmark.perf` (each function times one thing in this process and
returns its figures; the command prints them)."""


from __future__ import annotations

import resource
import time

import torch

from benchmark.data.dataset import load_dataset
from benchmark.metrics import evaluate
from benchmark.perf import TRAIN_CONFIGS
from benchmark.profiles.backends import GenerationParams
from benchmark.profiles.prompts import PromptConfig
from benchmark.registry import get_model
from benchmark.split import SplitConfig
from benchmark.split_kinds import TARGET_KINDS


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
    from benchmark.methods.distill import DistillationObjective, DistillConfig
    from benchmark.methods.targets import random_targets
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
