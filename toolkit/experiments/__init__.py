"""Experiments: what has been run, read back from the run folders (`toolkit runs`)."""

from toolkit.experiments.runs import RunRow, list_runs

__all__ = ["RunRow", "list_runs"]
