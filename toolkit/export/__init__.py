"""Export a trained run to every format in the registry (fp32, INT8, fp16); each file is re-loaded and checked first.

Each export is written to a temporary file beside its final name, re-loaded by its runtime in a process of
its own (a crash there is an error that names it), compared with eager PyTorch (check.py), and only then
renamed into place. A file that fails is deleted, never left looking good. The formats, their writers and
runtimes are listed in targets/formats.py.

`toolkit.export(...)` calls `export` below (see core/callable_module.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.callable_module import make_callable
from toolkit.core.errors import ConfigError, Interrupted, ToolkitError
from toolkit.core.files import atomic_path, sha256
from toolkit.export.check import ExportError, check_batches, compare_with_eager, example_inputs
from toolkit.export.disk import expected_bytes, no_room
from toolkit.run.checkpoint import allow_model, load_checkpoint, model_from_checkpoint, resolve_checkpoint
from toolkit.run.folder import (
    DEFAULT_ROOT,
    MANIFEST,
    TRAINING_FILES,
    ensure_writable,
    latest_run,
    remove_stale_temps_if_idle,
)
from toolkit.run.manifest import update_manifest
from toolkit.targets.child import run_in_child
from toolkit.targets.formats import (
    DEFAULT_FORMATS,
    FORMATS,
    expand_formats,
    export_formats,
    get_format,
    target_label,
    validator,
    writer,
    writer_options,
)
from toolkit.targets.gates import Thresholds

__all__ = ["DEFAULT_FORMATS", "ExportError", "ExportResult", "export"]


@dataclass
class ExportResult:
    run_dir: Path
    files: dict[str, Path] = field(default_factory=dict)  # format -> file
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # format -> batch sizes, max |diff|, ...
    manifest: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def export(
    source: str | os.PathLike | None = None,
    formats: str | tuple[str, ...] | None = None,
    *,
    atol: float = Thresholds.atol,
    rtol: float = Thresholds.rtol,
    data_dir: str | None = None,
    threads: int | None = None,
    model: str | None = None,
    artifacts: str | os.PathLike = DEFAULT_ROOT,
    progress: Callable[[str], None] = lambda line: None,
    **options: Any,
) -> ExportResult:
    """Export the run folder or checkpoint `source` (default: the newest trained run under `artifacts`) to
    `formats`: names, a comma-separated string, or a set (default, fp32, all: targets/formats.py).

    `options` are the writers' options, as the formats declare them (`toolkit formats`, `export --help`:
    opset, calibration_images, ...); one no format declares is an error, never ignored.

    Low-precision formats (onnx-int8, onnx-int8-dynamic, onnx-fp16) are made from the run's model.onnx,
    written first in the same call or by an earlier one; static INT8 calibrates on the run's training
    images (`data_dir` overrides the folder the checkpoint names).
    """
    formats, skipped = expand_formats(formats)
    # Files made from another format come after it.
    specs = sorted((get_format(f) for f in dict.fromkeys(formats)), key=lambda f: f.source is not None)
    if not (atol >= 0 and rtol >= 0):
        raise ConfigError(f"tolerances must be >= 0, got atol {atol} and rtol {rtol}")
    options = _writer_options(options)
    options["data_dir"] = data_dir
    for name in export_formats():  # every writer's options, asked for or not: a typo is an error, never ignored
        validator(FORMATS[name])(**options)
    ckpt_path = resolve_checkpoint(source if source is not None else latest_run(artifacts))
    run_dir = ckpt_path.parent
    # A killed export (or save) leaves a hidden temp file, as large as the model: gone before new ones are made.
    remove_stale_temps_if_idle(run_dir, (*TRAINING_FILES, *(FORMATS[n].filename for n in export_formats())))
    for spec in specs:
        src = FORMATS[spec.source] if spec.source else None
        if src and src.name not in formats and not (run_dir / src.filename).is_file():
            raise ConfigError(
                f"{run_dir} has no {src.filename} to make {spec.name} from; "
                f"run `toolkit export {run_dir} --format {src.name}` first"
            )
    ensure_writable(run_dir)
    ckpt = load_checkpoint(ckpt_path)
    allow_model(ckpt, model)  # a factory model is rebuilt only when --model names it
    model = model_from_checkpoint(ckpt)
    options["source_sha256"] = sha256(ckpt_path)
    result = ExportResult(run_dir, notes=skipped)
    batches = check_batches(ckpt)
    try:
        for spec in specs:
            _export_one(spec, model, ckpt, ckpt_path, batches, options, atol, rtol, threads, result, progress)
    except KeyboardInterrupt:
        # Each file written so far is checked and in manifest.json; the one being written was never renamed
        # into place (atomic_path), so nothing half-made is left for a later command to pick up.
        left = [s for s in specs if s.name not in result.files]
        kept = ", ".join(f.name for f in result.files.values()) or "nothing"
        raise Interrupted(
            f"export interrupted: kept {kept} (each checked, in {MANIFEST}); not written: "
            f"{', '.join(s.filename for s in left)}; `toolkit export {run_dir} --format "
            f"{','.join(s.name for s in left)}` writes the rest"
        ) from None
    return result


def _export_one(spec, model, ckpt, ckpt_path, batches, options, atol, rtol, threads, result, progress) -> None:
    """Write, reload and check one format's file, then record it in manifest.json at once: a later format's
    failure or an interruption never leaves a kept file without its entry."""
    run_dir = ckpt_path.parent
    final = run_dir / spec.filename
    started = time.perf_counter()
    if spec.source:
        options["source_path"] = run_dir / FORMATS[spec.source].filename
    progress(f"{spec.name}: writing {spec.filename}" + (f" ({spec.note})" if spec.note else ""))
    with atomic_path(final) as tmp:
        runtime_name = spec.runtimes[0]
        label = f"{target_label(spec.name, runtime_name, 'cpu')} ({spec.filename})"
        needed = expected_bytes(model, spec.precision)
        if problem := no_room(run_dir, needed, spec.filename):
            raise problem
        try:
            # Batch 4, not 1: an example of batch 1 lets exporters specialise the batch axis away.
            details = writer(spec)(model, example_inputs(ckpt, 4), tmp, ckpt, **options)
        except Exception as exc:  # a full disk is said as such, not as the exporter's own guess
            raise no_room(run_dir, needed, spec.filename, failed=True) or exc from None
        try:
            child = run_in_child(runtime_name, tmp, "cpu", threads, batches, label=label)
        except ToolkitError as exc:
            raise ExportError(f"{exc}; the file was not kept") from None
        check = compare_with_eager(model, batches, child.outputs, label, ckpt, atol, rtol, gate_logits=not spec.reduced)
    result.files[spec.name] = final
    result.checks[spec.name] = {
        **check,
        **details,
        "precision": spec.precision,
        "checked_with": runtime_name,
        "seconds": time.perf_counter() - started,
    }
    result.manifest, replaced = update_manifest(
        run_dir, ckpt, ckpt_path, {spec.name: final}, {spec.name: result.checks[spec.name]}
    )
    result.notes += replaced


def _writer_options(given: dict[str, Any]) -> dict[str, Any]:
    """Every option the registry's writers declare, at its default unless `given`; ConfigError for a name no
    format declares or a value of the wrong type."""
    declared = writer_options()
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigError(
            f"unknown export option {unknown[0]!r}; the formats' writers take: {', '.join(declared) or 'none'}"
        )
    for name, value in given.items():
        declared[name][0].check(value)
    return {name: given.get(name, option.default) for name, (option, _) in declared.items()}


make_callable(__name__, export)
