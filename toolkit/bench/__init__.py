"""Bench: timing primitives, isolated cases, the seed-vs-toolkit training step, time-to-accuracy, reports."""

from toolkit.bench.run import BenchConfig, run_bench
from toolkit.bench.time_to_accuracy import time_to_accuracy

__all__ = ["BenchConfig", "run_bench", "time_to_accuracy"]
