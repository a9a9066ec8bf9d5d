"""A validation split held out of the training set: stratified by class and fixed by the seed.

Tuning on the test set reports a score that was optimised on it; the validation images are the ones a
sweep may look at. Each class gives its share of the N images (largest remainders decide the rounding),
picked by a generator seeded with the run's seed, so the same seed always holds out the same images and
the rest keep their order.
"""

from __future__ import annotations

import torch

from toolkit.core.errors import ConfigError
from toolkit.data.imageset import ImageSet


def stratified_split(data: ImageSet, val_size: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """(train, val): `val_size` images held out of `data`, each class in proportion to its count."""
    n = len(data)
    if not 1 <= val_size < n:
        raise ConfigError(f"--val-size must be between 1 and {n - 1} (the training images), got {val_size}")
    counts = torch.bincount(data.labels, minlength=len(data.classes))
    exact = counts.double() * val_size / n
    take = exact.floor().long()
    # Largest remainders get the images rounding left over; ties go to the lower class index.
    for c in torch.argsort(exact - take, descending=True, stable=True)[: val_size - int(take.sum())]:
        take[c] += 1
    g = torch.Generator().manual_seed(seed)
    held = []
    for c in range(len(data.classes)):
        members = torch.nonzero(data.labels == c).flatten()
        held.append(members[torch.randperm(len(members), generator=g)[: int(take[c])]])
    val_idx = torch.cat(held).sort().values
    keep = torch.ones(n, dtype=torch.bool)
    keep[val_idx] = False
    train_idx = torch.nonzero(keep).flatten()
    subset = lambda idx: ImageSet(data.name, data.images[idx], data.labels[idx], data.classes)  # noqa: E731
    return subset(train_idx), subset(val_idx)
