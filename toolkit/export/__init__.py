"""Export a trained run to TorchScript and ONNX; every file is re-loaded and checked before it is kept.

Each export is written to a temporary file beside its final name, re-loaded in its own runtime, compared
with eager PyTorch (check.py), and only then renamed into place. A file that fails is deleted, never left
looking good. The formats, their writers and runtimes are listed in formats.py.

`toolkit.export(...)` calls `export` below (see core/callable_module.py).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.callable_module import make_callable
from toolkit.core.errors import ConfigError
from toolkit.core.files import atomic_path, sha256
from toolkit.core.runs import ensure_writable, latest_run
from toolkit.export.check import ExportError, compare_with_eager, example_inputs
from toolkit.export.formats import EXPORT_FORMATS, get_format, open_runtime, validator, writer
from toolkit.export.manifest import update_manifest
from toolkit.train.checkpoint import load_checkpoint, model_from_checkpoint, resolve_checkpoint

__all__ = ["EXPORT_FORMATS", "ExportError", "ExportResult", "export"]


@dataclass
class ExportResult:
    run_dir: Path
    files: dict[str, Path] = field(default_factory=dict)  # format -> file
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # format -> batch sizes, max |diff|, ...
    manifest: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def export(
    source: str | os.PathLike | None = None,
    formats: tuple[str, ...] = EXPORT_FORMATS,
    *,
    exporter: str = "dynamo",
    opset: int = 18,
    ts_mode: str = "trace",
    atol: float = 1e-4,
    rtol: float = 1e-4,
    artifacts: str | os.PathLike = "artifacts",
) -> ExportResult:
    """Export the run folder or checkpoint `source` (default: the newest trained run under `artifacts`)."""
    if not formats:
        raise ConfigError(f"no format given; choose one of: {', '.join(EXPORT_FORMATS)} or all")
    specs = [get_format(f) for f in formats]
    if not (atol >= 0 and rtol >= 0):
        raise ConfigError(f"tolerances must be >= 0, got atol {atol} and rtol {rtol}")
    options = {"exporter": exporter, "opset": opset, "ts_mode": ts_mode}
    for spec in specs:
        validator(spec)(**options)  # bad options fail before any work
    ckpt_path = resolve_checkpoint(source if source is not None else latest_run(artifacts))
    run_dir = ckpt_path.parent
    ensure_writable(run_dir)
    ckpt = load_checkpoint(ckpt_path)
    model = model_from_checkpoint(ckpt)
    options["source_sha256"] = sha256(ckpt_path)
    result = ExportResult(run_dir)
    for spec in specs:
        final = run_dir / spec.filename
        started = time.perf_counter()
        with atomic_path(final) as tmp:
            # Batch 4, not 1: an example of batch 1 lets exporters specialise the batch axis away.
            details = writer(spec)(model, example_inputs(ckpt, 4), tmp, ckpt, **options)
            runtime_name = next(iter(spec.runtimes))
            check = compare_with_eager(model, open_runtime(runtime_name, tmp), ckpt, atol, rtol)
        result.files[spec.name] = final
        result.checks[spec.name] = {
            **check,
            **details,
            "checked_with": runtime_name,
            "seconds": time.perf_counter() - started,
        }
    result.manifest, result.notes = update_manifest(run_dir, ckpt, ckpt_path, result.files, result.checks)
    return result


make_callable(__name__, export)
