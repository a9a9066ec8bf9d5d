"""A synthetic CIFAR-shaped set: learnable in seconds, for tests and for machines without the real data."""

from __future__ import annotations

import torch

from toolkit.core.errors import DataError
from toolkit.data.imageset import ImageSet


def synthetic(size: int, *, train: bool = True, seed: int = 0, num_classes: int = 10, image_size: int = 32) -> ImageSet:
    """Random images with a learnable pattern: each class is a fixed random template plus noise.

    The templates depend on nothing but `num_classes`, so train and test splits share them; the
    noise depends on `seed` and the split. A small CNN learns it to high accuracy in a few hundred steps.
    """
    if size < 1:
        raise DataError(f"synthetic set size must be positive, got {size}")
    templates = torch.randint(
        0, 256, (num_classes, 3, image_size, image_size), generator=torch.Generator().manual_seed(1234)
    ).float()
    g = torch.Generator().manual_seed(seed * 2 + (0 if train else 1))
    labels = torch.randint(0, num_classes, (size,), generator=g)
    noise = torch.randint(0, 256, (size, 3, image_size, image_size), generator=g).float()
    images = (0.6 * templates[labels] + 0.4 * noise).round().clamp(0, 255).to(torch.uint8)
    classes = tuple(f"class{i}" for i in range(num_classes))
    return ImageSet("synthetic", images, labels, classes)


def load(
    name: str, train: bool, data_dir=None, *, limit: int | None, seed: int, image_size: int | None, **_
) -> ImageSet:
    """The registry's reader: 4,096 training or 1,024 test images unless `limit` says otherwise."""
    size = limit if limit is not None else (4096 if train else 1024)
    return synthetic(size, train=train, seed=seed, image_size=image_size or 32)
