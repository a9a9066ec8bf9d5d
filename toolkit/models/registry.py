"""Every model the toolkit trains, with its published reference accuracy, source and training recipe.

A recipe holds the defaults `toolkit train` uses when an option is not given. The reference accuracy is
what the source reports for its own full recipe on the original CIFAR-10; our short runs are compared with
it in summary.json, so a user sees how far a run is from the published figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from toolkit.core.errors import ConfigError, first_line
from toolkit.models import external


@dataclass(frozen=True)
class Recipe:
    optimizer: str = "sgd"  # adam | adamw | sgd
    lr: float = 0.1  # peak learning rate, for `batch_size` images per step
    batch_size: int = 128  # images per optimizer step, summed over DDP ranks
    epochs: float = 10  # passes over the training set; a fraction ends the last pass early
    weight_decay: float = 0.0  # L2 coefficient (decoupled for adamw)
    momentum: float = 0.9  # SGD momentum; ignored by Adam
    nesterov: bool = False  # SGD only
    schedule: str = "constant"  # constant | multistep (x0.1 at 50 %, 75 %) | cosine | onecycle | warmup-linear
    label_smoothing: float = 0.0  # cross-entropy target smoothing
    augment: bool = False  # random crop (zero padding 4) + horizontal flip, batch-wise on the device
    normalize: bool = False  # subtract the data set's channel mean and divide by its std after /255
    # Mechanisms some published recipes need; these defaults leave every one of them off.
    drop_last: bool = False  # drop the last partial batch of every epoch
    crop_padding: int = 4  # pixels of padding around the image before the random 32x32 crop
    crop_pad_mode: str = "zeros"  # zeros | reflect
    flip: str = "random"  # random: each image, each epoch | alternate: random once, then mirrored every other epoch
    warmup_fraction: float = 0.23  # warmup-linear: share of the steps over which the lr factor rises ...
    lr_start_factor: float = 0.2  # ... from this factor to 1, then falls linearly to ...
    lr_end_factor: float = 0.07  # ... this factor at the last step
    lr_scales: tuple[tuple[str, float], ...] = ()  # (name fragment, lr factor); their decay is divided by it
    freeze_after: tuple[tuple[str, float], ...] = ()  # (parameter name, epochs it trains before it freezes)
    lookahead_every: int = 0  # steps between lookahead updates of the slow weights; 0 = no lookahead
    lookahead_decay: float = 0.95  # per-step decay; the update uses decay^every * (step/total)^3
    data_init_images: int = 0  # first N training images the model's init_from_data() sees; 0 = none
    tta: str = "none"  # evaluation policy: none | mirror | mirror-translate (reported beside plain accuracy)
    # Autocast precisions the recipe's numerics allow: the speed policy may choose one of these (where the
    # hardware computes it natively) and never another; () keeps the run in fp32 unless --amp asks.
    amp_allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[int], nn.Module]  # num_classes -> model
    description: str
    reference_accuracy: float | None  # percent, CIFAR-10 test set, from `source`; None when none is published
    source: str
    recipe: Recipe
    kind: str = "registry"  # registry | entry-point | factory (models/external.py)
    package: str | None = None  # the package that provides it, outside the registry
    version: str | None = None  # that package's installed version
    args: dict[str, Any] = field(default_factory=dict)  # factory keyword arguments (--model-arg)

    def with_origin(self, kind: str, source: str, *, package: str | None, version: str | None) -> ModelSpec:
        return replace(self, kind=kind, source=source, package=package, version=version)

    def record(self, num_classes: int) -> dict[str, Any]:
        """What a checkpoint stores to rebuild the model (and nothing it would execute by itself)."""
        return {
            "name": self.name,
            "num_classes": num_classes,
            "kind": self.kind,
            "args": dict(self.args),
            "package": self.package,
            "version": self.version,
            "reference_accuracy": self.reference_accuracy,
            "source": self.source,
        }


def _tutorial(num_classes: int) -> nn.Module:
    from toolkit.models.tutorial_cnn import TutorialCNN

    return TutorialCNN(num_classes)


def _resnet(depth: int) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        from toolkit.models.resnet_cifar import CifarResNet

        return CifarResNet(depth, num_classes)

    return build


def _fast(num_classes: int) -> nn.Module:
    from toolkit.models.fast_cnn import FastCNN

    return FastCNN(num_classes)


def _resnet18(num_classes: int) -> nn.Module:
    from toolkit.models.resnet18 import resnet18_cifar

    return resnet18_cifar(num_classes)


# Section 4.2: SGD 0.1, batch 128, 64k iterations (164 epochs), /10 at 32k and 48k, decay 1e-4, crop + flip.
_HE2016_RECIPE = Recipe(
    lr=0.1, batch_size=128, epochs=164, weight_decay=1e-4, schedule="multistep", augment=True, normalize=True
)
# airbench94 in mean-loss terms: its lr 11.5 and decay 0.0153 "per 1024 examples" with a summed loss and
# momentum 0.85 become lr 11.5 / (1 + 1/0.15) = 1.5 and decay 0.0153 / 11.5 = 1.33e-3 here.
_AIRBENCH94_RECIPE = Recipe(
    lr=1.5,
    batch_size=1024,
    epochs=9.9,  # 476 steps of 48 a full epoch (the last partial batch dropped)
    weight_decay=0.0153 / 11.5,
    momentum=0.85,
    nesterov=True,
    schedule="warmup-linear",  # factor 0.2 -> 1 over 23 % of the steps, then -> 0.07
    warmup_fraction=0.23,
    lr_start_factor=0.2,
    lr_end_factor=0.07,
    label_smoothing=0.2,
    augment=True,
    normalize=True,
    drop_last=True,
    crop_padding=2,
    crop_pad_mode="reflect",
    flip="alternate",
    lr_scales=(("norm", 64.0),),  # BatchNorm biases at 64x the lr, their lr x decay unchanged
    freeze_after=(("whiten.bias", 3.0),),
    lookahead_every=5,
    lookahead_decay=0.95,
    data_init_images=5000,
    tta="mirror-translate",
    amp_allowed=("bf16", "fp16"),  # the authors train in fp16; bf16 ended level with fp32 (90.80 vs 90.87 % TTA)
)
_HE2016 = "He et al. 2016, Deep Residual Learning for Image Recognition, Table 6 (arXiv:1512.03385)"

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            "tutorial-cnn",
            _tutorial,
            "the seed tutorial's 2-conv CNN, fc1 fixed to Linear(128*28*28, 256)",
            None,
            "seed tutorial (no accuracy published; see docs/results.md for ours)",
            Recipe(optimizer="adam", lr=1e-3, batch_size=64, epochs=10),
        ),
        ModelSpec(
            "resnet20",
            _resnet(20),
            "CIFAR ResNet-20, option A shortcuts, 0.27 M params",
            91.25,
            _HE2016,
            _HE2016_RECIPE,
        ),
        ModelSpec(
            "resnet56",
            _resnet(56),
            "CIFAR ResNet-56, option A shortcuts, 0.86 M params",
            93.03,
            _HE2016,
            _HE2016_RECIPE,
        ),
        ModelSpec(
            "fast-cnn",
            _fast,
            "airbench94: data-whitened 2x2 stem, conv-pool-BN-GELU blocks 64/256/256, 1.97 M params",
            94.01,
            "Jordan 2024, 94% on CIFAR-10 in 3.29 Seconds on a Single GPU (arXiv:2404.00498), mean of 1,000 runs",
            _AIRBENCH94_RECIPE,
        ),
        ModelSpec(
            "resnet18",
            _resnet18,
            "torchvision ResNet-18 with a CIFAR stem (3x3 conv, no max-pool)",
            93.02,
            "kuangliu/pytorch-cifar README (ResNet18, SGD + cosine, 200 epochs)",
            Recipe(
                lr=0.1, batch_size=128, epochs=200, weight_decay=5e-4, schedule="cosine", augment=True, normalize=True
            ),
        ),
    ]
}


# A model from outside the registry trains with this unless options say otherwise: the common CIFAR recipe
# for ImageNet-style networks (kuangliu/pytorch-cifar's: SGD 0.1, momentum 0.9, decay 5e-4, cosine, crop + flip),
# shortened to 10 epochs; its reference figure is unknown.
FOREIGN_RECIPE = Recipe(
    lr=0.1, batch_size=128, epochs=10, weight_decay=5e-4, schedule="cosine", augment=True, normalize=True
)


def list_models() -> list[str]:
    return [*REGISTRY, *external.entry_points()]


def get_spec(name: str, args: dict[str, Any] | None = None) -> ModelSpec:
    """A registry name, an installed `toolkit.models` entry point, or a `package.module:factory` path.

    A factory path is only described here (nothing imported); its module is imported when `build` runs.
    """
    if name in REGISTRY:
        if args:
            raise ConfigError(f"--model-arg applies to models from outside the registry, not to {name!r}")
        return REGISTRY[name]
    if external.is_factory_path(name):
        package, version = external.package_version(name.split(":", 1)[0])
        args = {k: external.check_arg_value(k, v) for k, v in (args or {}).items()}
        return ModelSpec(
            name,
            lambda num_classes: external.call_factory(name, args, num_classes),
            f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})",
            None,
            f"{package} {version}" if version else f"{package} (version unknown)",
            FOREIGN_RECIPE,
            kind="factory",
            package=package,
            version=version,
            args=args,
        )
    plugins = external.entry_points()
    if name in plugins:
        if args:
            raise ConfigError(f"--model-arg applies to factory paths (package.module:function), not to {name!r}")
        return external.load_entry_point(plugins[name])
    known = [*REGISTRY, *plugins]
    raise ConfigError(
        f"unknown model {name!r}; choose one of: {', '.join(known)}, or name any factory as package.module:function"
    )


def create_model(name: str, num_classes: int = 10, args: dict[str, Any] | None = None) -> nn.Module:
    return get_spec(name, args).build(num_classes)


def build_model(name: str, args: dict | None, num_classes: int, image_size: int) -> nn.Module:
    """The model, checked to take (N, 3, S, S) and give (N, num_classes): one line naming what does not fit."""
    model = get_spec(name, args).build(num_classes)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, 3, image_size, image_size))
    except Exception as exc:
        raise ConfigError(
            f"model {name} cannot take 3x{image_size}x{image_size} input ({type(exc).__name__}: "
            f"{first_line(exc)}); choose another --image-size"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.shape != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"model {name} gives {got} for a batch of 2, where the data's {num_classes} classes need (2, "
            f"{num_classes}); pass --model-arg num_classes={num_classes} (or the factory's own name for it)"
        )
    return model
