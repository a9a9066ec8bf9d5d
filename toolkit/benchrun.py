"""`toolkit bench`: plan the cases, time each in its own process (see bench.py), collect one report.

`run_bench(run_dir)` benchmarks a trained run's exports; `run_bench(model="resnet20")` first writes a
freshly initialised checkpoint of that model to artifacts/bench-<model>/ and exports it. The result is a
plain dict (bench.json) that report.py renders as Markdown and PNG.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from toolkit.bench import (DEFAULT_BATCHES, _inference_worker, _training_worker, forward_flops,
                           harness_overhead_s, run_isolated)
from toolkit.checkpoint import CHECKPOINT_NAME, load_checkpoint, write_untrained
from toolkit.device import available_devices
from toolkit.errors import ConfigError, DeviceError
from toolkit.export import export, latest_run
from toolkit.machine import machine_info
from toolkit.models import get_spec
from toolkit.runtimes import RUNTIMES, runtime_class


@dataclass(frozen=True)
class BenchConfig:
    runtimes: tuple[str, ...] | None = None  # None: every runtime whose file the run has
    devices: tuple[str, ...] | None = None  # None: every available device
    batch_sizes: tuple[int, ...] = DEFAULT_BATCHES  # images per inference call
    threads: int | None = None  # CPU threads for every runtime; None: all logical cores
    rounds: int = 30  # timed calls per case (fewer if budget_s runs out, never below 5)
    warmup: int = 5  # untimed calls per case after the first (cold) one
    budget_s: float = 15.0  # seconds of timed calls per case
    variants: bool = False  # also: onnxruntime graph-optimisation levels, eager channels_last and bf16
    train: bool = True  # also time training steps (seed loop, fp32, channels_last, AMP on GPU)
    train_steps: int = 10  # timed training steps per case
    train_batch: int | None = None  # None: the model's recipe batch size
    train_images: int = 2048  # synthetic images the training cases draw batches from

    def validate(self) -> None:
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ConfigError(f"batch sizes must be positive integers, got {list(self.batch_sizes)}")
        for name, value in (("rounds", self.rounds), ("train_steps", self.train_steps),
                            ("threads", self.threads), ("train_batch", self.train_batch)):
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if self.warmup < 0 or self.budget_s <= 0:
            raise ConfigError("--warmup must be >= 0 and --budget positive")
        for r in self.runtimes or ():
            runtime_class(r)  # raises for an unknown name
        present = available_devices()
        for d in self.devices or ():
            if d not in ("cpu", "cuda", "mps"):
                raise DeviceError(f"unknown device {d!r}; choose cpu, cuda or mps")
            if d not in present:
                raise DeviceError(f"device {d!r} is not available here (found: {', '.join(present)})")


def _resolve_run(run_dir, model, out) -> Path:
    if run_dir is not None and model is not None:
        raise ConfigError("give a run folder or --model, not both")
    if model is not None:
        get_spec(model)
        run = Path(out) / f"bench-{model}"
        write_untrained(model, run)
        export(run)
        return run
    run = Path(run_dir) if run_dir is not None else latest_run(out)
    if not (run / CHECKPOINT_NAME).is_file():
        raise ConfigError(f"{run} has no {CHECKPOINT_NAME}; pass a run folder, or --model NAME for a fresh model")
    if not any((run / runtime_class(r).filename).is_file() for r in RUNTIMES if r != "eager"):
        raise ConfigError(f"{run} has no exports; run `toolkit export {run}` first")
    return run


def _inference_specs(run: Path, cfg: BenchConfig, threads: int) -> list[dict]:
    devices = cfg.devices or tuple(available_devices())
    specs = []
    for name in cfg.runtimes or RUNTIMES:
        cls = runtime_class(name)
        path = run / cls.filename
        if not path.is_file():
            if cfg.runtimes:
                raise ConfigError(f"{run} has no {cls.filename}; run `toolkit export {run}` first")
            continue
        for d in devices:
            if cls.unavailable_reason(d) is not None:
                continue
            variants: list[tuple[str, dict]] = [("", {})]
            if cfg.variants and name == "onnxruntime":
                variants += [(f"opt={lvl}", {"opt_level": lvl}) for lvl in ("disable", "basic", "extended")]
            if cfg.variants and name == "eager":
                # bf16 is timed on every CPU: where it lacks AMX/AVX-512-bf16 the table shows what it costs.
                variants += [("channels_last", {"channels_last": True}), ("bf16", {"amp": "bf16"})]
            for label, options in variants:
                specs.append({"runtime": name, "device": d, "path": str(path), "threads": threads,
                              "batch_sizes": list(cfg.batch_sizes), "rounds": cfg.rounds, "warmup": cfg.warmup,
                              "budget_s": cfg.budget_s, "variant": label, "options": options})
    return specs


def _training_specs(model: str, cfg: BenchConfig, threads: int) -> list[dict]:
    batch = cfg.train_batch or get_spec(model).recipe.batch_size
    base = {"model": model, "batch_size": batch, "steps": cfg.train_steps, "warmup": 3, "threads": threads,
            "dataset": "synthetic", "images": max(cfg.train_images, 2 * batch), "amp": "off", "channels_last": False,
            "compile": False}
    specs = []
    for d in cfg.devices or tuple(available_devices()):
        specs.append({**base, "device": d, "loop": "seed"})
        specs.append({**base, "device": d, "loop": "toolkit"})
        specs.append({**base, "device": d, "loop": "toolkit", "channels_last": True})
        if d == "cuda" or (d == "cpu" and cfg.variants):
            specs.append({**base, "device": d, "loop": "toolkit", "amp": "bf16"})
        if cfg.variants:  # compilation happens in the untimed warm-up steps
            specs.append({**base, "device": d, "loop": "toolkit", "compile": True})
    return specs


def run_bench(run_dir: str | os.PathLike | None = None, *, model: str | None = None,
              config: BenchConfig = BenchConfig(), out: str | os.PathLike = "artifacts",
              progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    config.validate()
    run = _resolve_run(run_dir, model, out)
    ckpt = load_checkpoint(run)
    name = ckpt["model"]["name"]
    threads = config.threads or os.cpu_count() or 1
    progress(f"benchmarking {name} in {run} with {threads} threads")

    peak = run_isolated(_peak_worker, {"threads": threads, "devices": list(config.devices or available_devices())})
    flops = forward_flops(name, ckpt["model"]["num_classes"])
    inference = []
    for spec in _inference_specs(run, config, threads):
        res = run_isolated(_inference_worker, spec)
        for r in res["results"]:
            p = peak.get(res["device"])
            r["pct_of_peak"] = None if not p else 100 * r["img_per_s"] * flops / (p * 1e9)
        inference.append(res)
        best = max(r["img_per_s"] for r in res["results"])
        progress(f"  {res['runtime']}{' ' + res['variant'] if res['variant'] else ''}/{res['device']}: "
                 f"best {best:,.0f} img/s")
    training = []
    if config.train:
        for spec in _training_specs(name, config, threads):
            res = run_isolated(_training_worker, spec)
            p = peak.get(res["device"])
            res["pct_of_peak"] = None if not p else 100 * res["img_per_s"] * 3 * flops / (p * 1e9)
            training.append(res)
            progress(f"  train {res['name']}/{res['device']}: {res['img_per_s']:,.1f} img/s")
        for res in training:
            seed = next(t for t in training if t["device"] == res["device"] and t["name"] == "seed loop")
            res["speedup_vs_seed"] = res["img_per_s"] / seed["img_per_s"]
    return {"model": name, "run_dir": str(run), "config": asdict(config), "threads": threads,
            "machine": machine_info(), "matmul_peak_gflops": peak, "forward_flops_per_image": flops,
            "harness_overhead_us": 1e6 * harness_overhead_s(), "inference": inference, "training": training}


def _peak_worker(spec: dict, queue) -> None:
    from toolkit.bench import matmul_peak_gflops
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 peak, not TF32's
    queue.put(("ok", {d: matmul_peak_gflops(spec["threads"], device=d) for d in spec["devices"] if d != "mps"}))
