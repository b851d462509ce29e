"""The training loop: AdamW, gradient clipping, early stopping on a validation metric with restore of
the best epoch, per-epoch callbacks, and a checkpoint after every epoch so that a killed run resumes.
A run with a checkpoint can also be paused between epochs (a time budget ran out): it raises
`TrainingPaused`, and the next call with the same checkpoint continues it.

Determinism: every source of randomness in an epoch (shuffling, masking, negatives, dropout) is
seeded from (seed, epoch), so an epoch does the same work whether or not the run was resumed, and the
same seed reproduces the same metrics on the same machine and thread count.

The trainer knows neither the model's task nor MLflow/Optuna: an `Objective` turns a batch into a
loss (the default is the model's own loss; distillation wraps it), and callbacks observe epochs.
"""

from __future__ import annotations

import copy
import math
import pickle
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.files import atomic_output
from benchmark.interfaces import PADDING, Callback, SequenceBatch
from benchmark.precision import autocast, training_precision


class TrainingPaused(Exception):
    """Training stopped between epochs because `pause_when` said so; its checkpoint holds every
    completed epoch, and training again from it gives the result an uninterrupted run would."""

    def __init__(self, epochs_done: int):
        super().__init__(f"training paused after {epochs_done} epochs")
        self.epochs_done = epochs_done


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (plain data; enters run keys)."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    max_epochs: int = 200
    patience: int = 10
    grad_clip: float = 1.0
    seed: int = 0
    precision: Literal["fp32", "bf16"] = "fp32"
    monitor: str = "ndcg@10"
    # best: early stopping on `monitor` with the best epoch restored; last: all `max_epochs` are trained
    # and the last epoch is kept (the official protocol), validation is only logged.
    selection: Literal["best", "last"] = field(default="best", metadata={"omit_if_default": True})
    # length: batches of similar lengths (little padding, faster); random: plain shuffled batches (the
    # official code's DataLoader)
    batching: Literal["length", "random"] = field(default="length", metadata={"omit_if_default": True})

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError(f"train: invalid settings {asdict(self)}")
        if self.selection not in ("best", "last"):
            raise ValueError(f"train: selection must be best or last, got {self.selection!r}")
        if self.batching not in ("length", "random"):
            raise ValueError(f"train: batching must be length or random, got {self.batching!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"train: precision must be fp32 or bf16, got {self.precision!r}")


class Objective(nn.Module):
    """Turns a batch into the loss to minimise. Its own parameters (if any) are trained alongside the
    model and discarded afterwards, so they never reach the evaluated model.

    `final_phase_start` is the first epoch of the objective's last phase (plain training after an
    auxiliary phase): early stopping waits `patience` epochs into that phase, so a run is never
    stopped while an auxiliary loss still shapes the model and always gets a chance to fine-tune.
    """

    final_phase_start: int = 0

    def forward(self, model: Any, batch: SequenceBatch, epoch: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """The model's own next-item loss."""
        loss = model.loss(model.hidden_states(batch.inputs)[-1], batch, generator)
        return loss, {"loss": float(loss.detach())}


@dataclass(frozen=True)
class TrainingData:
    """Training sequences, one per user: [n, max_len + 1] left-padded item ids and the user ids."""

    users: torch.Tensor
    sequences: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.users) == 0:
            raise ValueError("train: no training sequences (every user has fewer than 2 training interactions)")


@dataclass
class TrainResult:
    """What training produced besides the (best) weights loaded into the model."""

    best_epoch: int
    best_metric: float
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int | None = None


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
    """Random batches of sequences with similar lengths, so trimmed batches carry little padding.

    Sequences are shuffled, cut into pools of 32 batches, sorted by length inside each pool, batched,
    and the batch order is shuffled again. Every sequence appears exactly once per epoch.
    """
    order = torch.randperm(len(lengths), generator=generator).numpy()
    pool = batch_size * 32
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    shuffle = torch.randperm(len(batches), generator=generator).numpy()
    return [batches[i] for i in shuffle]


def random_batches(count: int, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
    """The sequences in random order, cut into batches (every sequence once per epoch)."""
    order = torch.randperm(count, generator=generator).numpy()
    return [order[i:i + batch_size] for i in range(0, count, batch_size)]


def resolve_device(option: str = "auto") -> str:
    """The device to train and score on: `auto` is the GPU when torch sees one, else the CPU; `cpu`,
    `cuda` or `cuda:N` as given (an unusable one is an error naming it)."""
    if option == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if option.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {option}: torch sees no CUDA device here (use auto or cpu)")
    if option != "cpu" and not option.startswith("cuda"):
        raise ValueError(f"--device {option}: expected auto, cpu, cuda or cuda:N")
    return option


def train(
    model: nn.Module,
    data: TrainingData,
    validate: Callable[[nn.Module], dict[str, float]],
    config: TrainConfig,
    *,
    objective: Objective | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoint: Path | None = None,
    progress: bool = True,
    device: str = "cpu",
    pause_when: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train `model` in place on `device` and leave it holding the weights of the best validation epoch
    (batches are built on the CPU with the seeded generator, then moved). With a `checkpoint`, raises
    `TrainingPaused` before an epoch when `pause_when()` is true (a time budget is spent)."""
    objective = (objective or Objective()).to(device)
    model.to(device)
    parameters = [p for p in [*model.parameters(), *objective.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    state = _TrainingState(best_state=copy.deepcopy(model.state_dict()))
    resumed_from = None
    if checkpoint is not None and (payload := read_checkpoint(checkpoint)) is not None:
        state = _restore(payload, model, objective, optimizer)
        resumed_from = state.epoch
    lengths = (data.sequences != PADDING).sum(1).numpy()
    epochs = tqdm(range(state.epoch + 1, config.max_epochs), initial=state.epoch + 1, total=config.max_epochs,
                  desc="train", unit="epoch", disable=not progress, leave=False)
    for epoch in epochs:
        if (config.selection == "best"
                and epoch - max(state.best_epoch + 1, objective.final_phase_start) >= config.patience):
            break
        if checkpoint is not None and pause_when is not None and pause_when():
            epochs.close()
            raise TrainingPaused(state.epoch + 1)
        epoch_started = time.perf_counter()
        generator = _seeded(config.seed, epoch)
        model.train()
        objective.train()
        totals: dict[str, float] = {}
        counts: dict[str, int] = {}
        batches = (length_bucketed_batches(lengths, config.batch_size, generator) if config.batching == "length"
                   else random_batches(len(lengths), config.batch_size, generator))
        for index in batches:
            width = int(lengths[index].max())
            sequences = data.sequences[index][:, -width:] if width < data.sequences.shape[1] else data.sequences[index]
            batch = SequenceBatch(*(part.to(device) for part in model.training_batch(data.users[index], sequences,
                                                                                     generator)))
            with training_precision(device, config.precision):
                with autocast(device, config.precision):
                    loss, logs = objective(model, batch, epoch, generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            for name, value in logs.items():
                totals[name] = totals.get(name, 0.0) + value * len(index)
                counts[name] = counts.get(name, 0) + len(index)
        model.eval()
        metrics = {f"train_{k}": v / counts[k] for k, v in totals.items()}
        metrics |= {f"val_{k}": v for k, v in validate(model).items()}
        metrics["epoch_seconds"] = time.perf_counter() - epoch_started
        state.seconds += metrics["epoch_seconds"]
        value = metrics[f"val_{config.monitor}"]
        if value > state.best_metric or config.selection == "last":
            state.best_metric, state.best_epoch = value, epoch
            state.best_state = copy.deepcopy(model.state_dict())
        state.epoch = epoch
        state.history.append({"epoch": epoch, **metrics})
        epochs.set_postfix_str(f"{config.monitor} {value:.4f} (best {state.best_metric:.4f} @ {state.best_epoch})")
        if checkpoint is not None:
            _save(checkpoint, state, model, objective, optimizer)
        for callback in callbacks:
            callback.on_epoch_end(epoch, metrics)
    epochs.close()
    model.load_state_dict(state.best_state)
    model.eval()
    return TrainResult(state.best_epoch, state.best_metric, state.epoch + 1, state.history, state.seconds, resumed_from)


@dataclass
class _TrainingState:
    epoch: int = -1
    best_epoch: int = -1
    best_metric: float = -math.inf
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)


def checkpoint_progress(path: Path) -> tuple[int, float] | None:
    """The epochs done and training seconds spent by the run that `path` checkpoints, its companions'
    training included (None without any checkpoint): how much of a paused run is behind it."""
    states = [payload["state"] for file in _run_checkpoints(path) if (payload := read_checkpoint(file)) is not None]
    if not states:
        return None
    return sum(state["epoch"] + 1 for state in states), sum(state["seconds"] for state in states)


def companion_checkpoint(checkpoint: Path, role: str) -> Path:
    """Where a model trained inside a run (LLMEmb's teacher SASRec) keeps its own checkpoint, next to the
    run's: a paused run then resumes that model too instead of training it again."""
    return checkpoint.with_name(f"{checkpoint.stem}.{role}{checkpoint.suffix}")


def remove_checkpoint(checkpoint: Path) -> None:
    """Delete a finished or abandoned run's checkpoint together with its companions."""
    for file in _run_checkpoints(checkpoint):
        file.unlink(missing_ok=True)


def _run_checkpoints(checkpoint: Path) -> list[Path]:
    """A run's own checkpoint and its companions' (which may not exist yet)."""
    return [checkpoint, *checkpoint.parent.glob(f"{checkpoint.stem}.*{checkpoint.suffix}")]


def _seeded(seed: int, epoch: int) -> torch.Generator:
    """Per-epoch generator for data randomness; also seeds torch's global RNG (used by dropout)."""
    epoch_seed = (seed * 1_000_003 + epoch) % (2**63)
    torch.manual_seed(epoch_seed)
    return torch.Generator().manual_seed(epoch_seed)


def _save(path: Path, state: _TrainingState, model: nn.Module, objective: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Atomically write everything needed to continue after the last completed epoch."""
    payload = {"state": asdict(state), "model": model.state_dict(), "objective": objective.state_dict(),
               "optimizer": optimizer.state_dict()}
    with atomic_output(path) as temporary:
        torch.save(payload, temporary)


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """A checkpoint's content, loaded without unpickling arbitrary objects (tensors and plain data only);
    None where there is none, or where it is unreadable (truncated, say): then it is deleted with a
    warning, and its run trains from scratch instead of crashing."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=True, map_location="cpu", mmap=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, ValueError) as error:
        warnings.warn(f"{path}: unreadable checkpoint ({str(error).splitlines()[0]}); deleted, the run starts "
                      "again from scratch", stacklevel=2)
        path.unlink(missing_ok=True)
        return None


def _restore(payload: dict[str, Any], model: nn.Module, objective: nn.Module,
             optimizer: torch.optim.Optimizer) -> _TrainingState:
    model.load_state_dict(payload["model"])
    objective.load_state_dict(payload["objective"])
    optimizer.load_state_dict(payload["optimizer"])
    return _TrainingState(**payload["state"])
