"""The training loop: `train(model="tutorial-cnn", epochs=10)` or `train(TrainConfig(...))`.

One loop serves CPU, CUDA and MPS, one process or many under torchrun (DDP). Data lives on the device
(`TensorLoader`), the optimizer is fused where torch has kernels for it, and the loss is checked for
NaN/inf without a device sync every step. A checkpoint is written atomically after every epoch; Ctrl-C
stops at the next step boundary and writes one that resumes mid-epoch exactly.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from toolkit import distributed
from toolkit.checkpoint import CHECKPOINT_NAME, load_checkpoint, make_payload, save_checkpoint, versions
from toolkit.config import TrainConfig
from toolkit.data import load_dataset, normalization, num_classes
from toolkit.device import pick_device, synchronize
from toolkit.errors import ConfigError, Interrupted, TrainingDiverged
from toolkit.fsutil import write_json, write_text
from toolkit.loader import TensorLoader
from toolkit.models import create_model, get_spec
from toolkit.optim import lr_at, make_optimizer, set_lr
from toolkit.progress import Reporter, SilentReporter
from toolkit.speed import SpeedSetup

RESUME_OVERRIDES = ("epochs", "device", "data_dir", "download")


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]
    model: nn.Module


@torch.inference_mode()
def evaluate(model: nn.Module, loader: TensorLoader, amp: str = "off") -> tuple[float, float]:
    """(accuracy in percent, mean cross-entropy) over every sample of `loader`."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=loader.device)
    loss_sum = torch.zeros((), device=loader.device)
    for x, y in loader.epoch(0):
        with SpeedSetup.autocast(loader.device, amp):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    n = max(loader.num_samples, 1)
    return 100.0 * correct.item() / n, loss_sum.item() / n


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None,
          reporter: Reporter | None = None, step_hook: Callable[[int, int], None] | None = None,
          **overrides: Any) -> TrainResult:
    """Train a registry model; keyword overrides are TrainConfig fields (`train(model="resnet20", epochs=2)`).

    With `resume`, the run continues from that checkpoint in its own folder; only `epochs`, `device`,
    `data_dir` and `download` may then differ from the checkpoint's configuration.
    """
    reporter = reporter or SilentReporter()
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume, expect_model=overrides.get("model") or (config and config.model))
        bad = set(overrides) - set(RESUME_OVERRIDES) - {"model"}
        if bad:
            raise ConfigError(f"cannot change {', '.join(sorted(bad))} when resuming; start a new run instead")
        cfg = replace(TrainConfig.from_dict(ckpt["train_config"]),
                      **{k: v for k, v in overrides.items() if k in RESUME_OVERRIDES and v is not None})
        cfg.validate()
        run_dir = Path(resume) if Path(resume).is_dir() else Path(resume).parent
    else:
        cfg = replace(config or TrainConfig(), **overrides).resolved()
        run_dir = Path(cfg.out) / cfg.run_name
    return _Trainer(cfg, run_dir, ckpt, reporter, step_hook).run()


class _Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: Path, ckpt: dict | None, reporter: Reporter,
                 step_hook: Callable[[int, int], None] | None):
        self.dist = distributed.setup(cfg.device)
        self.device = self.dist.device if self.dist.enabled else pick_device(cfg.device)
        self.cfg, self.run_dir, self.ckpt, self.step_hook = cfg, run_dir, ckpt, step_hook
        self.reporter = reporter if self.dist.is_main else SilentReporter()
        self.stop_requested = False
        if self.dist.is_main:
            _prepare_run_dir(run_dir, resuming=ckpt is not None)

    # -- set-up -------------------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, dev = self.cfg, self.device
        train_set = load_dataset(cfg.dataset, True, cfg.data_dir, limit=cfg.limit_train,
                                 download=cfg.download, seed=cfg.seed)
        test_set = load_dataset(cfg.dataset, False, cfg.data_dir, limit=cfg.limit_test,
                                download=cfg.download, seed=cfg.seed)
        self.classes = train_set.classes
        self.mean, self.std = normalization(cfg.dataset, cfg.normalize)
        common = dict(device=dev, mean=self.mean, std=self.std, channels_last=cfg.channels_last)
        if cfg.batch_size % self.dist.world_size:
            raise ConfigError(f"--batch-size {cfg.batch_size} must be divisible by the {self.dist.world_size} "
                              f"processes (it is the global batch)")
        self.train_loader = TensorLoader(train_set, cfg.batch_size, shuffle=True, augment=cfg.augment,
                                         seed=cfg.seed, rank=self.dist.rank, world_size=self.dist.world_size,
                                         **common)
        self.test_loader = TensorLoader(test_set, cfg.eval_batch_size, **common)

        torch.manual_seed(cfg.seed)  # identical initial weights on every rank and every resume
        model = create_model(cfg.model, num_classes(cfg.dataset)).to(dev)
        self.speed = SpeedSetup(cfg, dev)
        self.model = self.speed.prepare_model(model)
        self.optimizer, self.fused = make_optimizer(self.model, cfg, dev)
        self.train_model = self.speed.wrap_for_training(self.dist.wrap(self.model))
        self.state = {"epoch": 0, "batch": 0, "global_step": 0, "partial": None, "metrics": [],
                      "elapsed": 0.0}
        if self.ckpt is not None:
            self.model.load_state_dict(self.ckpt["state_dict"])
            self.optimizer.load_state_dict(self.ckpt["optimizer"])
            self.speed.load_state_dict(self.ckpt.get("grad_scaler"))
            for key in self.state:
                self.state[key] = self.ckpt["progress"][key]

    # -- loop ---------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        self._build()
        cfg, st = self.cfg, self.state
        total_steps = cfg.epochs * len(self.train_loader)
        self.reporter.start(self._describe())
        with _sigint_sets(self), self.dist.guard():
            while st["epoch"] < cfg.epochs and not self._reached_target():
                self._train_epoch(total_steps)
                if self.stop_requested:
                    self._interrupt()
        return self._finish()

    def _train_epoch(self, total_steps: int) -> None:
        cfg, st, dev = self.cfg, self.state, self.device
        epoch, start = st["epoch"], st["batch"]
        partial = st["partial"] or {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        loss_sum = torch.tensor(partial["loss_sum"], device=dev, dtype=torch.float64)
        correct = torch.tensor(partial["correct"], device=dev)
        seen, check_every = partial["seen"], 1 if dev.type == "cpu" else 50
        self.reporter.epoch_start(epoch + 1, cfg.epochs, len(self.train_loader), start)
        self.train_model.train()
        t0 = time.perf_counter()
        i = start
        for i, (x, y) in enumerate(self.train_loader.epoch(epoch, start), start=start):
            lr = lr_at(st["global_step"], total_steps, cfg)
            set_lr(self.optimizer, lr)
            loss, logits = self.speed.step(self.train_model, self.optimizer, x, y, cfg.label_smoothing)
            loss_sum += loss.detach().double() * y.shape[0]
            correct += (logits.detach().argmax(1) == y).sum()
            seen += y.shape[0]
            st["global_step"] += 1
            if (i + 1) % check_every == 0 and not torch.isfinite(loss_sum):
                self._diverged(epoch, i)
            self.reporter.batch(i + 1)
            if self.step_hook is not None:
                self.step_hook(epoch, i)
            if self.stop_requested:
                st["batch"] = i + 1
                st["partial"] = self._partial(loss_sum, correct, seen, partial["seconds"] + time.perf_counter() - t0)
                return
        if not torch.isfinite(loss_sum):
            self._diverged(epoch, i)
        synchronize(dev)
        train_seconds = partial["seconds"] + time.perf_counter() - t0
        stats = self.dist.all_reduce_sums(loss_sum, correct, seen)
        test_acc, test_loss = evaluate(self.model, self.test_loader, cfg.amp)
        epoch_seconds = time.perf_counter() - t0 + partial["seconds"]
        metrics = {"epoch": epoch + 1, "train_loss": stats[0] / stats[2], "train_acc": 100.0 * stats[1] / stats[2],
                   "test_loss": test_loss, "test_acc": test_acc, "lr": lr,
                   "img_per_s": stats[2] / train_seconds, "train_seconds": train_seconds,
                   "epoch_seconds": epoch_seconds}
        st.update(epoch=epoch + 1, batch=0, partial=None, elapsed=st["elapsed"] + epoch_seconds)
        st["metrics"].append(metrics)
        self._save()
        self.reporter.epoch_end(metrics)

    def _reached_target(self) -> bool:
        target, metrics = self.cfg.stop_at_accuracy, self.state["metrics"]
        return target is not None and bool(metrics) and metrics[-1]["test_acc"] >= target

    def _partial(self, loss_sum, correct, seen, seconds) -> dict:
        return {"loss_sum": float(loss_sum), "correct": int(correct), "seen": int(seen), "seconds": seconds}

    def _diverged(self, epoch: int, i: int) -> None:
        kept = (f"the last good checkpoint is kept at {self.run_dir / CHECKPOINT_NAME}"
                if self.state["epoch"] > 0 else "no checkpoint was written")
        raise TrainingDiverged(f"loss became NaN/inf in epoch {epoch + 1} by step {i + 1} (lr {self.cfg.lr:g}); "
                               f"lower --lr; {kept}")

    def _interrupt(self) -> None:
        self._save()
        path = self.run_dir / CHECKPOINT_NAME
        raise Interrupted(f"interrupted in epoch {self.state['epoch'] + 1} at step {self.state['batch']}; "
                          f"checkpoint saved, resume with: toolkit train --resume {path}")

    # -- files --------------------------------------------------------------------------------------------
    def _save(self) -> None:
        if not self.dist.is_main:
            return
        save_checkpoint(self.run_dir / CHECKPOINT_NAME, make_payload(
            self.cfg, self.model, self.classes, self.mean, self.std, progress=self.state,
            optimizer=self.optimizer.state_dict(), grad_scaler=self.speed.state_dict(),
            world_size=self.dist.world_size))
        write_text(self.run_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in self.state["metrics"]))

    def _describe(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "model": self.cfg.model, "device": str(self.device),
                "world_size": self.dist.world_size, "train_size": self.train_loader.num_samples,
                "test_size": self.test_loader.num_samples, "fused_optimizer": self.fused,
                "resumed_from_epoch": self.state["epoch"] if self.ckpt else None,
                "threads": torch.get_num_threads(), **self.speed.describe()}

    def _finish(self) -> TrainResult:
        metrics = self.state["metrics"]
        spec = get_spec(self.cfg.model)
        best = max(metrics, key=lambda m: m["test_acc"])
        final = metrics[-1]["test_acc"]
        images = sum(m["img_per_s"] * m["train_seconds"] for m in metrics)
        ref = spec.reference_accuracy if self.cfg.dataset == "cifar10" else None
        summary = {
            "model": self.cfg.model, "dataset": self.cfg.dataset, "epochs": len(metrics),
            "final_test_acc": final, "best_test_acc": best["test_acc"], "best_epoch": best["epoch"],
            "reference_accuracy": ref, "reference_source": spec.source,
            "delta_vs_reference": None if ref is None else final - ref,
            "target_accuracy": self.cfg.stop_at_accuracy, "reached_target": self._reached_target(),
            "total_seconds": self.state["elapsed"],
            "img_per_s": images / sum(m["train_seconds"] for m in metrics),
            "device": str(self.device), "world_size": self.dist.world_size,
            "threads": torch.get_num_threads(), "fused_optimizer": self.fused, **self.speed.describe(),
            "train_config": self.cfg.to_dict(), "run_dir": str(self.run_dir), "versions": versions(),
        }
        if self.dist.is_main:
            write_json(self.run_dir / "summary.json", summary)
        self.reporter.finish(summary)
        return TrainResult(self.run_dir, summary, metrics, self.model)


def _prepare_run_dir(run_dir: Path, *, resuming: bool) -> None:
    if not resuming and (run_dir / CHECKPOINT_NAME).exists():
        raise ConfigError(f"{run_dir} already holds a run; pick another --run-name or continue it with "
                          f"--resume {run_dir / CHECKPOINT_NAME}")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to {run_dir} ({exc.strerror or exc}); pass --out with a writable folder") from None


@contextlib.contextmanager
def _sigint_sets(trainer: _Trainer):
    """First Ctrl-C asks the loop to stop at the next step boundary; a second one stops at once."""
    import threading

    # Under torchrun every rank gets the signal at a different step; stopping them in step is not worth
    # the risk of a hang, so DDP runs keep Python's default (they resume from the last epoch checkpoint).
    if threading.current_thread() is not threading.main_thread() or trainer.dist.enabled:
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if trainer.stop_requested:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        trainer.stop_requested = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
