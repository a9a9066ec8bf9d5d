"""Writing self-describing checkpoints: weights plus everything later stages need to rebuild and use the model.

Export, verify and bench read only this file, never the training command line, through run/checkpoint.py. It
holds plain Python containers and tensors, so `torch.load(..., weights_only=True)` reads it: no pickled code runs.
"""

from __future__ import annotations

import os
import platform
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.core.errors import CheckpointError, ConfigError
from toolkit.core.files import atomic_path
from toolkit.core.version import __version__
from toolkit.data import CIFAR10_CLASSES, ImageSet, normalization
from toolkit.models import build_model, get_spec
from toolkit.run.checkpoint import FORMAT, FORMAT_VERSION
from toolkit.run.folder import CHECKPOINT
from toolkit.train.config import TrainConfig


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

    The folder gets no metrics.jsonl, so it never counts as a trained run (run.folder.is_trained_run).
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
