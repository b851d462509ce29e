"""Benchmark harness: data, splits, evaluation, training, tuning, tracking and the command lines."""

__version__ = "0.2.0"
