"""Benchmark harness: data, splits, evaluation, training, tuning, tracking and the command lines."""

import os

__version__ = "0.2.0"

# Large CPU tensors on transparent huge pages: training allocates and frees matrices of hundreds of MB
# (the logits over the whole catalogue) every batch, and faulting them in 4 KiB pages took a third of
# an epoch's time on a 2-core EPYC. PyTorch reads this at its first allocation, so it is set before
# anything imports torch; a value the user set wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
