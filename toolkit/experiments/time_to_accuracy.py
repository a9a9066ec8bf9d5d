"""Time-to-accuracy, DAWNBench-style: wall-clock training seconds until the test accuracy reaches a target.

One-off costs are measured apart and not counted: a warm-up of a few steps on a throwaway model with the
same switches (torch.compile's first compilation, cuDNN autotuning, allocator growth) runs first, then
the real run trains with the model's recipe and evaluates after every epoch, stopping at the first epoch
that reaches the target. Counted: training time of the epochs run. Reported apart: evaluation, warm-up and
the speed policy's timing of its candidates.
"""

from __future__ import annotations

import time
from typing import Any

from toolkit.bench.train_step import toolkit_loop
from toolkit.core.device import pick_device
from toolkit.core.errors import ConfigError
from toolkit.core.files import write_json
from toolkit.data import load_dataset
from toolkit.run.folder import TIME_TO_ACCURACY
from toolkit.train.loop import train
from toolkit.train.progress import Reporter


def time_to_accuracy(
    target: float,
    *,
    model: str = "fast-cnn",
    warmup_steps: int = 5,
    reporter: Reporter | None = None,
    write: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """`target` as a fraction (0.94) or percent (94); `overrides` are TrainConfig fields. `write`: also to the
    run folder's tta.json."""
    percent = target * 100 if target <= 1 else target
    if not 0 < percent <= 100:
        raise ConfigError(f"--time-to-accuracy must be a fraction in (0, 1] or a percent, got {target}")
    device = str(pick_device(overrides.get("device", "auto")))
    warm = 0.0
    if warmup_steps:
        data = load_dataset(
            overrides.get("dataset", "cifar10"),
            True,
            overrides.get("data_dir"),
            limit=4096,
            download=overrides.get("download", True),
        )
        loop = toolkit_loop(
            data,
            model=model,
            batch_size=min(overrides.get("batch_size") or 512, len(data)),
            device=device,
            # Switches left to the speed policy warm up as fp32 eager; the policy's own timing, which runs
            # before the first epoch, is reported apart (decide_seconds).
            amp=overrides.get("amp") if overrides.get("amp") not in (None, "auto") else "off",
            channels_last=bool(overrides.get("channels_last")),
            compile=bool(overrides.get("compile")),
        )
        t0 = time.perf_counter()
        for _ in range(warmup_steps):
            loop.step()
        warm = time.perf_counter() - t0
    result = train(model=model, stop_at_accuracy=percent, reporter=reporter, **{**overrides, "device": device})
    metrics = result.metrics
    train_s = sum(m["train_seconds"] for m in metrics)
    found = {
        "model": model,
        "target_accuracy": percent,
        "reached": result.summary["reached_target"],
        "epochs": len(metrics),
        "final_test_acc": metrics[-1]["test_acc"],
        "time_to_accuracy_s": train_s if result.summary["reached_target"] else None,
        "train_seconds": train_s,
        "eval_seconds": sum(m["epoch_seconds"] - m["train_seconds"] for m in metrics),
        "warmup_seconds": warm,
        "warmup_steps": warmup_steps,
        "decide_seconds": (result.summary.get("speed") or {}).get("decide_seconds", 0.0),
        "device": result.summary["device"],
        "amp": result.summary["amp"],
        "compiled": result.summary["compiled"],
        "channels_last": result.summary["channels_last"],
        "img_per_s": result.summary["img_per_s"],
        "run_dir": str(result.run_dir),
        "per_epoch": [{k: m[k] for k in ("epoch", "test_acc", "train_seconds")} for m in metrics],
    }
    if write:
        write_json(result.run_dir / TIME_TO_ACCURACY, found)
    return found
