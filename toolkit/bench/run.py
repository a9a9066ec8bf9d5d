"""`toolkit bench`: plan the cases, time each in its own process (core/isolate.py), collect one report.

`run_bench(run_dir)` benchmarks a trained run's exports; `run_bench(model="resnet20")` first writes a
freshly initialised checkpoint of that model to artifacts/bench-<model>/ and exports it. The result is a
plain dict (bench.json) that report.py renders as Markdown and PNG.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from toolkit.bench.cases import inference_worker, peak_worker, training_worker
from toolkit.bench.timing import DEFAULT_BATCHES, activation_floor_bytes, forward_flops, harness_overhead_s
from toolkit.core.device import available_devices
from toolkit.core.errors import ConfigError, DeviceError, RunFolderError, ToolkitError, first_line
from toolkit.core.isolate import run_isolated
from toolkit.core.machine import available_memory_bytes, machine_info
from toolkit.export import export
from toolkit.models import get_spec
from toolkit.models.external import short_name, trust
from toolkit.run.checkpoint import allow_model, load_checkpoint, resolve_checkpoint, trusted_spec
from toolkit.run.folder import CHECKPOINT, DEFAULT_ROOT, MANIFEST, ensure_writable, is_trained_run, latest_run
from toolkit.run.manifest import read_manifest, validate_manifest
from toolkit.run.records import Parity
from toolkit.run.verdicts import fastest_verified
from toolkit.targets.formats import FORMATS
from toolkit.targets.plan import plan
from toolkit.targets.runtimes import check_runtime

# Evidence that something else ran during a measurement: the fastest GEMM moved this much between the peak
from toolkit.train.checkpoint import write_untrained

# Evidence that something else ran during a measurement: the fastest GEMM moved this much between the peak
# runs before and after the cases, or one case's rounds spread this much (coefficient of variation). On an
# idle 2-core machine repeated peaks agree within a few percent and batch >= 32 rounds within ~10 %.
PEAK_DRIFT_LIMIT = 0.15
CV_LIMIT = 0.25


@dataclass(frozen=True)
class BenchConfig:
    runtimes: tuple[str, ...] | None = None  # None: every runtime whose file the run has
    formats: tuple[str, ...] | None = None  # None: every file the run has (eager fp32 is timed all the same)
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
        for name, value in (
            ("rounds", self.rounds),
            ("train_steps", self.train_steps),
            ("threads", self.threads),
            ("train_batch", self.train_batch),
        ):
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if self.warmup < 0 or self.budget_s <= 0:
            raise ConfigError("--warmup must be >= 0 and --budget positive")
        for r in self.runtimes or ():
            check_runtime(r)
        present = available_devices()
        for d in self.devices or ():
            if d not in ("cpu", "cuda", "mps"):
                raise DeviceError(f"unknown device {d!r}; choose cpu, cuda or mps")
            if d not in present:
                raise DeviceError(f"device {d!r} is not available here (found: {', '.join(present)})")


def _resolve_run(run_dir, model, out, progress) -> Path:
    if run_dir is not None and model is not None:  # the run's own model, named to allow rebuilding it
        allow_model(load_checkpoint(resolve_checkpoint(run_dir)), model)
    elif model is not None:
        get_spec(model)
        trust(model)  # named on the command line: its factory may be imported here and in the children
        run = Path(out) / f"bench-{short_name(model)}"
        _refuse_foreign(run)
        write_untrained(model, run)
        export(run)
        progress(f"fresh untrained {model} exported to {run}")
        return run
    if run_dir is None:
        run = latest_run(out)
        progress(f"using the newest trained run: {run}")
    else:
        run = Path(run_dir)
    if not (run / CHECKPOINT).is_file():
        raise ConfigError(f"{run} has no {CHECKPOINT}; pass a run folder, or --model NAME for a fresh model")
    if not any((run / f.filename).is_file() for f in FORMATS.values() if f.writer):
        raise ConfigError(f"{run} has no exports; run `toolkit export {run}` first")
    return run


def _refuse_foreign(run: Path) -> None:
    """bench --model overwrites only a folder of untrained weights it made itself, never a trained run."""
    if not (run / CHECKPOINT).exists():
        return
    if is_trained_run(run) or load_checkpoint(run).get("origin") != "untrained":
        raise RunFolderError(
            f"{run} holds a checkpoint bench did not make; bench --model will not overwrite "
            f"it: benchmark it with `toolkit bench {run}`, or pass another --out"
        )


def _inference_specs(run: Path, cfg: BenchConfig, threads: int, notes: list[str], input_shape: list[int]) -> list[dict]:
    # Eager fp32 on the checkpoint is timed whatever --format names: what the others are compared with.
    formats = (*cfg.formats, "checkpoint") if cfg.formats else None
    found = plan(run, formats, cfg.runtimes, cfg.devices, reference=True, timing=True)
    notes.extend(found.skipped)  # not installed, or not timed, and why
    specs = []
    for target in found.targets:
        variants = [("", target.options)] + (target.variants() if cfg.variants else [])
        for label, options in variants:
            specs.append(
                {
                    "runtime": target.runtime,
                    "format": target.format.name,
                    "precision": target.format.precision,
                    "label": target.label,
                    "device": target.device,
                    "path": str(target.path),
                    "threads": threads,
                    "input_shape": list(input_shape),
                    "batch_sizes": list(cfg.batch_sizes),
                    "rounds": cfg.rounds,
                    "warmup": cfg.warmup,
                    "budget_s": cfg.budget_s,
                    "variant": label,
                    "options": options,
                }
            )
    return specs


def _training_specs(ckpt: dict, cfg: BenchConfig, threads: int) -> list[dict]:
    model, args = ckpt["model"]["name"], ckpt["model"].get("args") or None
    batch = cfg.train_batch or get_spec(model, args).recipe.batch_size
    base = {
        "model": model,
        "model_args": args,
        "image_size": ckpt["input"]["shape"][-1],
        "batch_size": batch,
        "steps": cfg.train_steps,
        "warmup": 3,
        "threads": threads,
        "dataset": "synthetic",
        "images": max(cfg.train_images, 2 * batch),
        "amp": "off",
        "channels_last": False,
        "compile": False,
    }
    specs = []
    for d in cfg.devices or tuple(available_devices()):
        specs.append({**base, "device": d, "loop": "seed"})
        # `toolkit train`'s default: the speed policy's choice for the recipe's run on this machine.
        specs.append({**base, "device": d, "loop": "toolkit", "amp": "auto", "channels_last": None, "compile": None})
        specs.append({**base, "device": d, "loop": "toolkit"})
        specs.append({**base, "device": d, "loop": "toolkit", "channels_last": True})
        if d == "cuda" or (d == "cpu" and cfg.variants):
            specs.append({**base, "device": d, "loop": "toolkit", "amp": "bf16"})
        if cfg.variants:  # compilation happens in the untimed warm-up steps
            specs.append({**base, "device": d, "loop": "toolkit", "compile": True})
    return specs


def run_bench(
    run_dir: str | os.PathLike | None = None,
    *,
    model: str | None = None,
    config: BenchConfig = BenchConfig(),
    out: str | os.PathLike = DEFAULT_ROOT,
    progress: Callable[[str], None] = lambda line: None,
    write: bool = True,
) -> dict[str, Any]:
    """Benchmark a run's exports (or a fresh `model`); the dict behind bench.json/.md/.png, written unless
    `write=False`."""
    config.validate()
    run = _resolve_run(run_dir, model, out, progress)
    ensure_writable(run)  # before minutes of timing whose report could not be saved
    manifest, problem = read_manifest(run)
    ckpt = load_checkpoint(run)
    if not problem:  # the files' facts come from it: a broken one is an error before any timing
        validate_manifest(manifest, run / MANIFEST, ckpt)
    trusted_spec(ckpt["model"])  # one line before any timing process would import the model's code
    name = ckpt["model"]["name"]
    threads = config.threads or os.cpu_count() or 1
    progress(f"benchmarking {name} in {run} with {threads} threads")

    _check_batches_fit(config.batch_sizes, activation_floor_bytes(ckpt), available_memory_bytes())
    devices = list(config.devices or available_devices())
    # The peak is measured before and after the cases: a busy machine shows up as drift between the two.
    peak_before = run_isolated(peak_worker, {"threads": threads, "devices": devices}, label="matmul peak")
    flops = forward_flops(ckpt)
    inference, notes = [], []
    for spec in _inference_specs(run, config, threads, notes, ckpt["input"]["shape"]):
        label = spec["label"] + (f" {spec['variant']}" if spec["variant"] else "")
        try:
            res = run_isolated(inference_worker, spec, label=label)
        except ToolkitError as exc:  # one runtime that cannot load or run its file is a note, not the end
            notes.append(f"not timed: {exc}")
            progress(f"  {label}: not timed: {first_line(exc)}")
            continue
        inference.append(res)
        progress(f"  {label}: best {max(r['img_per_s'] for r in res['results']):,.0f} img/s")
    training = []
    if config.train:
        for spec in _training_specs(ckpt, config, threads):
            res = run_isolated(training_worker, spec, label=f"training {spec['loop']}/{spec['device']}")
            training.append(res)
            progress(f"  train {res['name']}/{res['device']}: {res['img_per_s']:,.1f} img/s")
        for res in training:
            seed = next(t for t in training if t["device"] == res["device"] and t["name"] == "seed loop")
            res["speedup_vs_seed"] = res["img_per_s"] / seed["img_per_s"]
    peak_after = run_isolated(peak_worker, {"threads": threads, "devices": devices}, label="matmul peak")
    # The peak is the fastest fp32 GEMM of any engine, in either run; its drift compares like with like.
    before = {d: max(v.values()) for d, v in peak_before.items()}
    after = {d: max(v.values()) for d, v in peak_after.items()}
    peak = {d: max(before[d], after[d]) for d in before}
    drift = {d: {"before": before[d], "after": after[d], "drift": after[d] / before[d] - 1} for d in before}
    _share_of_peak(inference, training, peak, flops)
    disturbed = _disturbances(inference, training, drift)
    result = {
        "model": name,
        "run_dir": str(run),
        "config": asdict(config),
        "threads": threads,
        "machine": machine_info(),
        "matmul_peak_gflops": peak,
        "matmul_peak_source": {
            d: max(((e, g) for run_ in (peak_before, peak_after) for e, g in run_[d].items()), key=lambda x: x[1])[0]
            for d in peak
        },
        "matmul_peak_engines": {"before": peak_before, "after": peak_after},
        "matmul_peak_drift": drift,
        "disturbed": disturbed,
        "forward_flops_per_image": flops,
        "harness_overhead_us": 1e6 * harness_overhead_s(),
        "inference": inference,
        "training": training,
        "notes": notes,
    }
    result["recommendation"] = recommend(result, run)
    if write:
        from toolkit.bench.bench_files import write_bench

        result["files"] = [str(f) for f in write_bench(result, run)]
    return result


def _share_of_peak(inference: list[dict], training: list[dict], peak: dict, flops: int) -> None:
    """Set pct_of_peak on every result (training counts 3x the forward FLOPs). Above 100 % is no fault: a
    convolution kernel (Winograd, fused layouts) can do a layer's work faster than one large GEMM runs."""

    def share(img_per_s: float, device: str, factor: int) -> float | None:
        p = peak.get(device)
        return 100 * img_per_s * factor * flops / (p * 1e9) if p else None

    for case in inference:
        for r in case["results"]:
            r["pct_of_peak"] = share(r["img_per_s"], case["device"], 1)
    for res in training:
        res["pct_of_peak"] = share(res["img_per_s"], res["device"], 3)


def _disturbances(inference: list[dict], training: list[dict], drift: dict) -> list[str]:
    """Mark (r["disturbed"]) and list the measurements with evidence that something else ran: the device's peak
    drifted between the runs before and after the cases, or the case's own rounds spread widely."""
    lines = []
    moved = {d for d, v in drift.items() if abs(v["drift"]) > PEAK_DRIFT_LIMIT}
    for d in sorted(moved):
        v = drift[d]
        lines.append(
            f"{d}: the fastest GEMM ran at {v['before']:,.0f} GFLOP/s before the cases and {v['after']:,.0f} after "
            f"({100 * v['drift']:+.0f} %, over {100 * PEAK_DRIFT_LIMIT:.0f} %): the machine's load changed"
        )
    rows = [
        (f"{case.get('label', case['runtime'] + '/' + case['device'])} batch {r['batch_size']}", case["device"], r)
        for case in inference
        for r in case["results"]
    ]
    rows += [(f"train {t['name']}/{t['device']}", t["device"], t) for t in training]
    for where, device, r in rows:
        if r.get("cv", 0.0) > CV_LIMIT:
            r["disturbed"] = f"rounds spread {100 * r['cv']:.0f} % (CV)"
            lines.append(f"{where}: its rounds spread {100 * r['cv']:.0f} % (CV over {100 * CV_LIMIT:.0f} %)")
        elif device in moved:
            r["disturbed"] = "peak drifted"
    return lines


def _check_batches_fit(batch_sizes, floor_bytes: int, free_bytes: int | None) -> None:
    """Refuse, before any timing, a batch that cannot be held in memory (bench.timing.activation_floor_bytes)
    rather than leave every runtime to swap or be killed by the OOM killer one after the other."""
    if free_bytes is None:
        return
    too_big = [b for b in batch_sizes if b * floor_bytes > free_bytes]
    if too_big:
        fits = max(1, free_bytes // floor_bytes)
        raise ConfigError(
            f"--batch-sizes {too_big[0]}: one call needs at least {too_big[0] * floor_bytes / 2**30:,.1f} GiB of "
            f"activations ({floor_bytes / 2**10:,.0f} KiB an image) and {free_bytes / 2**30:,.1f} GiB is free; "
            f"use batches up to {fits:,}"
        )


def recommend(result: dict[str, Any], run: Path) -> dict[str, Any]:
    """The fastest runtime/format on this machine at the largest batch that passed verify, against eager fp32.

    Verify's verdicts come from the run's parity.json (run/verdicts.py, the join predict and the report
    use too); without one nothing is recommended (an unverified file is not a candidate), and the line says so.
    """
    largest = max(result["config"]["batch_sizes"])

    def speed(case: dict) -> float | None:
        return next((r["img_per_s"] for r in case["results"] if r["batch_size"] == largest), None)

    parity = Parity.read(run)
    if not parity:
        return {"text": f"no recommendation: run `toolkit verify {run}` first (only verified files are candidates)"}
    pick = fastest_verified(result, parity.data, largest)
    eager = next(
        (c for c in result["inference"] if c["runtime"] == "eager" and not c.get("variant") and c["device"] == "cpu"),
        None,
    )
    if pick is None or eager is None or speed(eager) is None:
        return {"text": "no recommendation: no verified runtime was timed at the largest batch beside eager fp32"}
    case, s, acc_cost = pick.case, pick.result["img_per_s"], pick.accuracy_cost_pt
    label = case.get("label", f"{case['runtime']}/{case['device']}")
    factor = s / speed(eager)
    return {
        "target": label,
        "runtime": case["runtime"],
        "device": case["device"],
        "format": case.get("format"),
        "batch_size": largest,
        "img_per_s": s,
        "speedup_vs_eager_fp32": factor,
        "accuracy_cost_pt": acc_cost,
        "text": f"recommended on this machine: {label} at batch {largest}, {s:,.0f} img/s, {factor:.2f}x eager "
        f"fp32 CPU, test accuracy {-acc_cost:+.2f} pt against eager fp32 (passed toolkit verify)",
    }
