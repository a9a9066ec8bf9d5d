"""manifest.json: what each exported file is, where it came from, and its sha256."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from toolkit.core.errors import ConfigError, first_line
from toolkit.core.files import sha256
from toolkit.run.folder import CHECKPOINT, MANIFEST
from toolkit.run.records import Manifest, RecordVersionError, RunFileError


def read_manifest(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    """(manifest, problem): an empty dict and a one-line reason when the file is missing or unreadable; a
    manifest of a schema version this toolkit does not read is RecordVersionError."""
    path = Manifest.path(run_dir)
    if not path.is_file():
        return {}, f"{MANIFEST} is missing; file hashes are not checked"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return (
            {},
            f"{MANIFEST} is unreadable ({type(exc).__name__}); file hashes are not checked; re-run toolkit export",
        )
    if not isinstance(data, dict):
        return {}, f"{MANIFEST} is not a JSON object; file hashes are not checked; re-run toolkit export"
    try:
        return Manifest.from_dict(data, path).data, None
    except RecordVersionError:
        raise
    except RunFileError as exc:
        return {}, f"{first_line(exc).split(': ', 1)[-1].split(';')[0]}; file hashes are not checked"


MAX_SIDE = 4096  # pixels: far above any input these models take, far below what would exhaust memory
LAYOUTS = ("NCHW",)
DTYPES = ("float32",)


def validate_manifest(manifest: dict[str, Any], path: Path, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one schema of manifest.json, checked before predict, verify or bench trust a field of it.

    ConfigError naming the key when a field is missing or cannot be right (a std of 0 divides by zero, a
    side of 100,000 pixels is a 40 GB tensor, three class names for ten outputs mislabel every answer), or,
    given the run's `checkpoint`, when the input spec or the classes are not the checkpoint's: every file was
    exported from it, for its input, so a manifest that says otherwise was edited (an input of 64x64 made
    TorchScript answer other probabilities for a model exported at 32x32)."""

    def bad(key: str, what: str, value: Any = ...) -> ConfigError:
        got = "" if value is ... else f", got {json.dumps(value)[:60]}"
        return ConfigError(f"{path}: {key!r} must be {what}{got}; re-run toolkit export to rewrite it")

    def finite(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    spec = manifest.get("input")
    if not isinstance(spec, dict):
        raise bad("input", "an object with shape, mean, std, layout and dtype", spec if "input" in manifest else ...)
    for key in ("mean", "std"):
        v = spec.get(key)
        if not (isinstance(v, list) and len(v) == 3 and all(finite(x) for x in v)):
            raise bad(f"input.{key}", "3 finite numbers (one per RGB channel)", v)
    if not all(x > 0 for x in spec["std"]):
        raise bad("input.std", "3 numbers > 0 (the input is divided by them)", spec["std"])
    shape = spec.get("shape")
    ints = isinstance(shape, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in shape)
    if not (ints and len(shape) == 3 and shape[0] == 3 and all(1 <= x <= MAX_SIDE for x in shape[1:])):
        raise bad("input.shape", f"[3, height, width] with sides between 1 and {MAX_SIDE}", shape)
    for key, known in (("layout", LAYOUTS), ("dtype", DTYPES)):
        if spec.get(key) not in known:
            raise bad(f"input.{key}", f"one of {', '.join(known)}", spec.get(key))
    classes, n = manifest.get("classes"), manifest.get("num_classes")
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise bad("num_classes", "a positive integer", n)
    if not (isinstance(classes, list) and len(classes) == n and all(isinstance(c, str) and c for c in classes)):
        raise bad("classes", f"a list of {n} class names (num_classes)", classes)
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("sha256"), str) and len(e["sha256"]) == 64 for e in files.values()
    ):
        raise bad("files", "an object of file name -> {sha256: 64 hex digits, ...}")
    source = manifest.get("source_checkpoint")
    if not (isinstance(source, dict) and isinstance(source.get("sha256"), str)):
        raise bad("source_checkpoint", "an object with the checkpoint's sha256")
    if checkpoint is not None:
        _agrees_with_checkpoint(manifest, path, checkpoint)
    return manifest


def _agrees_with_checkpoint(manifest: dict[str, Any], path: Path, ckpt: dict[str, Any]) -> None:
    def plain(v: Any) -> Any:  # tuples in the checkpoint, lists in JSON
        return json.loads(json.dumps(v))

    expected = {f"input.{k}": v for k, v in (ckpt.get("input") or {}).items()}
    expected["classes"] = ckpt.get("classes")
    given = {f"input.{k}": v for k, v in manifest["input"].items()}
    given["classes"] = manifest["classes"]
    for key in sorted(expected):
        if key in given and plain(given[key]) != plain(expected[key]):
            raise ConfigError(
                f"{path}: {key!r} is {json.dumps(plain(given[key]))[:60]} but the checkpoint every file was "
                f"exported from says {json.dumps(plain(expected[key]))[:60]}; re-run toolkit export to rewrite it"
            )


def load_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's validated manifest, checked against the run's checkpoint where there is one; ConfigError when
    it is missing, unreadable, invalid or not the checkpoint's."""
    from toolkit.run.checkpoint import load_checkpoint

    manifest, problem = read_manifest(run_dir)
    if problem:
        raise ConfigError(f"{run_dir}: {problem.split(';')[0]}; run `toolkit export {run_dir}` to write it")
    ckpt = load_checkpoint(run_dir, mmap=True) if (run_dir / CHECKPOINT).is_file() else None
    return validate_manifest(manifest, run_dir / MANIFEST, ckpt)


def modification(run_dir: Path, manifest: dict[str, Any], name: str) -> str | None:
    """Why `name` is not the file export checked (its sha256 against the manifest's; the checkpoint's against
    source_checkpoint), or None when it is."""
    digest = sha256(run_dir / name)
    source = manifest.get("source_checkpoint", {})
    if name == source.get("file", CHECKPOINT):
        expected = source.get("sha256")
    else:
        expected = manifest.get("files", {}).get(name, {}).get("sha256")
    if expected is None:
        return f"{name} is not in {MANIFEST}: export did not check it"
    if expected != digest:
        return f"{name} differs from the file export checked (sha256 {digest[:12]}… vs {expected[:12]}…)"
    return None


def update_manifest(
    run_dir: Path, ckpt: dict, ckpt_path: Path, files: dict[str, Path], checks: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], list[str]]:
    """Add `files` (format -> path) to the run's manifest; (manifest, notes about what was replaced)."""
    import onnx
    import onnxruntime

    source = sha256(ckpt_path)
    manifest, problem = read_manifest(run_dir)
    notes = [f"{MANIFEST} was unreadable; it was written anew"] if problem and (run_dir / MANIFEST).is_file() else []
    if manifest and manifest.get("source_checkpoint", {}).get("sha256") != source:
        manifest = {}  # exports of an older checkpoint no longer describe these files
        notes.append(f"{MANIFEST} described an older checkpoint; its entries were dropped")
    entries = manifest.get("files", {}) if isinstance(manifest.get("files"), dict) else {}
    for fmt, file in files.items():
        entries[file.name] = {"format": fmt, "sha256": sha256(file), "bytes": file.stat().st_size, **checks[fmt]}
    manifest = {
        "model": ckpt["model"]["name"],
        # How the model is rebuilt: registry, plugin or factory, its arguments and the package's version.
        "model_spec": {k: v for k, v in ckpt["model"].items() if k in ("kind", "args", "package", "version")},
        "num_classes": ckpt["model"]["num_classes"],
        "classes": ckpt["classes"],
        "input": ckpt["input"],
        "source_checkpoint": {
            "file": ckpt_path.name,
            "sha256": source,
            "epoch": ckpt["epoch"],
            "origin": ckpt.get("origin", "train"),
        },
        "files": entries,
        "versions": {"torch": str(torch.__version__), "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    Manifest.write(run_dir, manifest)
    return manifest, notes
