"""Benchmark harness: data, splits, evaluation, training, tuning, tracking and the command lines."""

__version__ = "0.1.0"
