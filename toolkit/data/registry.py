"""The data set registry: one line per data set, naming its reader. A new data set is a reader file (a `load`
function returning an ImageSet) and its line here; training, export's calibration, verify and bench then load
it through `load_dataset` like the others.

Readers are named by import string, so a data set's packages load only where it is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from toolkit.core.errors import DataError
from toolkit.core.lazy import load_object as _load
from toolkit.data.imageset import ImageSet


@dataclass(frozen=True)
class DataSource:
    name: str  # what --dataset takes
    reader: str  # "module:function": load(name, train, data_dir, *, limit, download, seed, image_size, ...)
    native_size: int | None = None  # the side its images come at; None: --image-size chooses
    stats: str | None = None  # "module:function" giving the published (mean, std); None: computed or identity
    stats_from_training_images: bool = False  # mean and std are the training images' own (image folders)
    provenance: str | None = None  # "module:function" saying which copy of the data a run used
    note: str = ""  # said in the run's provenance where no provenance function checks the files


DATASETS: dict[str, DataSource] = {
    s.name: s
    for s in [
        DataSource("cifar10", "toolkit.data.cifar:load", 32, "toolkit.data.cifar:stats",
                   provenance="toolkit.data.cifar:provenance"),
        DataSource("cifar100", "toolkit.data.cifar:load", 32, "toolkit.data.cifar:stats",
                   provenance="toolkit.data.cifar:provenance"),
        DataSource("synthetic", "toolkit.data.synthetic:load", note="synthetic data (no published figure applies)"),
        DataSource("imagefolder", "toolkit.data.imagefolder:load", stats_from_training_images=True,
                   note="image folder"),
    ]
}  # fmt: skip


def source(name: str) -> DataSource:
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def load_dataset(
    name: str,
    train: bool,
    data_dir: str | os.PathLike | None = None,
    *,
    limit: int | None = None,
    download: bool = True,
    seed: int = 0,
    image_size: int | None = None,
    classes: tuple[str, ...] | None = None,
    on_bad_image: str = "fail",
    progress=None,
    split: str | None = None,
) -> ImageSet:
    """Load data set `name` (its training or test split); the first `limit` rows when given.

    Image folders: `split` (train, val, test; default from `train`), `image_size` (None: the images' own side),
    `classes` (the training set's, which the split must match), `on_bad_image`, `progress` (a line callback).
    """
    return _load(source(name).reader)(
        name, train, data_dir, limit=limit, download=download, seed=seed, image_size=image_size, classes=classes,
        on_bad_image=on_bad_image, progress=progress, split=split,
    )  # fmt: skip


def normalization(
    dataset: str, normalize: bool, train_set: ImageSet | None = None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) applied after scaling pixels to [0, 1]; identity when the recipe does not normalise.

    Published figures where the data set has them; an image folder's are computed on its training images
    (`train_set`)."""
    src = source(dataset)
    if normalize and src.stats:
        return _load(src.stats)(dataset)
    if normalize and src.stats_from_training_images:
        from toolkit.data.imagefolder import channel_stats

        if train_set is None:
            raise DataError(f"{dataset}'s mean and std come from its training images; none were given")
        return channel_stats(train_set.images)
    return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def native_image_size(dataset: str) -> int | None:
    """The input side a data set comes at, or None where --image-size chooses (image folders, synthetic)."""
    return source(dataset).native_size


def provenance(name: str, data_dir: str | os.PathLike | None) -> dict:
    """Which copy of the data a run used (for CIFAR: the official files, or a copy that scores lower)."""
    src = source(name)
    if src.provenance:
        return _load(src.provenance)(name, data_dir)
    where = f" {data_dir}" if name == "imagefolder" else ""
    return {"dataset": name, "official": False, "note": f"{src.note}{where}"}
