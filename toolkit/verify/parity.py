"""Run every exported runtime on every device over the test set and compare it with eager fp32 on CPU.

`verify(run_dir)` returns a ParityResult: truthy when every runtime passes, with per-runtime figures
(accuracy and its delta, top-1 agreement, max / mean / p99 |logit difference|, worst batch, NaN/inf count)
and failure lines that name the culprit ("onnxruntime/cpu: max |diff| 3.1e-3 > atol 1e-4 on batch 17").
Nothing compared is not a pass: a run without exports is an error.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from toolkit.core.device import available_devices
from toolkit.core.errors import ConfigError, DeviceError, ToolkitError
from toolkit.core.files import sha256
from toolkit.core.runs import CHECKPOINT, MANIFEST, ensure_writable, latest_run
from toolkit.data import TensorLoader, load_dataset
from toolkit.export.check import count_non_finite
from toolkit.export.formats import FORMATS, RUNTIMES, format_of, open_runtime, runtime_class
from toolkit.export.manifest import read_manifest
from toolkit.train.checkpoint import load_checkpoint


@dataclass(frozen=True)
class Thresholds:
    atol: float = 1e-4  # max |logit difference| allowed against eager fp32 CPU
    min_agreement: float = 99.9  # percent of samples whose top-1 class must match the reference
    max_acc_delta: float = 0.1  # accuracy points a runtime may differ from the reference by

    def __post_init__(self):
        if not 0 <= self.atol < math.inf:
            raise ConfigError(f"--atol must be a finite number >= 0, got {self.atol}")
        if not 0 <= self.min_agreement <= 100:
            raise ConfigError(f"--min-agreement must be a percentage in [0, 100], got {self.min_agreement}")
        if not 0 <= self.max_acc_delta < math.inf:
            raise ConfigError(f"--max-acc-delta must be a finite number >= 0, got {self.max_acc_delta}")


@dataclass
class RuntimeParity:
    runtime: str
    device: str
    details: dict[str, Any]  # provider, threads, ... as read back from the runtime
    accuracy: float
    acc_delta: float
    agreement: float
    max_abs: float  # over finite logits; non_finite counts the rest
    mean_abs: float
    p99_abs: float
    worst_batch: int
    non_finite: int  # NaN/inf logits; any is a failure
    non_finite_batch: int | None  # first batch that had one
    file_matches_manifest: bool | None
    failures: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.runtime}/{self.device}"

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class ParityResult:
    run_dir: Path
    model: str
    dataset: str
    samples: int
    batch_size: int
    reference: dict[str, Any]
    thresholds: Thresholds
    entries: list[RuntimeParity]
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.entries) and all(e.passed for e in self.entries)

    @property
    def failures(self) -> list[str]:
        return [f for e in self.entries for f in e.failures]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["run_dir"] = str(self.run_dir)
        d["passed"] = bool(self)
        for e, entry in zip(d["entries"], self.entries, strict=True):
            e["passed"] = entry.passed
        return d


def _judge(e: RuntimeParity, t: Thresholds) -> None:
    if e.non_finite:
        e.failures.append(f"{e.label}: {e.non_finite} NaN/inf logits (first on batch {e.non_finite_batch})")
    if e.max_abs > t.atol:
        e.failures.append(f"{e.label}: max |diff| {e.max_abs:.2g} > atol {t.atol:g} on batch {e.worst_batch}")
    if e.agreement < t.min_agreement:
        e.failures.append(f"{e.label}: top-1 agreement {e.agreement:.2f}% < {t.min_agreement:g}%")
    if abs(e.acc_delta) > t.max_acc_delta:
        e.failures.append(f"{e.label}: accuracy delta {e.acc_delta:+.2f} pt exceeds {t.max_acc_delta:g} pt")


def _check_identity(runtime, ckpt: dict) -> None:
    """A file exported from another model must not be compared as if it were this one."""
    meta = getattr(runtime, "metadata", None)
    if meta is not None and meta.get("toolkit.model") not in (None, ckpt["model"]["name"]):
        raise ToolkitError(
            f"{runtime.path} was exported from model {meta['toolkit.model']!r}, but the checkpoint "
            f"is {ckpt['model']['name']!r}; re-run toolkit export"
        )


def _candidates(run_dir: Path, runtimes, devices, notes: list[str]) -> list[tuple[str, str]]:
    present = available_devices()
    for d in devices or ():
        if d not in present:
            raise DeviceError(f"device {d!r} is not available here (found: {', '.join(present)})")
    pairs = []
    for name in runtimes or RUNTIMES:
        cls, filename = runtime_class(name), format_of(name).filename
        if not (run_dir / filename).is_file():
            if runtimes:  # asked for by name: say how to get it
                raise ConfigError(f"{run_dir} has no {filename}; run `toolkit export {run_dir}` first")
            continue
        for d in devices or present:
            if d not in cls.devices or (name, d) == ("eager", "cpu"):
                continue
            why = cls.unavailable_reason(d)
            if why is None:
                pairs.append((name, d))
            elif devices and runtimes:  # both named explicitly: the user expects it to run
                raise DeviceError(why)
            else:
                notes.append(f"skipped {name}/{d}: {why}")
    if not pairs:
        exports = [f.filename for f in FORMATS.values() if f.writer]
        why = "; ".join(notes) if notes else f"it has none of {', '.join(exports)}"
        raise ConfigError(
            f"nothing to verify in {run_dir}: {why}; run `toolkit export {run_dir}` first (no comparison is not a pass)"
        )
    return pairs


def verify(
    run_dir: str | os.PathLike | None = None,
    *,
    runtimes: list[str] | None = None,
    devices: list[str] | None = None,
    limit: int | None = None,
    data_dir: str | None = None,
    thresholds: Thresholds = Thresholds(),
    batch_size: int = 500,
    threads: int | None = None,
    artifacts: str | os.PathLike = "artifacts",
    write: bool = True,
) -> ParityResult:
    """Compare every exported runtime x device with eager fp32 CPU; writes parity.json/.md unless `write=False`."""
    for name, value in (("--limit", limit), ("--batch-size", batch_size), ("--threads", threads)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")
    run_dir = Path(run_dir) if run_dir is not None else latest_run(artifacts)
    if not (run_dir / CHECKPOINT).is_file():
        raise ConfigError(f"{run_dir} has no {CHECKPOINT}; pass a run folder written by toolkit train")
    if write:
        ensure_writable(run_dir)  # before minutes of work whose report could not be saved
    ckpt = load_checkpoint(run_dir)
    notes: list[str] = []
    if ckpt.get("origin") == "untrained":
        notes.append("the checkpoint holds untrained weights (made by toolkit bench --model)")
    pairs = _candidates(run_dir, runtimes, devices, notes)
    cfg = ckpt["train_config"]
    test = load_dataset(
        cfg["dataset"],
        False,
        data_dir or cfg.get("data_dir"),
        limit=limit,
        download=cfg.get("download", True),
        seed=cfg["seed"],
    )
    loader = TensorLoader(test, batch_size, mean=tuple(ckpt["input"]["mean"]), std=tuple(ckpt["input"]["std"]))
    batches = list(loader.epoch(0))
    labels = torch.cat([y for _, y in batches])

    # TF32 would move CUDA logits by ~1e-2; parity is about the export, not the GPU's fast math.
    tf32 = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        reference = open_runtime("eager", run_dir / CHECKPOINT, "cpu", threads)
        ref_logits = [reference.run(x) for x, _ in batches]
        ref_all = torch.cat(ref_logits)
        if count_non_finite(ref_all):
            raise ToolkitError(
                f"{run_dir / CHECKPOINT}: eager gives {count_non_finite(ref_all)} NaN/inf logits; "
                f"the weights are broken and there is no reference to compare with"
            )
        ref_acc = 100.0 * int((ref_all.argmax(1) == labels).sum()) / len(labels)
        manifest, problem = read_manifest(run_dir)
        if problem:
            notes.append(problem)
        entries = []
        for name, device in pairs:
            rt = open_runtime(name, run_dir / format_of(name).filename, device, threads)
            _check_identity(rt, ckpt)
            entries.append(_compare(rt, batches, ref_logits, labels, ref_acc, manifest, thresholds))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32["matmul"], tf32["cudnn"]
    if manifest and manifest.get("source_checkpoint", {}).get("sha256") != sha256(run_dir / CHECKPOINT):
        notes.append("the checkpoint changed after the export; re-run toolkit export")
    for e in entries:
        if e.file_matches_manifest is False:
            notes.append(f"{e.label}: file sha256 differs from {MANIFEST}; it was modified after export")
    ref_info = {**reference.describe(), "accuracy": ref_acc, "tf32": False}
    result = ParityResult(
        run_dir, ckpt["model"]["name"], cfg["dataset"], len(labels), batch_size, ref_info, thresholds, entries, notes
    )
    if write:
        from toolkit.verify.report import write_parity

        write_parity(result, run_dir)
    return result


def _compare(rt, batches, ref_logits, labels, ref_acc, manifest, t: Thresholds) -> RuntimeParity:
    diffs, agree, correct, worst, worst_batch, non_finite, first_bad = [], 0, 0, -1.0, 0, 0, None
    for i, ((x, y), ref) in enumerate(zip(batches, ref_logits, strict=True)):
        out = rt.run(x)
        bad = count_non_finite(out)
        if bad and first_bad is None:
            first_bad = i
        non_finite += bad
        d = (out - ref).abs()
        d = d[torch.isfinite(d)]  # NaN would hide in max() and in every comparison; it is counted apart
        diffs.append(d.flatten())
        if d.numel() and float(d.max()) > worst:
            worst, worst_batch = float(d.max()), i
        agree += int((out.argmax(1) == ref.argmax(1)).sum())
        correct += int((out.argmax(1) == y).sum())
    all_d = torch.cat(diffs).double()
    n = len(labels)
    entry_file = manifest.get("files", {}).get(rt.path.name)
    matches = None if entry_file is None else entry_file.get("sha256") == sha256(rt.path)
    acc = 100.0 * correct / n
    details = rt.describe()
    if entry_file:  # how the file was made, so a table of two exporters says which is which
        details["export"] = ", ".join(f"{k} {entry_file[k]}" for k in ("exporter", "opset", "mode") if k in entry_file)
    stats = (
        (float(all_d.max()), float(all_d.mean()), float(torch.quantile(all_d, 0.99)))
        if all_d.numel()
        else (0.0, 0.0, 0.0)
    )
    e = RuntimeParity(
        rt.name,
        rt.device,
        details,
        acc,
        acc - ref_acc,
        100.0 * agree / n,
        *stats,
        worst_batch,
        non_finite,
        first_bad,
        matches,
    )
    _judge(e, t)
    return e
