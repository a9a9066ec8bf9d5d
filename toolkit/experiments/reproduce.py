"""`toolkit reproduce MODEL --seeds N`: run a recipe with seeds 0..N-1 and say, with statistics, how close
the model comes to its published figure.

Each seed is a normal run folder, OUT/reproduce-<model>/seed-<k>/. Re-running skips finished seeds (a
summary.json written with the same configuration) and resumes an interrupted one. The verdict is
"reproduced" when the reference lies in the 95 % Student-t interval of the mean or within 0.5 pt of it;
otherwise it is the signed gap. A recipe with a TTA policy is compared through its TTA accuracy, the figure
such papers publish.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from toolkit.core.errors import ConfigError, RunFolderError
from toolkit.core.stats import describe
from toolkit.data import provenance
from toolkit.models import get_spec
from toolkit.run.checkpoint import load_checkpoint
from toolkit.run.folder import CHECKPOINT, DEFAULT_ROOT
from toolkit.run.records import Summary, read_metrics
from toolkit.train.config import AUTO, SPEED_SWITCHES, TrainConfig
from toolkit.train.loop import train
from toolkit.train.progress import Reporter

CLOSE_ENOUGH_PT = 0.5
# Fields that may differ between a finished seed and this call without making it another experiment.
_NOT_THE_EXPERIMENT = ("run_name", "out", "data_dir", "download", "device", "eval_batch_size")


def reproduce(
    model: str,
    seeds: int = 3,
    *,
    out: str | os.PathLike = DEFAULT_ROOT,
    reporter: Reporter | None = None,
    progress=lambda line: None,
    write: bool = True,
    step_hook=None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train `model` with seeds 0..seeds-1 (TrainConfig fields as keywords); the dict behind reproduce.json."""
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds must be a positive integer, got {seeds}")
    spec = get_spec(model)
    base = replace(TrainConfig(model=model), **overrides, run_name="seed-0").resolved()
    folder = Path(out) / f"reproduce-{model}"
    runs = []
    for k in range(seeds):
        cfg = replace(base, seed=k, out=str(folder), run_name=f"seed-{k}")
        runs.append(_run_seed(cfg, folder / f"seed-{k}", reporter, progress, step_hook))
    result = summarize_seeds(model, runs, spec.reference_accuracy, spec.source)
    result["data_provenance"] = provenance(base.dataset, base.data_dir)  # checked now, for every seed's files
    result.update(folder=str(folder), config={k: v for k, v in base.to_dict().items() if k not in ("seed", "run_name")})
    if write:
        from toolkit.experiments.reproduce_files import write_reproduce

        result["files"] = [str(f) for f in write_reproduce(result, folder)]
    return result


def _run_seed(cfg: TrainConfig, run_dir: Path, reporter, progress, step_hook) -> dict:
    summary_path = Summary.path(run_dir)
    if (run_dir / CHECKPOINT).exists():
        ckpt = load_checkpoint(run_dir)
        if ckpt["model"]["name"] != cfg.model:
            raise RunFolderError(
                f"{run_dir} holds a {ckpt['model']['name']} run, not {cfg.model}; move it away or pass another --out"
            )
        saved = TrainConfig.from_dict(ckpt["train_config"])
        differs = sorted(
            k
            for k, v in cfg.to_dict().items()
            if k not in _NOT_THE_EXPERIMENT
            and v != getattr(saved, k)
            and not _left_to_policy(k, v)
            and not (k == "image_size" and v is None)  # the data's own size, which the run recorded
        )
        if differs:
            raise RunFolderError(
                f"{run_dir} was trained with other settings ({', '.join(differs)}); "
                f"pass another --out to keep both experiments"
            )
        if summary_path.exists() and ckpt["epoch"] >= _epochs(saved):
            progress(f"seed {cfg.seed}: finished earlier, reused ({run_dir})")
        else:
            progress(f"seed {cfg.seed}: resuming {run_dir}")
            train(resume=run_dir, reporter=reporter, step_hook=step_hook, device=cfg.device, data_dir=cfg.data_dir)
    else:
        progress(f"seed {cfg.seed}: training -> {run_dir}")
        train(cfg, reporter=reporter, step_hook=step_hook)
    return Summary.load(run_dir).data


def _left_to_policy(field: str, value: Any) -> bool:
    """A speed switch left at auto matches whatever the policy chose for the finished seed."""
    return field in SPEED_SWITCHES and value in (AUTO, None)


def _epochs(cfg: TrainConfig) -> int:
    return math.ceil(cfg.epochs)


def summarize_seeds(model: str, summaries: list[dict], reference: float | None, source: str) -> dict[str, Any]:
    """Per-seed figures, their statistics and the verdict against the published reference."""
    tta = summaries[0].get("final_test_acc_tta") is not None
    key = "final_test_acc_tta" if tta else "final_test_acc"
    per_seed = [
        {
            "seed": s["train_config"]["seed"],
            "final_test_acc": s["final_test_acc"],
            "final_test_acc_tta": s.get("final_test_acc_tta"),
            "total_seconds": s["total_seconds"],
            "img_per_s": s["img_per_s"],
            "epochs": s["epochs"],
            # the precision each seed trained in: the speed policy may choose per machine
            "amp": s.get("amp"),
            "channels_last": s.get("channels_last"),
            "compiled": s.get("compiled"),
            "run_dir": s["run_dir"],
            "per_epoch": _per_epoch(Path(s["run_dir"])),
        }
        for s in summaries
    ]
    stats = describe([s[key] for s in per_seed], bounds=(0.0, 100.0))
    verdict, delta = None, None
    if reference is not None and summaries[0]["dataset"] == "cifar10":
        delta = stats["mean"] - reference
        inside = stats["ci95"] is not None and stats["ci95"][0] <= reference <= stats["ci95"][1]
        verdict = "reproduced" if inside or abs(delta) <= CLOSE_ENOUGH_PT else f"gap {delta:+.2f} pt"
    return {
        "model": model,
        "seeds": len(per_seed),
        "compared": key,
        "per_seed": per_seed,
        "stats": stats,
        "reference_accuracy": reference,
        "reference_source": source,
        "delta": delta,
        "verdict": verdict,
    }


def _per_epoch(run_dir: Path) -> list[dict]:
    lines, _ = read_metrics(run_dir)
    return [{k: m.get(k) for k in ("epoch", "test_acc", "test_acc_tta")} for m in lines]
