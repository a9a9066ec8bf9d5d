"""manifest.json: what each exported file is, where it came from, and its sha256."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from toolkit.core.files import sha256, write_json
from toolkit.core.runs import MANIFEST


def read_manifest(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    """(manifest, problem): an empty dict and a one-line reason when the file is missing or unreadable."""
    path = run_dir / MANIFEST
    if not path.is_file():
        return {}, f"{MANIFEST} is missing; file hashes are not checked"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return (
            {},
            f"{MANIFEST} is unreadable ({type(exc).__name__}); file hashes are not checked; re-run toolkit export",
        )
    if not isinstance(manifest, dict):
        return {}, f"{MANIFEST} is not a JSON object; file hashes are not checked; re-run toolkit export"
    return manifest, None


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
    write_json(run_dir / MANIFEST, manifest)
    return manifest, notes
