"""The training loop: `train(model="tutorial-cnn", epochs=10)` or `train(TrainConfig(...))`.

One loop serves CPU, CUDA and MPS, one process or many under torchrun (DDP). It is three parts: set-up
(`prepare`: data on the device, model, optimizer, the shared TrainStep, state from a checkpoint), one epoch
(`run_epoch`), and a pure summary (`summarize`). A checkpoint is written atomically after every epoch;
SIGINT (Ctrl-C) or SIGTERM stops at the next step boundary and writes one that resumes mid-epoch exactly.
"""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.core.device import pick_device, synchronize
from toolkit.core.errors import ConfigError, Interrupted, TrainingDiverged
from toolkit.core.files import write_json, write_text
from toolkit.core.runs import CHECKPOINT, METRICS, SUMMARY, claim_run_dir
from toolkit.data import (
    ImageSet,
    TensorLoader,
    load_dataset,
    normalization,
    num_classes,
    provenance,
    stratified_split,
)
from toolkit.models import create_model, get_spec
from toolkit.train import distributed
from toolkit.train.checkpoint import load_checkpoint, make_payload, save_checkpoint, versions
from toolkit.train.config import TrainConfig
from toolkit.train.evaluation import evaluate
from toolkit.train.lookahead import Lookahead
from toolkit.train.optim import lr_at, make_optimizer
from toolkit.train.precision import Precision
from toolkit.train.progress import Reporter
from toolkit.train.step import NonFiniteLoss, RunningSums, TrainStep, weights_finite

RESUME_OVERRIDES = ("epochs", "device", "data_dir", "download")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint so a run resumes mid-epoch exactly."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch completed
    global_step: int = 0  # optimizer steps over the whole run
    partial: dict | None = None  # running sums of an interrupted epoch (RunningSums.to_dict + seconds)
    metrics: list[dict] = field(default_factory=list)  # one entry per completed epoch
    elapsed: float = 0.0  # seconds of completed epochs, evaluation included

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainState:
        return cls(**{k: d[k] for k in ("epoch", "batch", "global_step", "partial", "metrics", "elapsed")})


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]
    model: nn.Module


@dataclass
class Training:
    """Everything one run trains with, built by `prepare`."""

    cfg: TrainConfig
    device: torch.device
    dist: distributed.DistContext
    model: nn.Module  # the plain module: what is saved and evaluated
    optimizer: torch.optim.Optimizer
    fused: bool
    precision: Precision
    step: TrainStep
    train_loader: TensorLoader
    test_loader: TensorLoader | None  # None when the config turns test evaluation off (sweep trials)
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    state: TrainState
    lookahead: Lookahead | None = None
    data_provenance: dict | None = None  # which copy of the data set (official files or not)
    val_loader: TensorLoader | None = None  # --val-size images held out of the training set

    @property
    def total_steps(self) -> int:
        return total_steps(self.cfg, len(self.train_loader))


def total_steps(cfg: TrainConfig, batches_per_epoch: int) -> int:
    """Optimizer steps of the whole run: a fractional epoch count (airbench's 9.9) ends the last epoch early."""
    return math.ceil(cfg.epochs * batches_per_epoch)


def epochs_to_run(cfg: TrainConfig) -> int:
    return math.ceil(cfg.epochs)


def prepare(
    cfg: TrainConfig,
    device: torch.device,
    dist: distributed.DistContext | None = None,
    ckpt: dict | None = None,
    train_set: ImageSet | None = None,
    test_set: ImageSet | None = None,
) -> Training:
    """Set-up: data on the device, model, optimizer, precision switches and the step; state from `ckpt`."""
    dist = dist or distributed.DistContext()
    if cfg.batch_size % dist.world_size:
        raise ConfigError(
            f"--batch-size {cfg.batch_size} must be divisible by the {dist.world_size} "
            f"processes (it is the global batch)"
        )
    data_provenance = None
    if train_set is None:
        train_set = load_dataset(
            cfg.dataset, True, cfg.data_dir, limit=cfg.limit_train, download=cfg.download, seed=cfg.seed
        )
        data_provenance = provenance(cfg.dataset, cfg.data_dir)
    if test_set is None and cfg.test_eval:
        test_set = load_dataset(
            cfg.dataset, False, cfg.data_dir, limit=cfg.limit_test, download=cfg.download, seed=cfg.seed
        )
    val_set = None
    if cfg.val_size:
        train_set, val_set = stratified_split(train_set, cfg.val_size, cfg.seed)
    mean, std = normalization(cfg.dataset, cfg.normalize)
    common = dict(device=device, mean=mean, std=std, channels_last=cfg.channels_last)
    train_loader = TensorLoader(
        train_set,
        cfg.batch_size,
        shuffle=True,
        augment=cfg.augment,
        crop_padding=cfg.crop_padding,
        crop_pad_mode=cfg.crop_pad_mode,
        flip=cfg.flip,
        drop_last=cfg.drop_last,
        seed=cfg.seed,
        rank=dist.rank,
        world_size=dist.world_size,
        **common,
    )
    test_loader = TensorLoader(test_set, cfg.eval_batch_size, **common) if cfg.test_eval else None
    val_loader = TensorLoader(val_set, cfg.eval_batch_size, **common) if val_set is not None else None

    torch.manual_seed(cfg.seed)  # identical initial weights on every rank and every resume
    precision = Precision(cfg.amp, cfg.channels_last, cfg.compile, device)
    model = precision.prepare_model(create_model(cfg.model, num_classes(cfg.dataset)).to(device))
    _check_parameter_names(model, cfg)
    if cfg.data_init_images and ckpt is None:
        _init_from_data(model, cfg, train_loader)
    optimizer, fused = make_optimizer(model, cfg, device)
    total = total_steps(cfg, len(train_loader))
    lookahead = Lookahead(model, cfg.lookahead_every, cfg.lookahead_decay, total) if cfg.lookahead_every else None
    state = TrainState()
    if ckpt is not None:
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        precision.load_state_dict(ckpt.get("grad_scaler"))
        if lookahead is not None:
            lookahead.load_state_dict(ckpt["lookahead"])
        state = TrainState.from_dict(ckpt["progress"])
    step = TrainStep(
        precision.wrap_for_training(dist.wrap(model)),
        optimizer,
        precision,
        lambda i: lr_at(i, total, cfg),
        cfg.label_smoothing,
        lookahead,
    )
    return Training(
        cfg,
        device,
        dist,
        model,
        optimizer,
        fused,
        precision,
        step,
        train_loader,
        test_loader,
        train_set.classes,
        mean,
        std,
        state,
        lookahead,
        data_provenance,
        val_loader,
    )


def _check_parameter_names(model: nn.Module, cfg: TrainConfig) -> None:
    names = dict(model.named_parameters())
    for name, _ in cfg.freeze_after or ():
        if name not in names:
            raise ConfigError(f"freeze_after names {name!r}, which {cfg.model} does not have")


def _init_from_data(model: nn.Module, cfg: TrainConfig, loader: TensorLoader) -> None:
    """Data-dependent initialisation declared by the recipe: the first N training images, normalised as
    in training but not augmented, go to the model's own init_from_data()."""
    init = getattr(model, "init_from_data", None)
    if init is None:
        raise ConfigError(f"the recipe asks for data_init_images but {cfg.model} has no init_from_data()")
    init(loader.to_float(loader.images[: cfg.data_init_images]))


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
    spec = get_spec(cfg.model)
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
        t = prepare(cfg, device, dist, ckpt)
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
            write_json(run_dir / SUMMARY, summary)
        reporter.finish(summary)
    return TrainResult(run_dir, summary, t.state.metrics, t.model)


def _resolve(config: TrainConfig | None, resume, overrides: dict) -> tuple[TrainConfig, Path, dict | None]:
    if resume is None:
        cfg = replace(config or TrainConfig(), **overrides).resolved()
        return cfg, Path(cfg.out) / cfg.run_name, None
    ckpt = load_checkpoint(resume, expect_model=overrides.get("model") or (config and config.model))
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
        ),
    )
    write_text(run_dir / METRICS, "".join(json.dumps(m) + "\n" for m in t.state.metrics))


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
