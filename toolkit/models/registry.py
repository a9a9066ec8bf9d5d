"""Every model the toolkit trains, with its published reference accuracy, source and training recipe.

A recipe holds the defaults `toolkit train` uses when an option is not given. The reference accuracy is
what the source reports for its own full recipe on the original CIFAR-10; our short runs are compared with
it in summary.json, so a user sees how far a run is from the published figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from toolkit.core.errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    optimizer: str = "sgd"  # adam | adamw | sgd
    lr: float = 0.1  # peak learning rate, for `batch_size` images per step
    batch_size: int = 128  # images per optimizer step, summed over DDP ranks
    epochs: int = 10  # passes over the training set
    weight_decay: float = 0.0  # L2 coefficient (decoupled for adamw)
    momentum: float = 0.9  # SGD momentum; ignored by Adam
    nesterov: bool = False  # SGD only
    schedule: str = "constant"  # constant | multistep (x0.1 at 50 % and 75 %) | cosine | onecycle
    label_smoothing: float = 0.0  # cross-entropy target smoothing
    augment: bool = False  # random crop (zero padding 4) + horizontal flip, batch-wise on the device
    normalize: bool = False  # subtract the data set's channel mean and divide by its std after /255


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[int], nn.Module]  # num_classes -> model
    description: str
    reference_accuracy: float | None  # percent, CIFAR-10 test set, from `source`; None when none is published
    source: str
    recipe: Recipe


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
_HE2016 = "He et al. 2016, Deep Residual Learning for Image Recognition, Table 6 (arXiv:1512.03385)"

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            "tutorial-cnn",
            _tutorial,
            "the seed tutorial's 2-conv CNN, fc1 fixed to Linear(128*28*28, 256)",
            None,
            "seed tutorial (no accuracy published; see README for ours)",
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
            "airbench94-style conv-BN-GELU net, widths 64/256/256, 2.0 M params",
            94.0,
            "Jordan 2024, 94% on CIFAR-10 in 3.29 seconds on a single GPU (arXiv:2404.00498)",
            Recipe(
                lr=0.4,
                batch_size=512,
                epochs=10,
                weight_decay=5e-4,
                nesterov=True,
                schedule="onecycle",
                label_smoothing=0.2,
                augment=True,
                normalize=True,
            ),
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


def list_models() -> list[str]:
    return list(REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(REGISTRY)}") from None


def create_model(name: str, num_classes: int = 10) -> nn.Module:
    return get_spec(name).build(num_classes)
