"""Run every exported file through every runtime that reads it, on every device, against eager fp32 on CPU.

`verify(run_dir)` returns a ParityResult: truthy when every target passes, with per-target figures
(accuracy and its delta, top-1 agreement, max / mean / p99 |logit difference|, worst batch, NaN/inf count)
and failure lines that name the culprit ("onnxruntime/cpu: max |diff| 0.0031 > 0.0001 + 1e-05 x |logit| 9.8 = 0.0002 allowed on batch 17 ...").
Each file is held to its format's gate (targets/gates.py): fp32 files to their logits, INT8/fp16/bf16 to
accuracy drop, agreement and their logits relative to the reference's logit scale. The targets come from
targets.plan, so verify and bench agree on what runs.
A file whose sha256 is not the one export recorded fails unless `allow_modified`.
Every non-eager runtime runs in its own process, so one that crashes is a failure line naming it and its
signal while the others still report. Nothing compared is not a pass: a run without exports is an error.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from toolkit.core.errors import ConfigError, ToolkitError
from toolkit.core.files import sha256
from toolkit.data import TensorLoader
from toolkit.export.check import count_non_finite
from toolkit.run.checkpoint import allow_model, load_checkpoint, trusted_spec
from toolkit.run.folder import CHECKPOINT, DEFAULT_ROOT, MANIFEST, ensure_writable, latest_run
from toolkit.run.manifest import read_manifest, validate_manifest
from toolkit.targets.child import run_in_child, saved_inputs
from toolkit.targets.formats import FORMATS, split_names, target_label
from toolkit.targets.gates import Excess, Thresholds, fp32_excess
from toolkit.targets.plan import Target, plan
from toolkit.targets.runtimes import open_runtime
from toolkit.train.checkpoint import dataset_of


@dataclass
class RuntimeParity:
    runtime: str
    device: str
    format: str  # the file's format: onnx, onnx-int8, ...
    precision: str  # fp32 | int8 | int8-dynamic | fp16: decides the gates
    details: dict[str, Any]  # provider, threads, ... as read back from the runtime
    # The figures are None when the runtime failed before answering (its failure line says why).
    accuracy: float | None = None
    acc_delta: float | None = None
    agreement: float | None = None
    max_abs: float | None = None  # over finite logits; non_finite counts the rest
    mean_abs: float | None = None
    p99_abs: float | None = None
    max_rel: float | None = None  # max_abs / the reference's logit scale
    mean_rel: float | None = None  # mean_abs / the reference's logit scale
    worst_batch: int | None = None
    fp32_excess: Excess | None = None  # the image furthest beyond fp32's allowance (gates.fp32_allowance)
    non_finite: int = 0  # NaN/inf logits; any is a failure
    non_finite_batch: int | None = None  # first batch that had one
    file_matches_manifest: bool | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return target_label(self.format, self.runtime, self.device)

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


def _check_identity(path: Path, metadata: dict | None, ckpt: dict) -> None:
    """A file exported from another model must not be compared as if it were this one."""
    if metadata is not None and metadata.get("toolkit.model") not in (None, ckpt["model"]["name"]):
        raise ToolkitError(
            f"{path} was exported from model {metadata['toolkit.model']!r}, but the checkpoint "
            f"is {ckpt['model']['name']!r}; re-run toolkit export"
        )


def _targets(run_dir: Path, runtimes, devices, formats, notes: list[str]) -> list[Target]:
    """Every exported file x runtime x device but the reference (targets.plan), or an error when none is left."""
    found = plan(run_dir, formats, runtimes, devices)
    notes.extend(found.skipped)
    # Autocast runs of the checkpoint alone check no export, unless they were asked for by name.
    if not any(t.format.writer or (formats and t.format.name in formats) for t in found.targets):
        exports = [f.filename for f in FORMATS.values() if f.writer]
        why = "; ".join(notes) if notes else f"it has none of {', '.join(exports)}"
        raise ConfigError(
            f"nothing to verify in {run_dir}: {why}; run `toolkit export {run_dir}` first (no comparison is not a pass)"
        )
    return found.targets


def verify(
    run_dir: str | os.PathLike | None = None,
    *,
    runtimes: list[str] | None = None,
    devices: list[str] | None = None,
    formats: list[str] | None = None,
    limit: int | None = None,
    data_dir: str | None = None,
    thresholds: Thresholds = Thresholds(),
    batch_size: int = 500,
    threads: int | None = None,
    allow_modified: bool = False,
    model: str | None = None,
    artifacts: str | os.PathLike = DEFAULT_ROOT,
    write: bool = True,
) -> ParityResult:
    """Compare every exported file x runtime x device with eager fp32 CPU; writes parity.json/.md unless
    `write=False`. A file that is not the one export checked fails, unless `allow_modified`: then it is judged
    on its figures alone and the report says so."""
    for name, value in (("--limit", limit), ("--batch-size", batch_size), ("--threads", threads)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")
    run_dir = Path(run_dir) if run_dir is not None else latest_run(artifacts)
    if not (run_dir / CHECKPOINT).is_file():
        raise ConfigError(f"{run_dir} has no {CHECKPOINT}; pass a run folder written by toolkit train")
    if write:
        ensure_writable(run_dir)  # before minutes of work whose report could not be saved
    ckpt = load_checkpoint(run_dir)
    allow_model(ckpt, model)
    trusted_spec(ckpt["model"])  # one line before any child process fails on it
    notes: list[str] = []
    manifest, problem = read_manifest(run_dir)
    if problem:
        notes.append(problem)
    else:  # a manifest that is there must be right: predict answers from it
        validate_manifest(manifest, run_dir / MANIFEST, ckpt)
    if ckpt.get("origin") == "untrained":
        notes.append("the checkpoint holds untrained weights (made by toolkit bench --model)")
    targets = _targets(run_dir, runtimes, devices, split_names(formats) if formats else None, notes)
    test = dataset_of(ckpt, False, data_dir, limit=limit)
    loader = TensorLoader(test, batch_size, mean=tuple(ckpt["input"]["mean"]), std=tuple(ckpt["input"]["std"]))
    batches = list(loader.epoch(0))
    inputs = [x for x, _ in batches]
    labels = torch.cat([y for _, y in batches])

    # TF32 would move CUDA logits by ~1e-2; parity is about the export, not the GPU's fast math.
    tf32 = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    stack = contextlib.ExitStack()
    try:
        reference = open_runtime("eager", run_dir / CHECKPOINT, "cpu", threads)
        ref_logits = [reference.run(x) for x in inputs]
        ref_all = torch.cat(ref_logits)
        if count_non_finite(ref_all):
            raise ToolkitError(
                f"{run_dir / CHECKPOINT}: eager gives {count_non_finite(ref_all)} NaN/inf logits; "
                f"the weights are broken and there is no reference to compare with"
            )
        ref_acc = 100.0 * int((ref_all.argmax(1) == labels).sum()) / len(labels)
        # Softmax ignores a shift of all logits; their spread is the scale a difference is measured against.
        scale = float(ref_all.double().std()) or 1.0
        entries = []
        shared = stack.enter_context(saved_inputs(inputs))  # written once, read by every runtime's process
        # model.onnx is read by three runtimes: hash each file once.
        hashes = {t.path.name: sha256(t.path) for t in targets}
        for target in targets:
            path, fmt, name, device = target.path, target.format, target.runtime, target.device
            entry = RuntimeParity(name, device, fmt.name, fmt.precision, {})
            recorded = manifest.get("files", {}).get(path.name)
            entry.file_matches_manifest = None if recorded is None else recorded.get("sha256") == hashes[path.name]
            if entry.file_matches_manifest is False and not allow_modified:  # said first: it may not even load
                entry.failures.append(
                    f"{entry.label}: {path.name} is not the file export checked (its sha256 differs from "
                    f"{MANIFEST}); re-run toolkit export, or pass --allow-modified to judge it on its figures"
                )
            try:
                if name == "eager":  # PyTorch itself: no native library of its own to crash
                    rt = open_runtime(name, path, device, threads, **target.options)
                    outputs, entry.details, metadata = [rt.run(x) for x in inputs], rt.describe(), None
                else:
                    child = run_in_child(name, path, device, threads, shared, label=entry.label, options=target.options)
                    outputs, entry.details, metadata = child.outputs, child.details, child.metadata
            except ToolkitError as exc:
                entry.failures.append(str(exc) if str(exc).startswith(entry.label) else f"{entry.label}: {exc}")
                entries.append(entry)
                continue
            _check_identity(path, metadata, ckpt)
            _compare(entry, recorded, outputs, ref_logits, labels, ref_acc, scale, thresholds)
            entry.failures.extend(fmt.gate.judge(entry, thresholds))
            entries.append(entry)
    finally:
        stack.close()
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32["matmul"], tf32["cudnn"]
    checkpoint_sha = hashes.get(CHECKPOINT) or sha256(run_dir / CHECKPOINT)
    if manifest and manifest.get("source_checkpoint", {}).get("sha256") != checkpoint_sha:
        notes.append("the checkpoint changed after the export; re-run toolkit export")
    if allow_modified:
        for name in sorted({e.format for e in entries if e.file_matches_manifest is False}):
            notes.append(
                f"{FORMATS[name].filename} was modified after export; judged on its figures (--allow-modified)"
            )
    ref_info = {**reference.describe(), "accuracy": ref_acc, "logit_scale": scale, "tf32": False}
    result = ParityResult(
        run_dir,
        ckpt["model"]["name"],
        ckpt["train_config"]["dataset"],
        len(labels),
        batch_size,
        ref_info,
        thresholds,
        entries,
        notes,
    )
    if write:
        from toolkit.verify.parity_files import write_parity

        write_parity(result, run_dir)
    return result


def _compare(
    e: RuntimeParity, entry_file: dict | None, outputs, ref_logits, labels, ref_acc, scale: float, t: Thresholds
) -> None:
    """Fill `e`'s figures from the runtime's `outputs` against the reference logits."""
    diffs, agree, correct, worst, worst_batch, non_finite, first_bad = [], 0, 0, -1.0, 0, 0, None
    excess: Excess | None = None
    start = 0
    for i, (out, ref) in enumerate(zip(outputs, ref_logits, strict=True)):
        y = labels[start : start + len(ref)]
        start += len(ref)
        bad = count_non_finite(out)
        if bad and first_bad is None:
            first_bad = i
        non_finite += bad
        d = (out - ref).abs()
        d = d[torch.isfinite(d)]  # NaN would hide in max() and in every comparison; it is counted apart
        diffs.append(d.flatten())
        if d.numel() and float(d.max()) > worst:
            worst, worst_batch = float(d.max()), i
        if out.shape == ref.shape:
            excess = fp32_excess(out, ref, t, i).merge(excess)
        agree += int((out.argmax(1) == ref.argmax(1)).sum())
        correct += int((out.argmax(1) == y).sum())
    all_d = torch.cat(diffs).double()
    n = len(labels)
    if entry_file:  # how the file was made, so a table of two exporters says which is which
        keys = ("exporter", "opset", "mode", "int8_preset", "calibration")
        e.details["export"] = ", ".join(f"{k} {entry_file[k]}" for k in keys if k in entry_file)
    e.accuracy = 100.0 * correct / n
    e.acc_delta = e.accuracy - ref_acc
    e.agreement = 100.0 * agree / n
    e.max_abs, e.mean_abs, e.p99_abs = (
        (float(all_d.max()), float(all_d.mean()), float(torch.quantile(all_d, 0.99)))
        if all_d.numel()
        else (0.0, 0.0, 0.0)
    )
    e.max_rel, e.mean_rel = e.max_abs / scale, e.mean_abs / scale
    e.worst_batch, e.non_finite, e.non_finite_batch = worst_batch, non_finite, first_bad
    e.fp32_excess = excess
