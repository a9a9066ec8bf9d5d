"""Experiments: what orchestrates the stages. Sweeps on Optuna (`toolkit sweep`), reproductions of a recipe over
seeds (`toolkit reproduce`), the conformance table (train, export and verify every model), time to accuracy,
and what has been run (`toolkit runs`)."""

from toolkit.experiments.runs import RunRow, compare_runs, list_runs
from toolkit.experiments.sweep import default_space, sweep

__all__ = ["RunRow", "compare_runs", "default_space", "list_runs", "sweep"]
