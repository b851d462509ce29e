"""Benchmark scripts that print timings (not timed tests).

- `python -m benchmark.perf eval`: full-ranking evaluation on a real dataset, per target kind.
- `python -m benchmark.perf train`: seconds per training epoch, sequences/s, peak RSS and evaluation
  time of SASRec and BERT4Rec on ML-1M at a named configuration.
- `python -m benchmark.perf distill`: training time per epoch with and without the distillation loss,
  and inference latency of a distilled vs a plain model of the same configuration.
- `python -m benchmark.perf profiles`: profiles/min and generated tokens/s of the default generator
  (transformers backend, no cache) for several batch sizes / history lengths, and encoder sentences/s.
- `python -m benchmark.perf startup`: how long every command line takes to answer `--help` (the target:
  under 1 s) and a suite's `--dry-run` to start (under 3 s) and to finish.

Run them on a quiet machine: a concurrent job changes every figure.
"""

from __future__ import annotations

# Named configurations. "rectools": the setting RecTools 0.19's SASRec was timed at on this kind of
# machine (~170 s per ML-1M epoch, 2 cores); "suite": the small setting the suites use.
TRAIN_CONFIGS: dict[str, dict] = {
    "rectools": {"dim": 256, "blocks": 2, "heads": 4, "dropout": 0.2, "max_len": 100, "batch_size": 128},
    "suite": {"dim": 64, "blocks": 2, "heads": 2, "dropout": 0.2, "max_len": 200, "batch_size": 128},
}
