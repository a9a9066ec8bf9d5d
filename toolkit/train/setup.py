"""A run's set-up: data on the device, model, optimizer, precision switches and the shared TrainStep.

`prepare(cfg, device)` builds everything one run trains with (a `Training`), from scratch or from a
checkpoint; the loop (loop.py) runs it, and the speed policy's probe (speed_probe.py) times it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from toolkit.core.errors import ConfigError
from toolkit.data import (
    ImageSet,
    TensorLoader,
    load_dataset,
    normalization,
    provenance,
    stratified_split,
)
from toolkit.models import build_model
from toolkit.train import distributed
from toolkit.train.config import TrainConfig
from toolkit.train.lookahead import Lookahead
from toolkit.train.optim import lr_at, make_optimizer
from toolkit.train.precision import Precision
from toolkit.train.speed import SpeedDecision
from toolkit.train.step import TrainStep


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint so a run resumes mid-epoch exactly."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch completed
    global_step: int = 0  # optimizer steps over the whole run
    partial: dict | None = None  # running sums of an interrupted epoch (RunningSums.to_dict + seconds)
    metrics: list[dict] = field(default_factory=list)  # one entry per completed epoch
    elapsed: float = 0.0  # seconds of completed epochs, evaluation included

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainState:
        return cls(**{k: d[k] for k in ("epoch", "batch", "global_step", "partial", "metrics", "elapsed")})


@dataclass
class Training:
    """Everything one run trains with, built by `prepare`."""

    cfg: TrainConfig
    device: torch.device
    dist: distributed.DistContext
    model: nn.Module  # the plain module: what is saved and evaluated
    optimizer: torch.optim.Optimizer
    fused: bool
    precision: Precision
    step: TrainStep
    train_loader: TensorLoader
    test_loader: TensorLoader | None  # None when the config turns test evaluation off (sweep trials)
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    state: TrainState
    lookahead: Lookahead | None = None
    data_provenance: dict | None = None  # which copy of the data set (official files or not)
    val_loader: TensorLoader | None = None  # --val-size images held out of the training set
    speed: SpeedDecision | None = None  # how the speed switches in cfg were chosen (set by the loop)

    @property
    def total_steps(self) -> int:
        return total_steps(self.cfg, len(self.train_loader))


def total_steps(cfg: TrainConfig, batches_per_epoch: int) -> int:
    """Optimizer steps of the whole run: a fractional epoch count (airbench's 9.9) ends the last epoch early."""
    return math.ceil(cfg.epochs * batches_per_epoch)


def epochs_to_run(cfg: TrainConfig) -> int:
    return math.ceil(cfg.epochs)


def batches_per_epoch(cfg: TrainConfig, train_images: int) -> int:
    """Optimizer steps per epoch over `train_images` (before the validation split), as TensorLoader counts."""
    n = train_images - (cfg.val_size or 0)
    return n // cfg.batch_size if cfg.drop_last else -(-n // cfg.batch_size)


def load_split(
    cfg: TrainConfig,
    split: str,
    *,
    limit: int | None = None,
    image_size: int | None = None,
    classes: tuple[str, ...] | None = None,
    data_dir: str | None = None,
    progress=None,
) -> ImageSet:
    """One split (train, val, test) of the run's data set, as `cfg` says to read it."""
    return load_dataset(
        cfg.dataset,
        split == "train",
        data_dir or cfg.data_dir,
        limit=limit,
        download=cfg.download,
        seed=cfg.seed,
        image_size=image_size,
        classes=classes,
        on_bad_image=cfg.on_bad_image,
        progress=progress,
        split=split,
    )


def load_training_set(cfg: TrainConfig, progress=None) -> tuple[ImageSet, dict]:
    """The run's training images (before the validation split) and where they came from."""
    images = load_split(cfg, "train", limit=cfg.limit_train, image_size=cfg.image_size, progress=progress)
    return images, images.info or provenance(cfg.dataset, cfg.data_dir)


def load_eval_set(cfg: TrainConfig, train_set: ImageSet, split: str = "test", progress=None) -> ImageSet:
    """The test (or an image folder's val) split, at the training set's size and with its classes."""
    return load_split(
        cfg, split, limit=cfg.limit_test, image_size=train_set.image_size, classes=train_set.classes, progress=progress
    )


def prepare(
    cfg: TrainConfig,
    device: torch.device,
    dist: distributed.DistContext | None = None,
    ckpt: dict | None = None,
    train_set: ImageSet | None = None,
    test_set: ImageSet | None = None,
    data_provenance: dict | None = None,
) -> Training:
    """Set-up: data on the device, model, optimizer, precision switches and the step; state from `ckpt`."""
    dist = dist or distributed.DistContext()
    if cfg.batch_size % dist.world_size:
        raise ConfigError(
            f"--batch-size {cfg.batch_size} must be divisible by the {dist.world_size} "
            f"processes (it is the global batch)"
        )
    if not cfg.speed_decided:
        raise ConfigError("prepare needs concrete speed switches; train() decides them (speed.decide)")
    if train_set is None:
        train_set, data_provenance = load_training_set(cfg)
    if test_set is None and cfg.test_eval:
        test_set = load_eval_set(cfg, train_set)
    if ckpt is not None:  # a resume keeps the statistics it trained with
        mean, std = tuple(ckpt["input"]["mean"]), tuple(ckpt["input"]["std"])
    else:
        mean, std = normalization(cfg.dataset, cfg.normalize, train_set)
    val_set = None
    if cfg.val_size:
        train_set, val_set = stratified_split(train_set, cfg.val_size, cfg.seed)
    elif cfg.dataset == "imagefolder" and image_folder_has(cfg, "val"):
        val_set = load_eval_set(cfg, train_set, "val")
    common = dict(device=device, mean=mean, std=std, channels_last=cfg.channels_last)
    train_loader = TensorLoader(
        train_set,
        cfg.batch_size,
        shuffle=True,
        augment=cfg.augment,
        crop_padding=cfg.crop_padding,
        crop_pad_mode=cfg.crop_pad_mode,
        flip=cfg.flip,
        drop_last=cfg.drop_last,
        seed=cfg.seed,
        rank=dist.rank,
        world_size=dist.world_size,
        **common,
    )
    test_loader = TensorLoader(test_set, cfg.eval_batch_size, **common) if cfg.test_eval else None
    val_loader = TensorLoader(val_set, cfg.eval_batch_size, **common) if val_set is not None else None

    torch.manual_seed(cfg.seed)  # identical initial weights on every rank and every resume
    precision = Precision(cfg.amp, cfg.channels_last, cfg.compile, device)
    model = build_model(cfg.model, cfg.model_args, len(train_set.classes), train_set.image_size)
    model = precision.prepare_model(model.to(device))
    _check_parameter_names(model, cfg)
    if cfg.data_init_images and ckpt is None:
        _init_from_data(model, cfg, train_loader)
    optimizer, fused = make_optimizer(model, cfg, device)
    total = total_steps(cfg, len(train_loader))
    lookahead = Lookahead(model, cfg.lookahead_every, cfg.lookahead_decay, total) if cfg.lookahead_every else None
    state = TrainState()
    if ckpt is not None:
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        precision.load_state_dict(ckpt.get("grad_scaler"))
        if lookahead is not None:
            lookahead.load_state_dict(ckpt["lookahead"])
        state = TrainState.from_dict(ckpt["progress"])
    step = TrainStep(
        precision.wrap_for_training(dist.wrap(model)),
        optimizer,
        precision,
        lambda i: lr_at(i, total, cfg),
        cfg.label_smoothing,
        lookahead,
    )
    return Training(
        cfg,
        device,
        dist,
        model,
        optimizer,
        fused,
        precision,
        step,
        train_loader,
        test_loader,
        train_set.classes,
        mean,
        std,
        state,
        lookahead,
        data_provenance,
        val_loader,
    )


def image_folder_has(cfg: TrainConfig, split: str) -> bool:
    from toolkit.data import default_data_dir

    return (Path(cfg.data_dir or default_data_dir()) / split).is_dir()


def _check_parameter_names(model: nn.Module, cfg: TrainConfig) -> None:
    names = dict(model.named_parameters())
    for name, _ in cfg.freeze_after or ():
        if name not in names:
            raise ConfigError(f"freeze_after names {name!r}, which {cfg.model} does not have")


def _init_from_data(model: nn.Module, cfg: TrainConfig, loader: TensorLoader) -> None:
    """Data-dependent initialisation declared by the recipe: the first N training images, normalised as
    in training but not augmented, go to the model's own init_from_data()."""
    init = getattr(model, "init_from_data", None)
    if init is None:
        raise ConfigError(f"the recipe asks for data_init_images but {cfg.model} has no init_from_data()")
    init(loader.to_float(loader.images[: cfg.data_init_images]))
