"""Trainer: determinism, resume after SIGKILL, early stopping with restore, batching."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.sasrec import SASRec, SASRecConfig
from benchmark.trainer import (
    Objective,
    TrainConfig,
    TrainingData,
    TrainingPaused,
    checkpoint_progress,
    length_bucketed_batches,
    train,
)
from tests.benchmark import train_job

ROOT = Path(__file__).resolve().parents[2]


def test_same_seed_same_metrics_to_the_last_digit(mirror):
    first = train_job.run(str(mirror), None)
    second = train_job.run(str(mirror), None)
    assert first == second
    assert len(set(first["val"])) > 1  # it did learn something that varies per epoch


def test_killed_run_resumes_to_the_same_result(mirror, tmp_path):
    uninterrupted = train_job.run(str(mirror), None)
    checkpoint, out = tmp_path / "run.ckpt", tmp_path / "out.json"
    command = [sys.executable, str(ROOT / "tests" / "benchmark" / "train_job.py"), str(mirror), str(checkpoint), str(out), "0.7"]
    process = subprocess.Popen(command, cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)})
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if checkpoint.is_file() and torch.load(checkpoint, weights_only=False)["state"]["epoch"] >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the job ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists()
    subprocess.run(command[:-1], cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)}, check=True)
    resumed = json.loads(out.read_text())
    assert resumed["resumed_from"] >= 2
    assert resumed["test"] == uninterrupted["test"]
    assert resumed["val"] == uninterrupted["val"] and resumed["best_epoch"] == uninterrupted["best_epoch"]


def test_a_paused_run_continues_from_its_checkpoint_to_the_same_result(mirror, tmp_path):
    uninterrupted = train_job.run(str(mirror), None)
    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(TrainingPaused) as paused:
        train_job.run(str(mirror), checkpoint, stop_after=2)
    assert paused.value.epochs_done == 2 and torch.load(checkpoint, weights_only=False)["state"]["epoch"] == 1
    epochs, seconds = checkpoint_progress(checkpoint)
    assert epochs == 2 and seconds > 0 and checkpoint_progress(tmp_path / "none.ckpt") is None
    resumed = train_job.run(str(mirror), checkpoint)
    assert resumed["resumed_from"] == 1
    assert resumed["test"] == uninterrupted["test"] and resumed["val"] == uninterrupted["val"]
    assert train_job.run(str(mirror), None, stop_after=2) == uninterrupted  # nothing to pause without a checkpoint


class Snapshots:
    """Callback keeping a copy of the weights after every epoch."""

    def __init__(self, model):
        self.model, self.states = model, []

    def on_epoch_end(self, epoch, metrics):
        self.states.append({k: v.clone() for k, v in self.model.state_dict().items()})


def test_early_stopping_restores_the_best_epoch():
    torch.manual_seed(0)
    model = SASRec(10, SASRecConfig(dim=8, blocks=1, heads=1, max_len=5))
    sequences = torch.randint(1, 11, (32, 6))
    data = TrainingData(torch.arange(32), sequences)
    scripted = iter([0.1, 0.3, 0.2, 0.25, 0.9])
    snapshots = Snapshots(model)
    result = train(model, data, lambda m: {"ndcg@10": next(scripted)},
                   TrainConfig(max_epochs=10, patience=2, batch_size=8), callbacks=[snapshots], progress=False)
    assert result.epochs_run == 4 and result.best_epoch == 1 and result.best_metric == 0.3
    for name, value in model.state_dict().items():
        assert torch.equal(value, snapshots.states[1][name])


def test_early_stopping_waits_for_the_objectives_final_phase():
    class TwoPhase(Objective):
        final_phase_start = 5

    model = SASRec(10, SASRecConfig(dim=8, blocks=1, heads=1, max_len=5))
    data = TrainingData(torch.arange(32), torch.randint(1, 11, (32, 6)))
    falling = iter([0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    result = train(model, data, lambda m: {"ndcg@10": next(falling)}, TrainConfig(max_epochs=10, patience=2, batch_size=8),
                   objective=TwoPhase(), progress=False)
    assert result.epochs_run == 7 and result.best_epoch == 0  # epochs 0-4 auxiliary, then 2 epochs of patience


def test_bucketed_batches_cover_every_sequence_once():
    lengths = np.random.default_rng(0).integers(2, 100, size=1000)
    batches = length_bucketed_batches(lengths, 64, torch.Generator().manual_seed(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert max(len(b) for b in batches) == 64
    # batches are length-homogeneous: far less spread than random batches
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 20


def test_the_device_is_chosen_automatically_and_a_missing_gpu_is_named():
    from benchmark.trainer import resolve_device

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda: torch sees no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="expected auto, cpu, cuda"):
        resolve_device("tpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_and_evaluation_on_the_gpu_match_the_cpu(mirror):
    from benchmark.backbone_fit import fit_backbone
    from benchmark.data.dataset import load_dataset
    from benchmark.metrics import evaluate
    from benchmark.split import SplitConfig

    split = SplitConfig(quantile=0.9, target="last").apply(load_dataset("ml-100k", data_dir=mirror))
    results = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = SASRec(split.log.n_items, SASRecConfig(dim=16, blocks=1, heads=1, max_len=20, dropout=0.0))
        fit_backbone(model, split, TrainConfig(max_epochs=2, patience=2), progress=False, device=device)
        assert next(model.parameters()).device.type == device
        results[device] = evaluate(model, split.log, split.test, max_len=20).means["ndcg@10"]
    assert results["cuda"] == pytest.approx(results["cpu"], abs=0.01)
