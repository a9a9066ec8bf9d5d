"""`toolkit runs`: one row per training run under a folder, read from the files each stage leaves there.

A run is a folder with metrics.jsonl (what every training save writes). Its row comes from summary.json
when the run finished, from the last line of metrics.jsonl when it did not (state "stopped"), plus
manifest.json (which files were exported) and parity.json (verify's verdict). A folder whose files cannot
be read is skipped with a note naming it; nothing here writes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.errors import ConfigError
from toolkit.run.checkpoint import load_checkpoint
from toolkit.run.folder import DEFAULT_ROOT, MANIFEST, METRICS, PARITY
from toolkit.run.records import Manifest, Parity, RecordVersionError, RunFileError, Summary, read_metrics

_SUMMARY_FIGURES = (
    "final_test_acc_tta", "final_test_acc", "best_test_acc", "final_val_acc", "delta_vs_reference", "img_per_s",
)  # fmt: skip
SORT_KEYS = ("date", "model", "test_acc", "best_test_acc", "val_acc", "img_per_s", "run")
MAX_DEPTH = 4  # artifacts/reproduce-<model>/seed-<k>/ and artifacts/sweeps/<study>/trial-<k>/ sit two deep


@dataclass
class RunRow:
    run: str  # the folder, relative to the root listed
    state: str  # finished | stopped
    model: str | None = None
    dataset: str | None = None
    epochs: int | None = None
    test_acc: float | None = None  # final (TTA where the recipe has it)
    best_test_acc: float | None = None
    val_acc: float | None = None
    delta_vs_reference: float | None = None
    device: str | None = None
    precision: str | None = None  # amp, channels_last, compile
    img_per_s: float | None = None
    date: str | None = None  # when the last training file was written
    exports: list[str] = field(default_factory=list)  # in manifest.json and on disk
    verify: str | None = None  # pass | FAIL | unreadable | None (never verified)
    problems: list[str] = field(default_factory=list)  # a damaged file the row was read around

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(data: dict[str, Any], key: str, where: str) -> float | None:
    """A figure from a run's file: a finite number or absent; anything else makes the row unreadable."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        raise ValueError(f"{where}: {key!r} is {json.dumps(value)[:40]}, not a finite number")
    return value


def run_row(folder: Path, root: Path) -> RunRow:
    metrics_path = folder / METRICS
    lines, problems = read_metrics(folder)
    summary_path = Summary.path(folder)
    row = RunRow(run=str(folder.relative_to(root)), state="finished" if summary_path.is_file() else "stopped")
    row.problems = problems
    newest = max(p.stat().st_mtime for p in (metrics_path, summary_path) if p.is_file())
    row.date = time.strftime("%Y-%m-%d %H:%M", time.localtime(newest))
    if summary_path.is_file():
        summary = Summary.load(folder)
        s, cfg = summary.data, summary.train_config
        num = {k: _number(s, k, summary_path.name) for k in (*_SUMMARY_FIGURES, "epochs")}
        row.model, row.dataset, row.epochs = s.get("model"), s.get("dataset"), num["epochs"]
        row.test_acc = num["final_test_acc_tta"] if num["final_test_acc_tta"] is not None else num["final_test_acc"]
        row.best_test_acc, row.val_acc = num["best_test_acc"], num["final_val_acc"]
        row.delta_vs_reference, row.device, row.img_per_s = num["delta_vs_reference"], s.get("device"), num["img_per_s"]
        switches = [f"amp {s['amp']}"] if s.get("amp", "off") != "off" else []
        switches += [k for k in ("channels_last", "compiled") if s.get(k)]
        row.precision = ", ".join(switches) or "fp32"
        row.model = row.model or cfg.get("model")
    elif lines:
        figures = [{k: _number(m, k, METRICS) for k in ("epoch", "test_acc", "val_acc", "img_per_s")} for m in lines]
        last = figures[-1]
        row.epochs, row.test_acc, row.val_acc = last["epoch"], last["test_acc"], last["val_acc"]
        row.best_test_acc = max((m["test_acc"] for m in figures if m["test_acc"] is not None), default=None)
        row.img_per_s = last["img_per_s"]
    if (folder / MANIFEST).is_file():
        manifest = Manifest.read(folder)
        if manifest is None:
            row.problems.append(f"{MANIFEST} is cut or not a JSON object; exports not listed")
        files = manifest.files if manifest else {}
        # What is on disk, not what the manifest once listed: a deleted file is no export.
        row.exports = sorted(name for name in files if isinstance(name, str) and (folder / name).is_file())
    if (folder / PARITY).is_file():
        parity = Parity.read(folder)
        if parity is None:
            row.verify = "unreadable"
            row.problems.append(f"{PARITY} is cut or not a JSON object; re-run toolkit verify")
        else:
            row.verify = "pass" if parity.passed else "FAIL"
    return row


def list_runs(root: str | os.PathLike = DEFAULT_ROOT, sort: str = "date") -> tuple[list[RunRow], list[str]]:
    """(rows, notes): every run folder under `root`, sorted by `sort` (numbers: highest first)."""
    if sort not in SORT_KEYS:
        raise ConfigError(f"unknown --sort {sort!r}; choose one of: {', '.join(SORT_KEYS)}")
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder; pass --out with the folder that holds your runs")
    rows, notes = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        if len(folder.relative_to(root).parts) >= MAX_DEPTH:
            dirnames.clear()
        if METRICS not in filenames:
            continue
        try:
            rows.append(run_row(folder, root))
        except RecordVersionError:
            raise  # a newer toolkit's run: not listed half-read
        except (OSError, ValueError, AttributeError, TypeError, RunFileError) as exc:
            notes.append(f"skipped {folder}: its files cannot be read ({type(exc).__name__}: {exc})")
            continue
        notes.extend(f"{folder}: {problem}" for problem in rows[-1].problems)
    present = [r for r in rows if getattr(r, sort) is not None]
    absent = [r for r in rows if getattr(r, sort) is None]  # a stopped run has no device, a run no val acc
    # Names ascending; dates (newest first) and figures (highest first) descending.
    rows = sorted(present, key=lambda r: getattr(r, sort), reverse=sort not in ("model", "run")) + absent
    return rows, notes


def _config_and_metrics(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from toolkit.core.errors import RunFolderError

    metrics_path = folder / METRICS
    if not metrics_path.is_file():
        raise RunFolderError(f"{folder} is not a training run (no {METRICS}); pass a run folder")
    metrics, _ = read_metrics(folder)
    if Summary.path(folder).is_file():
        return Summary.load(folder).train_config, metrics
    return load_checkpoint(folder, mmap=True)["train_config"], metrics  # a stopped run


def compare_runs(a: str | os.PathLike, b: str | os.PathLike, png: str | os.PathLike | None = None) -> dict[str, Any]:
    """Two runs side by side: the configuration fields that differ, their figures, and (to `png`) their
    test (and val) accuracy per epoch in one plot."""
    a, b = Path(a), Path(b)
    try:
        (cfg_a, m_a), (cfg_b, m_b) = _config_and_metrics(a), _config_and_metrics(b)
    except RecordVersionError:
        raise
    except (OSError, ValueError, RunFileError) as exc:
        raise ConfigError(f"cannot read the runs: {type(exc).__name__}: {exc}") from None
    ignore = {"run_name", "out"}  # differ by construction
    keys = sorted((set(cfg_a) | set(cfg_b)) - ignore)
    differences = {k: [cfg_a.get(k), cfg_b.get(k)] for k in keys if cfg_a.get(k) != cfg_b.get(k)}
    try:
        rows = {str(p): run_row(p, p.parent).to_dict() for p in (a, b)}
    except RecordVersionError:
        raise
    except (OSError, ValueError, AttributeError, TypeError, RunFileError) as exc:
        raise ConfigError(f"cannot read the runs: {exc}") from None
    result = {"runs": [str(a), str(b)], "config_differences": differences, "figures": rows}
    if png is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from toolkit.core.files import atomic_path

        fig, ax = plt.subplots(figsize=(7, 4))
        for path, metrics, style in ((a, m_a, "-"), (b, m_b, "--")):
            epochs = [m["epoch"] for m in metrics]
            if any("test_acc" in m for m in metrics):
                ax.plot(epochs, [m.get("test_acc") for m in metrics], style, marker="o", label=f"{path.name} test")
            if any("val_acc" in m for m in metrics):
                ax.plot(epochs, [m.get("val_acc") for m in metrics], style, marker="x", label=f"{path.name} val")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy %")
        ax.grid(alpha=0.3)
        ax.legend()
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
        plt.close(fig)
        result["png"] = str(png)
    return result
