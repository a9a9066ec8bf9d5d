"""Self-describing checkpoints: weights plus everything later stages need to rebuild and use the model.

Export, verify and bench read only this file, never the training command line. It holds plain Python
containers and tensors, so `torch.load(..., weights_only=True)` reads it: no pickled code is run.
"""

from __future__ import annotations

import os
import platform
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.core.errors import CheckpointError, ConfigError, first_line
from toolkit.core.files import atomic_path
from toolkit.core.runs import CHECKPOINT, remove_stale_temps_if_idle
from toolkit.core.version import __version__
from toolkit.data import CIFAR10_CLASSES, ImageSet, normalization
from toolkit.models import REGISTRY, build_model, external, get_spec
from toolkit.train.config import TrainConfig

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


def versions() -> dict[str, str]:
    import numpy
    import torchvision

    return {
        "toolkit": __version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
    }


def make_payload(
    cfg: TrainConfig,
    model: nn.Module,
    classes,
    mean,
    std,
    *,
    progress: dict | None = None,
    optimizer: dict | None = None,
    grad_scaler: dict | None = None,
    world_size: int = 1,
    origin: str = "train",
    lookahead: dict | None = None,
    speed: dict | None = None,
) -> dict:
    """Everything a checkpoint holds besides the format marker; `cfg` is a resolved TrainConfig.

    `progress` is TrainState.to_dict(); `origin` says whether training wrote it or bench made untrained weights.
    """
    spec = get_spec(cfg.model, cfg.model_args)
    progress = progress or {"epoch": 0, "batch": 0, "global_step": 0, "partial": None, "metrics": [], "elapsed": 0.0}
    size = cfg.image_size or 32
    return {
        "model": spec.record(len(classes)),
        "origin": origin,
        "state_dict": cpu_state_dict(model),
        "train_config": cfg.to_dict(),
        "epoch": progress["epoch"],
        "progress": progress,
        "optimizer": optimizer or {},
        "grad_scaler": grad_scaler,
        "lookahead": lookahead,  # the slow weights, where the recipe uses lookahead
        "speed": speed,  # how the speed policy chose the switches in train_config (speed.SpeedDecision)
        "metrics": progress["metrics"],
        "classes": list(classes),
        "input": {
            "shape": [3, size, size],
            "layout": "NCHW",
            "dtype": "float32",
            "channel_order": "RGB",
            "scale": "pixel / 255",
            # How an image file becomes the input (data/decode.py): predict repeats what training did.
            "resize": "center-crop" if cfg.dataset == "imagefolder" else "stretch",
            "mean": list(mean),
            "std": list(std),
        },
        "versions": versions(),
        "seed": cfg.seed,
        "world_size": world_size,
    }


def cpu_state_dict(model: nn.Module) -> OrderedDict:
    """The weights on the CPU, with the per-module versions torch keeps beside them (`_metadata`): a module
    such as torchvision's MNASNet refuses a state dict without its version (found by the conformance run)."""
    state = model.state_dict()
    cpu = OrderedDict((k, v.detach().cpu()) for k, v in state.items())
    cpu._metadata = getattr(state, "_metadata", OrderedDict())  # plain dicts: weights_only reads them back
    return cpu


def write_untrained(
    model_name: str,
    run_dir: str | os.PathLike,
    seed: int = 0,
    *,
    model_args: dict | None = None,
    dataset: str = "cifar10",
    image_size: int | None = None,
) -> Path:
    """A checkpoint of freshly initialised weights, for benchmarking (or conformance-testing) a model nobody
    trained yet: on CIFAR-10's 10 classes at 32x32, or a synthetic set's 10 at `image_size`.

    The folder gets no metrics.jsonl, so it never counts as a trained run (core.runs.is_trained_run).
    """
    if dataset not in ("cifar10", "synthetic"):
        raise ConfigError(f"untrained checkpoints are made for cifar10 or synthetic data, not {dataset!r}")
    cfg = TrainConfig(
        model=model_name,
        model_args=model_args,
        dataset=dataset,
        image_size=image_size or 32,
        run_name=Path(run_dir).name,
        seed=seed,
        amp="off",
        channels_last=False,
        compile=False,
    ).resolved()  # nothing trained: no speed switch applies
    torch.manual_seed(seed)
    mean, std = normalization(cfg.dataset, cfg.normalize)
    classes = CIFAR10_CLASSES if dataset == "cifar10" else tuple(f"class{i}" for i in range(10))
    model = build_model(cfg.model, cfg.model_args, len(classes), cfg.image_size)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    path = Path(run_dir) / CHECKPOINT
    save_checkpoint(path, make_payload(cfg, model, classes, mean, std, origin="untrained"))
    return path


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write atomically: the previous checkpoint stays intact until the new one is complete."""
    first = not Path(path).exists()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        try:
            torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **payload}, f)
        except RuntimeError:
            # torch's writer reports a short write (full disk, file-size limit) as an internal assertion.
            written = os.fstat(f.fileno()).st_size
            raise CheckpointError(
                f"cannot write checkpoint {path}: the write stopped after {written:,} bytes (disk full or a "
                f"file-size limit); "
                + (
                    "it was the run's first, so there is nothing to resume; free space or raise the limit, then "
                    "start the run again"
                    if first
                    else "the previous checkpoint is intact; free space or raise the limit, then resume"
                )
            ) from None


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


def dataset_of(ckpt: dict[str, Any], train: bool, data_dir: str | None = None, *, limit: int | None = None) -> ImageSet:
    """The run's own data set (a split of it), at the size and with the classes the model was trained on."""
    from toolkit.train.setup import load_split  # setup builds on this module

    return load_split(
        TrainConfig.from_dict(ckpt["train_config"]),
        "train" if train else "test",
        limit=limit,
        image_size=int(ckpt["input"]["shape"][-1]),
        classes=tuple(ckpt["classes"]),
        data_dir=data_dir,
    )


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
