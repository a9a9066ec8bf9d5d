"""Reading a checkpoint back: find it in a run folder, load it (weights only: no pickled code runs), check it,
and rebuild its model, under the trust rule for model factories.

Writing one is training's business (train/checkpoint.py); every later stage and runtime reads it through here,
so a runtime never imports the training stage to load a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.core.errors import CheckpointError, first_line
from toolkit.models import REGISTRY, external, get_spec
from toolkit.run.folder import CHECKPOINT, remove_stale_temps_if_idle

FORMAT = "toolkit-checkpoint"
FORMAT_VERSION = 1
# What export, verify and resume read; a file with the marker but without one of these is refused by name.
REQUIRED_KEYS = {
    "model": ("name", "num_classes"),
    "state_dict": (),
    "train_config": (),
    "progress": (),
    "classes": (),
    "input": ("shape", "mean", "std"),
}


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder holding checkpoint.pt."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder; pass a run folder or its {CHECKPOINT}")
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        folder = path.parent
        removed = remove_stale_temps_if_idle(folder)
        if removed:
            raise CheckpointError(
                f"{folder} holds no {path.name}, only {len(removed)} unfinished save(s) a killed run left (removed): "
                f"it stopped before its first checkpoint; start it again without --resume"
            )
        present = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))[:6]
        raise CheckpointError(
            f"{folder} holds no {path.name} (it has: {', '.join(present) or 'nothing'}); "
            f"pass a run folder that toolkit train wrote, or its {CHECKPOINT}"
        )
    return path


def load_checkpoint(path: str | os.PathLike, *, expect_model: str | None = None, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint at `path` (a file or a run folder), checked; `mmap` leaves the weights on disk until read
    (for a caller that wants the metadata of a checkpoint of hundreds of MB)."""
    path = resolve_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint ({type(exc).__name__}); "
            f"it is truncated, corrupt or not a toolkit checkpoint"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a toolkit checkpoint (no '{FORMAT}' marker)")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer toolkit (format {ckpt['format_version']}); upgrade")
    for key, inner in REQUIRED_KEYS.items():
        missing = (
            key
            if key not in ckpt
            else next((f"{key}.{k}" for k in inner if not isinstance(ckpt[key], dict) or k not in ckpt[key]), None)
        )
        if missing:
            raise CheckpointError(f"{path}: damaged checkpoint, '{missing}' is missing; re-run toolkit train")
    name = ckpt["model"]["name"]
    if expect_model is not None and name != expect_model:
        raise CheckpointError(f"{path}: checkpoint is for model {name!r}, not {expect_model!r}")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], *, model: str | None = None) -> nn.Module:
    """The trained model in eval mode on the CPU.

    The checkpoint names its model; code runs only if the user named it too: a registry model, an installed
    `toolkit.models` entry point, or a factory path given again as `model` (or trusted by external.trust).
    """
    spec = trusted_spec(ckpt["model"], model)
    try:
        net = spec.build(ckpt["model"]["num_classes"])
        net.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint weights do not fit model {ckpt['model']['name']!r}: {first_line(exc)}"
        ) from None
    return net.eval()


def allow_model(ckpt: dict[str, Any], model: str | None) -> None:
    """`--model` given to export, verify, bench or predict: it must be the checkpoint's; its factory is then
    trusted here and in the child processes the command starts."""
    if model is None:
        return
    if model != ckpt["model"]["name"]:
        raise CheckpointError(f"the run's model is {ckpt['model']['name']}, not {model}; pass --model with its name")
    external.trust(model)


def trusted_spec(record: dict[str, Any], model: str | None = None):
    """The ModelSpec to rebuild a checkpoint's model with, or a CheckpointError when that would run code the
    user did not name. Nothing is imported before the decision."""
    name, kind = record["name"], record.get("kind", "registry")
    args = record.get("args") or {}
    if kind == "registry":
        if name not in REGISTRY:
            raise CheckpointError(f"checkpoint names registry model {name!r}, which this toolkit does not have")
        return get_spec(name)
    if kind == "entry-point":
        if external.is_factory_path(name) or name not in external.entry_points():
            wanted = f"{record.get('package') or 'its plugin'} {record.get('version') or ''}".strip()
            raise CheckpointError(
                f"checkpoint's model {name!r} comes from a toolkit.models plugin that is not installed here; "
                f"install {wanted}"
            )
        return get_spec(name)
    if kind != "factory" or not external.is_factory_path(name):
        raise CheckpointError(f"checkpoint's model record is damaged (kind {kind!r}, name {name!r})")
    if model is not None and model != name:
        raise CheckpointError(f"checkpoint is for model {name}, not {model}")
    if name != model and name not in external.trusted_factories():
        call = f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"
        origin = f" from {record['package']} {record.get('version') or ''}".rstrip() if record.get("package") else ""
        raise CheckpointError(
            f"this checkpoint's model is built by calling {call}{origin}, code that is neither a registry model nor "
            f"an installed toolkit.models entry point, so nothing was imported; if you trust it, name it again: "
            f"--model {name}"
        )
    return get_spec(name, args)
