"""Experiments: what has been run, read back from the run folders (`toolkit runs`), and two of them compared."""

from toolkit.experiments.runs import RunRow, compare_runs, list_runs

__all__ = ["RunRow", "compare_runs", "list_runs"]
