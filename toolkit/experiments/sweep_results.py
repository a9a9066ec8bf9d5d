"""What a finished (or stopped) study leaves: sweep.json, sweep.md, best.toml, the importance of each
hyperparameter and the plots; the best trial's test accuracy, measured once, here."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from toolkit.core.errors import first_line
from toolkit.core.files import write_text
from toolkit.core.markdown import markdown_table
from toolkit.experiments.sweep_storage import counted_trials, retried_numbers
from toolkit.run.folder import BEST_TOML


def short(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def summarize(study, folder: Path, model: str, space: dict, seconds: float) -> dict[str, Any]:
    """sweep.json, sweep.md, best.toml and the plots; the best trial's test accuracy, measured only here."""
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]  # never trained
    retried = retried_numbers(trials)
    rows = []
    for t in trials:
        state = t.state.name.lower()
        if state == "fail" and "diverged" in t.user_attrs:
            state = "diverged"
        elif state == "fail" and t.number in retried:
            state = "interrupted" if "interrupted" in t.user_attrs else "lost"  # lost: its worker went silent
        rows.append(
            {
                "number": t.number,
                "state": state,
                "value": t.value,
                "params": t.params,
                "epochs": max(t.intermediate_values, default=0),
                "seconds": t.user_attrs.get("seconds"),
                "run_dir": t.user_attrs.get("run_dir"),
            }
        )
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    summary: dict[str, Any] = {
        "study": study.study_name,
        "model": model,
        "space": space,
        "trials": len(counted_trials(trials)),
        "complete": len(done),
        "pruned": sum(r["state"] == "pruned" for r in rows),
        "failed": sum(r["state"] in ("fail", "diverged") for r in rows),
        "retried": len(retried),  # interrupted or lost trials, each replaced by a later one: not in `trials`
        "seconds_this_call": seconds,
        "rows": sorted(rows, key=lambda r: (r["value"] is None, -(r["value"] or 0))),
        "best": None,
    }
    if done:
        best = study.best_trial
        test_acc = _test_once(Path(best.user_attrs["run_dir"]))
        summary["best"] = {"number": best.number, "val_acc": best.value, "params": best.params, "test_acc": test_acc}
        write_text(folder / BEST_TOML, _toml({"model": model, **best.params}))
    from toolkit.run.folder import SWEEP_MD
    from toolkit.run.records import Sweep

    summary["importances"], summary["importances_note"] = _importances(study) if len(done) >= 2 else (None, None)
    Sweep.write(folder, summary)
    write_text(folder / SWEEP_MD, _markdown(summary))
    summary["plots"] = _plots(study, folder) if len(done) >= 2 else []
    return summary


def _importance_evaluator():
    # PED-ANOVA needs numpy only; Optuna's default (fANOVA) needs scikit-learn, which the toolkit does not install.
    from optuna.importance import PedAnovaImportanceEvaluator

    return PedAnovaImportanceEvaluator()


def _importances(study) -> tuple[dict[str, float] | None, str | None]:
    """Each parameter's share of the variation in val accuracy (Optuna, PED-ANOVA), or why there is none."""
    from optuna.importance import get_param_importances

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few trials: Optuna warns, the figures are still what it measured
            return dict(get_param_importances(study, evaluator=_importance_evaluator())), None
    except Exception as exc:  # needs complete trials whose parameters vary
        return None, first_line(exc)


def _test_once(run_dir: Path) -> float:
    """The best trial's test accuracy: the only time a sweep reads the test set."""
    from toolkit.data import TensorLoader, load_dataset
    from toolkit.run.checkpoint import load_checkpoint, model_from_checkpoint
    from toolkit.train.evaluation import evaluate

    ckpt = load_checkpoint(run_dir)
    cfg = ckpt["train_config"]
    test = load_dataset(
        cfg["dataset"],
        False,
        cfg.get("data_dir"),
        limit=cfg.get("limit_test"),
        download=cfg.get("download", True),
        seed=cfg["seed"],
    )
    loader = TensorLoader(test, 1000, mean=tuple(ckpt["input"]["mean"]), std=tuple(ckpt["input"]["std"]))
    return evaluate(model_from_checkpoint(ckpt), loader, "off")[0]


def _toml(values: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        return repr(v)

    return f"# the best trial's configuration: toolkit train --config {BEST_TOML}\n" + "".join(
        f"{k} = {fmt(v)}\n" for k, v in values.items()
    )


def _markdown(s: dict[str, Any]) -> str:
    head = (
        f"# Sweep {s['study']} ({s['model']})\n\n{s['trials']} trials: {s['complete']} complete, {s['pruned']} "
        f"pruned, {s['failed']} failed or diverged"
        + (f" (and {s['retried']} interrupted or lost, each run again as a later trial)" if s["retried"] else "")
        + ". Scored on validation accuracy; test accuracy only for the best.\n\n"
    )
    if s["best"]:
        b = s["best"]
        head += (
            f"Best: trial {b['number']}, val {b['val_acc']:.2f} %, test {b['test_acc']:.2f} %, {short(b['params'])}\n\n"
        )
    table = markdown_table(
        ("trial", "state", "val acc %", "epochs", "seconds", "params"),
        [
            [
                str(r["number"]),
                r["state"],
                "-" if r["value"] is None or r["value"] != r["value"] else f"{r['value']:.2f}",
                str(r["epochs"]),
                "-" if r["seconds"] is None else f"{r['seconds']:.1f}",
                short(r["params"]),
            ]
            for r in s["rows"]
        ],
    )
    return head + table


def _plots(study, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    from toolkit.core.files import atomic_path

    written = []
    for name, plot in (("history", ovm.plot_optimization_history), ("importances", ovm.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                ax = plot(study, evaluator=_importance_evaluator()) if name == "importances" else plot(study)
        except Exception as exc:  # importances need enough complete trials with varied params
            write_text(folder / f"{name}.txt", f"not plotted: {first_line(exc)}\n")
            continue
        path = folder / f"{name}.png"
        with atomic_path(path) as tmp:
            ax.figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(ax.figure)
        written.append(str(path))
    return written
