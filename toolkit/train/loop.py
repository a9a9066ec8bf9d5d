"""The training loop: `train(model="tutorial-cnn", epochs=10)` or `train(TrainConfig(...))`.

One loop serves CPU, CUDA and MPS, one process or many under torchrun (DDP). It is four parts: the speed
policy's choice (speed.py), set-up (setup.py's `prepare`), one epoch (`run_epoch`), and a pure summary
(`summarize`). A checkpoint is written atomically after every epoch;
SIGINT (Ctrl-C) or SIGTERM stops at the next step boundary and writes one that resumes mid-epoch exactly.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.core.device import pick_device, synchronize
from toolkit.core.errors import ConfigError, Interrupted, TrainingDiverged
from toolkit.models import get_spec
from toolkit.run.checkpoint import load_checkpoint, trusted_spec
from toolkit.run.folder import CHECKPOINT, claim_run_dir
from toolkit.run.records import Summary, write_metrics
from toolkit.train import distributed, speed
from toolkit.train.checkpoint import make_payload, save_checkpoint, versions
from toolkit.train.config import TrainConfig
from toolkit.train.evaluation import evaluate
from toolkit.train.progress import Reporter
from toolkit.train.setup import (
    Training,
    TrainState,
    batches_per_epoch,
    epochs_to_run,
    load_training_set,
    prepare,
    total_steps,
)
from toolkit.train.speed import SpeedDecision
from toolkit.train.speed_probe import decide_speed
from toolkit.train.step import NonFiniteLoss, RunningSums, weights_finite

__all__ = ["StopFlag", "TrainResult", "TrainState", "Training", "prepare", "total_steps", "train"]

RESUME_OVERRIDES = ("epochs", "device", "data_dir", "download")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]
    model: nn.Module


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it at every step boundary."""

    signum: int | None = None


def run_epoch(
    t: Training, stop: StopFlag, reporter: Reporter, step_hook: Callable[[int, int], None] | None = None
) -> dict | None:
    """Train the current epoch from where the state stands; its metrics, or None when a signal stopped it.

    A signal on the epoch's last step lets the epoch finish (evaluation included), so a checkpoint never
    points past the end of an epoch.
    """
    cfg, st = t.cfg, t.state
    epoch, start = st.epoch, st.batch
    batches = min(len(t.train_loader), t.total_steps - epoch * len(t.train_loader))  # a fractional last epoch
    sums = RunningSums(t.device, st.partial)
    seconds_before = (st.partial or {}).get("seconds", 0.0)
    reporter.epoch_start(epoch + 1, epochs_to_run(cfg), batches, start)
    params = dict(t.model.named_parameters())
    for name, epochs in cfg.freeze_after or ():  # e.g. airbench's whitening bias trains for 3 epochs
        params[name].requires_grad_(epoch < epochs)
    t.step.model.train()
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(t.train_loader.epoch(epoch, start), start=start):
        if i >= batches:
            break
        t.step(x, y, st.global_step, sums)
        st.global_step += 1
        reporter.batch(i + 1)
        if step_hook is not None:
            step_hook(epoch, i)
        if stop.signum is not None and i + 1 < batches:
            st.batch = i + 1
            st.partial = {**sums.to_dict(), "seconds": seconds_before + time.perf_counter() - t0}
            return None
    if not (sums.finite() and weights_finite(t.model)):  # the weights catch a last update that overflowed
        raise NonFiniteLoss(st.global_step - 1, t.step.schedule(st.global_step - 1))
    last = st.global_step >= t.total_steps
    if last and t.lookahead is not None:
        t.lookahead.finish()  # the final model is the slow weights
    synchronize(t.device)
    train_seconds = seconds_before + time.perf_counter() - t0
    loss_sum, correct, seen = t.dist.all_reduce_sums(sums.loss_sum, sums.correct, sums.seen)
    test = {}
    if t.test_loader is not None:
        test["test_acc"], test["test_loss"] = evaluate(t.model, t.test_loader, cfg.amp)
    val = {}
    if t.val_loader is not None:
        val["val_acc"], val["val_loss"] = evaluate(t.model, t.val_loader, cfg.amp)
    tta = {}
    # Six views cost six evaluations: at the end, or every epoch when a target accuracy is checked.
    if cfg.tta != "none" and t.test_loader is not None and (last or cfg.stop_at_accuracy is not None):
        tta["test_acc_tta"] = evaluate(t.model, t.test_loader, cfg.amp, cfg.tta)[0]
    epoch_seconds = seconds_before + time.perf_counter() - t0
    return {
        **tta,
        **val,
        "epoch": epoch + 1,
        "train_loss": loss_sum / seen,
        "train_acc": 100.0 * correct / seen,
        **test,
        "lr": t.step.schedule(max(st.global_step - 1, 0)),
        "img_per_s": seen / train_seconds,
        "train_seconds": train_seconds,
        "epoch_seconds": epoch_seconds,
    }


def summarize(t: Training, run_dir: Path) -> dict[str, Any]:
    """The run's summary.json, computed from its state alone."""
    cfg, metrics = t.cfg, t.state.metrics
    spec = get_spec(cfg.model, cfg.model_args)
    # Without test evaluation (sweep trials) the best epoch is the best on validation.
    score = "test_acc" if "test_acc" in metrics[-1] else "val_acc"
    best = max(metrics, key=lambda m: m[score])
    final = metrics[-1].get("test_acc")
    final_tta = metrics[-1].get("test_acc_tta")
    # A recipe with a TTA policy is published with it (airbench94's 94.01 % is a TTA figure).
    compared = final_tta if final_tta is not None else final
    images = sum(m["img_per_s"] * m["train_seconds"] for m in metrics)
    ref = spec.reference_accuracy if cfg.dataset == "cifar10" else None
    return {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "epochs": len(metrics),
        "epochs_planned": cfg.epochs,
        "steps": t.state.global_step,
        "final_test_acc": final,
        "final_test_acc_tta": final_tta,
        "tta": cfg.tta,
        "best_test_acc": best.get("test_acc"),
        "best_epoch": best["epoch"],
        "final_val_acc": metrics[-1].get("val_acc"),
        "best_val_acc": max((m["val_acc"] for m in metrics if "val_acc" in m), default=None),
        "val_size": cfg.val_size,
        "reference_accuracy": ref,
        "reference_source": spec.source,
        "delta_vs_reference": None if ref is None or compared is None else compared - ref,
        "target_accuracy": cfg.stop_at_accuracy,
        "reached_target": _reached_target(cfg, metrics),
        "total_seconds": t.state.elapsed,
        "img_per_s": images / sum(m["train_seconds"] for m in metrics),
        "device": str(t.device),
        "world_size": t.dist.world_size,
        "threads": torch.get_num_threads(),
        "fused_optimizer": t.fused,
        **t.precision.describe(),
        "speed": t.speed.to_dict() if t.speed is not None else None,
        "data_provenance": t.data_provenance,
        "train_config": cfg.to_dict(),
        "run_dir": str(run_dir),
        "versions": versions(),
    }


def _reached_target(cfg: TrainConfig, metrics: list[dict]) -> bool:
    if cfg.stop_at_accuracy is None or not metrics:
        return False
    last = metrics[-1]
    return last.get("test_acc_tta", last["test_acc"]) >= cfg.stop_at_accuracy


def train(
    config: TrainConfig | None = None,
    *,
    resume: str | Path | None = None,
    reporter: Reporter | None = None,
    step_hook: Callable[[int, int], None] | None = None,
    stop: StopFlag | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train a registry model; keyword overrides are TrainConfig fields (`train(model="resnet20", epochs=2)`).

    With `resume`, the run continues from that checkpoint in its own folder; only `epochs`, `device`,
    `data_dir` and `download` may then differ from the checkpoint's configuration. A caller that handles
    signals itself (a sweep, whose trials may run in worker threads, where no handler can be installed)
    passes its own `stop` flag: setting it stops the run as a signal would, with a resumable checkpoint.
    """
    reporter = reporter or Reporter()
    cfg, run_dir, ckpt = _resolve(config, resume, overrides)
    dist = distributed.setup(cfg.device)
    device = dist.device if dist.enabled else pick_device(cfg.device)
    if device.type == "cpu":
        # Adam's first moment decays by beta1 each step wherever a gradient is zero (dead ReLUs in the
        # tutorial CNN's 25.7 M-weight fc1): within an epoch millions of entries reach the denormal range,
        # where x86 arithmetic is many times slower (measured: 215 img/s fell below 80). Flushing them to
        # zero costs nothing in accuracy; it is process-wide and stays on, as torch offers no getter.
        torch.set_flush_denormal(True)
    if not dist.is_main:
        reporter = Reporter()
    claim = claim_run_dir(run_dir, resuming=ckpt is not None) if dist.is_main else contextlib.nullcontext()
    stop = stop or StopFlag()
    with dist.guard(), claim, stop_on_signals(stop, enabled=not dist.enabled):
        train_set, data_provenance = load_training_set(cfg, reporter.note)
        if cfg.image_size is None:  # the data's own size, recorded so exports and a resume know it
            cfg = replace(cfg, image_size=train_set.image_size)
        cfg, decision = _decide_speed(cfg, device, dist, ckpt, train_set, reporter)
        t = prepare(cfg, device, dist, ckpt, train_set=train_set, data_provenance=data_provenance)
        t.speed = decision
        reporter.start(_describe(t, run_dir, resumed=ckpt is not None))
        while t.state.epoch < epochs_to_run(cfg) and not _reached_target(cfg, t.state.metrics):
            try:
                metrics = run_epoch(t, stop, reporter, step_hook)
            except NonFiniteLoss as exc:
                raise _diverged(t, run_dir, exc) from None
            if metrics is not None:
                st = t.state
                st.epoch, st.batch, st.partial = st.epoch + 1, 0, None
                st.elapsed += metrics["epoch_seconds"]
                st.metrics.append(metrics)
                _save(t, run_dir)
                reporter.epoch_end(metrics)
            if stop.signum is not None and (metrics is None or t.state.epoch < epochs_to_run(cfg)):
                if metrics is None:
                    _save(t, run_dir)
                raise _interrupted(t, run_dir, stop.signum)
        summary = summarize(t, run_dir)
        if dist.is_main:
            Summary.write(run_dir, summary)
        reporter.finish(summary)
    return TrainResult(run_dir, summary, t.state.metrics, t.model)


def _decide_speed(cfg: TrainConfig, device, dist, ckpt, train_set, reporter) -> tuple[TrainConfig, SpeedDecision]:
    """The speed policy's switches for this run (speed.py): the checkpoint's on a resume; under DDP rank 0
    decides and every rank takes its choice (ranks must agree on the memory format)."""
    if ckpt is not None:
        recorded = ckpt.get("speed") or {}
        choice = speed.Choice(cfg.amp, cfg.channels_last, cfg.compile)
        return cfg, SpeedDecision(choice, "resumed", recorded.get("asked") or speed.asked(cfg))
    decision = None
    if dist.is_main:
        steps = total_steps(cfg, batches_per_epoch(cfg, len(train_set)))
        decision = decide_speed(cfg, device, train_set, steps, dist.world_size, reporter.note)
    decision = dist.broadcast_object(decision)
    return speed.apply(cfg, decision), decision


def _resolve(config: TrainConfig | None, resume, overrides: dict) -> tuple[TrainConfig, Path, dict | None]:
    if resume is None:
        cfg = replace(config or TrainConfig(), **overrides).resolved()
        return cfg, Path(cfg.out) / cfg.run_name, None
    named = overrides.get("model") or (config and config.model)
    ckpt = load_checkpoint(resume, expect_model=named)
    trusted_spec(ckpt["model"], named)  # a factory model resumes only when --model names it again
    saved = TrainConfig.from_dict(ckpt["train_config"])
    changed = sorted(
        k for k, v in overrides.items() if k not in RESUME_OVERRIDES and v is not None and v != getattr(saved, k, None)
    )
    if changed:
        raise ConfigError(
            f"cannot change {', '.join('--' + k.replace('_', '-') for k in changed)} when resuming; "
            f"start a new run instead"
        )
    cfg = replace(saved, **{k: v for k, v in overrides.items() if k in RESUME_OVERRIDES and v is not None})
    cfg.validate()
    run_dir = Path(resume) if Path(resume).is_dir() else Path(resume).parent
    return cfg, run_dir, ckpt


def _save(t: Training, run_dir: Path) -> None:
    if not t.dist.is_main:
        return
    save_checkpoint(
        run_dir / CHECKPOINT,
        make_payload(
            t.cfg,
            t.model,
            t.classes,
            t.mean,
            t.std,
            progress=t.state.to_dict(),
            optimizer=t.optimizer.state_dict(),
            lookahead=t.lookahead.state_dict() if t.lookahead is not None else None,
            grad_scaler=t.precision.state_dict(),
            world_size=t.dist.world_size,
            speed=t.speed.to_dict() if t.speed is not None else None,
        ),
    )
    write_metrics(run_dir, t.state.metrics)


def _diverged(t: Training, run_dir: Path, exc: NonFiniteLoss) -> TrainingDiverged:
    kept = (
        f"the last good checkpoint is kept at {run_dir / CHECKPOINT}"
        if t.state.epoch > 0
        else "no checkpoint was written"
    )
    epoch = exc.step // max(len(t.train_loader), 1) + 1
    return TrainingDiverged(
        f"loss or weights became NaN/inf in epoch {epoch} by step {exc.step + 1} "
        f"(lr {exc.lr:g} at that step); lower --lr; {kept}"
    )


def _interrupted(t: Training, run_dir: Path, signum: int) -> Interrupted:
    st = t.state
    where = f"in epoch {st.epoch + 1} at step {st.batch}" if st.batch else f"after epoch {st.epoch}"
    return Interrupted(
        f"stopped by {signal.Signals(signum).name} {where}; checkpoint saved, resume with: "
        f"toolkit train --resume {shlex.quote(str(run_dir))}",
        signum,
    )


def _describe(t: Training, run_dir: Path, *, resumed: bool) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "model": t.cfg.model,
        "device": str(t.device),
        "world_size": t.dist.world_size,
        "train_size": t.train_loader.num_samples,
        "val_size": t.val_loader.num_samples if t.val_loader is not None else 0,
        "test_size": t.test_loader.num_samples if t.test_loader is not None else 0,
        "fused_optimizer": t.fused,
        "resumed_from_epoch": t.state.epoch if resumed else None,
        "threads": torch.get_num_threads(),
        **t.precision.describe(),
        "speed": t.speed.line() if t.speed is not None else "",
    }


@contextlib.contextmanager
def stop_on_signals(stop: StopFlag, *, enabled: bool):
    """A first SIGINT/SIGTERM asks the loop to stop at the next step boundary; a second one stops at once.

    Under torchrun every rank gets the signal at a different step; stopping them in step is not worth the
    risk of a hang, so DDP runs keep Python's defaults (they resume from the last epoch checkpoint).
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def handler(signum, frame):
        if stop.signum is not None:
            for s, h in previous.items():
                signal.signal(s, h)
            raise KeyboardInterrupt
        stop.signum = signum

    for s in STOP_SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
