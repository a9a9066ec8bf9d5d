"""Export a trained run to TorchScript and ONNX; every file is re-loaded and checked before it is kept.

Each export is written to a temporary file beside its final name, re-loaded in its own runtime, compared
with eager PyTorch at batch sizes 1, 7 and 256 (an ONNX batch axis silently fixed by the example input
shows up there), and only then renamed into place. A file that fails is deleted, never left looking good.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.checkpoint import CHECKPOINT_NAME, load_checkpoint, model_from_checkpoint, resolve_checkpoint
from toolkit.errors import ConfigError, ToolkitError
from toolkit.fsutil import atomic_path, write_json

FORMATS = ("torchscript", "onnx")
EXPORTERS = ("dynamo", "torchscript")
CHECK_BATCHES = (1, 7, 256)
MANIFEST = "manifest.json"
# Import strings keep TorchScript removable (see toolkit/torchscript.py).
_WRITERS = {"torchscript": "toolkit.torchscript:to_torchscript"}


class ExportError(ToolkitError):
    """An export that failed, or whose re-loaded file does not answer like eager PyTorch."""


@dataclass
class ExportResult:
    run_dir: Path
    files: dict[str, Path] = field(default_factory=dict)  # format -> file
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # format -> batch sizes, max |diff|
    manifest: dict[str, Any] = field(default_factory=dict)


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def latest_run(out: str | os.PathLike = "artifacts") -> Path:
    """The run folder under `out` whose checkpoint was written last."""
    runs = sorted(Path(out).glob(f"*/{CHECKPOINT_NAME}"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise ConfigError(f"no trained run under {out}/; run `toolkit train` first or pass a run folder")
    return runs[-1].parent


def check_inputs(ckpt: dict, batch: int, seed: int = 0) -> torch.Tensor:
    """A fixed, normalised batch of random images, the same every time for a given checkpoint."""
    g = torch.Generator().manual_seed(seed + batch)
    x = torch.randint(0, 256, (batch, *ckpt["input"]["shape"]), generator=g).float() / 255
    mean = torch.tensor(ckpt["input"]["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(ckpt["input"]["std"]).view(1, -1, 1, 1)
    return (x - mean) / std


def compare_with_eager(model: nn.Module, runtime, ckpt: dict, atol: float, rtol: float) -> dict[str, Any]:
    """Run both on fixed batches of each CHECK_BATCHES size; raise ExportError on the first mismatch."""
    worst = 0.0
    for b in CHECK_BATCHES:
        x = check_inputs(ckpt, b)
        with torch.inference_mode():
            ref = model(x)
        try:
            got = runtime.run(x)
        except Exception as exc:
            raise ExportError(f"{runtime.name} cannot run a batch of {b} ({type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[0][:160]}); the batch axis may be fixed") from None
        if got.shape != ref.shape:
            raise ExportError(f"{runtime.name} returned shape {tuple(got.shape)} for a batch of {b}, "
                              f"expected {tuple(ref.shape)}")
        diff = (got - ref).abs()
        worst = max(worst, float(diff.max()))
        bad = diff > atol + rtol * ref.abs()
        if bad.any():
            raise ExportError(f"{runtime.name} differs from eager by up to {float(diff.max()):.3g} at batch {b} "
                              f"(allowed {atol:g} + {rtol:g}*|logit|)")
    return {"batch_sizes": list(CHECK_BATCHES), "max_abs_diff": worst, "atol": atol, "rtol": rtol}


def export(source: str | os.PathLike | None = None, formats: tuple[str, ...] = FORMATS, *,
           exporter: str = "dynamo", opset: int = 18, ts_mode: str = "trace", atol: float = 1e-4,
           rtol: float = 1e-4, artifacts: str | os.PathLike = "artifacts") -> ExportResult:
    """Export the run folder or checkpoint `source` (default: the newest run under `artifacts`)."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"unknown format {', '.join(bad) or '(none)'}; choose torchscript, onnx or all")
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown ONNX exporter {exporter!r}; choose dynamo or torchscript")
    if opset < (18 if exporter == "dynamo" else 13):
        raise ConfigError(f"--opset {opset} is too old for the {exporter} exporter; use 18 or newer")
    ckpt_path = resolve_checkpoint(source if source is not None else latest_run(artifacts))
    ckpt = load_checkpoint(ckpt_path)
    model = model_from_checkpoint(ckpt)
    run_dir = ckpt_path.parent
    result = ExportResult(run_dir)
    for fmt in formats:
        final = run_dir / ("model.ts" if fmt == "torchscript" else "model.onnx")
        with atomic_path(final) as tmp:
            started = time.perf_counter()
            if fmt == "torchscript":
                result.checks[fmt] = _torchscript(model, ckpt, tmp, ts_mode, atol, rtol)
                details = {"mode": ts_mode, "frozen": True}
            else:
                result.checks[fmt] = _onnx(model, ckpt, ckpt_path, tmp, exporter, opset, atol, rtol)
                details = {"exporter": exporter, "opset": opset}
        result.files[fmt] = final
        result.checks[fmt].update(details, seconds=time.perf_counter() - started)
    result.manifest = _write_manifest(run_dir, ckpt, ckpt_path, result)
    return result


def _torchscript(model, ckpt, tmp: Path, mode: str, atol: float, rtol: float) -> dict[str, Any]:
    module, fn = _WRITERS["torchscript"].split(":")
    getattr(importlib.import_module(module), fn)(model, check_inputs(ckpt, 4), tmp, mode)
    from toolkit.runtimes import open_runtime
    return compare_with_eager(model, open_runtime("torchscript", tmp), ckpt, atol, rtol)


def _onnx(model, ckpt, ckpt_path: Path, tmp: Path, exporter: str, opset: int, atol: float,
          rtol: float) -> dict[str, Any]:
    import onnx

    from toolkit.runtimes import open_runtime

    # Batch 4, not 1: an example of batch 1 lets the exporters specialise the batch axis away.
    example = check_inputs(ckpt, 4)
    kwargs: dict[str, Any] = dict(input_names=["input"], output_names=["logits"], opset_version=opset)
    if exporter == "dynamo":
        kwargs.update(dynamo=True, external_data=False, dynamic_shapes=({0: torch.export.Dim("batch")},))
    else:
        kwargs.update(dynamo=False, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    chatter = io.StringIO()  # the exporters print progress lines; keep them for the error message only
    try:
        with contextlib.redirect_stdout(chatter), _quiet_warnings():
            torch.onnx.export(model, (example,), str(tmp), **kwargs)
    except Exception as exc:
        other = "torchscript" if exporter == "dynamo" else "dynamo"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ExportError(f"ONNX export with the {exporter} exporter failed for {ckpt['model']['name']} "
                          f"({first}); try --exporter {other}") from None
    proto = onnx.load(str(tmp))
    meta = {"toolkit.model": ckpt["model"]["name"], "toolkit.num_classes": str(ckpt["model"]["num_classes"]),
            "toolkit.classes": ",".join(ckpt["classes"]), "toolkit.input_layout": ckpt["input"]["layout"],
            "toolkit.input_mean": ",".join(map(str, ckpt["input"]["mean"])),
            "toolkit.input_std": ",".join(map(str, ckpt["input"]["std"])),
            "toolkit.input_scale": ckpt["input"]["scale"], "toolkit.source_sha256": sha256(ckpt_path),
            "toolkit.exporter": exporter}
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, str(tmp))
    try:
        onnx.checker.check_model(str(tmp), full_check=True)
    except Exception as exc:
        raise ExportError(f"exported ONNX fails onnx.checker: {str(exc).strip().splitlines()[0][:200]}") from None
    return compare_with_eager(model, open_runtime("onnxruntime", tmp), ckpt, atol, rtol)


@contextlib.contextmanager
def _quiet_warnings():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _write_manifest(run_dir: Path, ckpt: dict, ckpt_path: Path, result: ExportResult) -> dict[str, Any]:
    import json

    import onnx
    import onnxruntime

    source = sha256(ckpt_path)
    path = run_dir / MANIFEST
    manifest: dict[str, Any] = {}
    if path.is_file():
        with contextlib.suppress(ValueError):
            manifest = json.loads(path.read_text())
    if manifest.get("source_checkpoint", {}).get("sha256") != source:
        manifest = {}  # exports of an older checkpoint no longer describe these files
    files = manifest.get("files", {})
    for fmt, file in result.files.items():
        files[file.name] = {"format": fmt, "sha256": sha256(file), "bytes": file.stat().st_size,
                            **result.checks[fmt]}
    manifest = {
        "model": ckpt["model"]["name"], "num_classes": ckpt["model"]["num_classes"], "classes": ckpt["classes"],
        "input": ckpt["input"], "source_checkpoint": {"file": ckpt_path.name, "sha256": source,
                                                      "epoch": ckpt["epoch"]},
        "files": files,
        "versions": {"torch": str(torch.__version__), "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(path, manifest)
    return manifest
