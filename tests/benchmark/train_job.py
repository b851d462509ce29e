"""A small, complete training run used by the resume test: `python tests/train_job.py MIRROR CKPT OUT [PAUSE]`.

Trains SASRec on ML-100K with a checkpoint after every epoch and writes the final test metrics to OUT.
PAUSE (seconds) sleeps after each epoch so that a test can kill the process between epochs or in one.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from baselines.sasrec import SASRec, SASRecConfig
from benchmark.backbone_fit import fit_backbone
from benchmark.data.dataset import load_dataset
from benchmark.metrics import evaluate
from benchmark.split import SplitConfig
from benchmark.trainer import TrainConfig

EPOCHS = 6


class Pause:
    """Callback that sleeps after each epoch and counts them."""

    def __init__(self, seconds: float):
        self.seconds, self.epochs = seconds, 0

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs += 1
        time.sleep(self.seconds)


def run(mirror: str, checkpoint: Path | None, pause: float = 0.0, stop_after: int | None = None) -> dict:
    """Train and evaluate; returns test metrics, best epoch and validation history. `stop_after`: the
    trainer is told to pause once this call has trained that many epochs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same figures on any machine; restored for whatever runs next in this process
    try:
        return _train(mirror, checkpoint, pause, stop_after)
    finally:
        torch.set_num_threads(threads)


def _train(mirror: str, checkpoint: Path | None, pause: float, stop_after: int | None) -> dict:
    log = load_dataset("ml-100k", data_dir=mirror)
    split = SplitConfig(quantile=0.8, target="last").apply(log)
    torch.manual_seed(0)
    model = SASRec(log.n_items, SASRecConfig(dim=16, blocks=1, heads=1, dropout=0.2, max_len=20))
    config = TrainConfig(max_epochs=EPOCHS, patience=EPOCHS, batch_size=64, seed=3)
    sleeper = Pause(pause)
    pause_when = None if stop_after is None else lambda: sleeper.epochs >= stop_after
    result = fit_backbone(model, split, config, checkpoint=checkpoint, callbacks=[sleeper], progress=False,
                          pause_when=pause_when)
    test = evaluate(model, log, split.test, max_len=model.max_len).means
    return {"test": test, "best_epoch": result.best_epoch, "resumed_from": result.resumed_from,
            "val": [h["val_ndcg@10"] for h in result.history]}


if __name__ == "__main__":
    mirror, checkpoint, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    out.write_text(json.dumps(run(mirror, checkpoint, pause)))
