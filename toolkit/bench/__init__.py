"""Bench: timing primitives, isolated cases, the seed-vs-toolkit training step, and the files bench writes.

Time to accuracy, which trains, is an experiment (experiments/time_to_accuracy.py): bench only times.
"""

from toolkit.bench.run import BenchConfig, run_bench

__all__ = ["BenchConfig", "run_bench"]
