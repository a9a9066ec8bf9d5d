"""CIFAR-10/100 from the official python-pickle layout, read safely and checked.

Everything comes back as one uint8 tensor (N, 3, 32, 32) plus int64 labels, so the whole set can live on
the training device (see `toolkit.loader`). The pickles are read with an unpickler that only admits the
numpy types they hold, and their structure is checked, because a CIFAR folder is often hand-copied.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolkit.core.errors import DataError, first_line
from toolkit.data.imageset import ImageSet, default_data_dir

# Published per-channel statistics of the CIFAR-10 training set (RGB, pixel values in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


@dataclass(frozen=True)
class _Layout:
    folder: str  # the folder the official archive extracts to
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    rows_per_file: tuple[int, int]  # (train file, test file) rows in the full set


_LAYOUTS = {
    "cifar10": _Layout(
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        "labels",
        "label_names",
        10,
        (10_000, 10_000),
    ),
    "cifar100": _Layout(
        "cifar-100-python", ("train",), ("test",), "meta", "fine_labels", "fine_label_names", 100, (50_000, 10_000)
    ),
}


def stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The published per-channel (mean, std) of a CIFAR training set."""
    return (CIFAR100_MEAN, CIFAR100_STD) if name == "cifar100" else (CIFAR10_MEAN, CIFAR10_STD)


def load(
    name: str, train: bool, data_dir: str | os.PathLike | None, *, limit: int | None, download: bool, **_: Any
) -> ImageSet:
    """CIFAR-10/100's training or test set, from `data_dir` (downloaded there when missing and allowed)."""
    return read_cifar(find_or_download(name, data_dir, download=download), name, train).subset(limit)


def find_or_download(name: str, data_dir: str | os.PathLike | None, *, download: bool) -> Path:
    """The folder holding the pickles: DATA_DIR/<official folder>, or DATA_DIR itself if it is that folder."""
    layout = _LAYOUTS[name]
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    for candidate in (root / layout.folder, root):
        if (candidate / layout.meta_file).is_file():
            return candidate
    if download:
        _download(name, root)
        if (root / layout.folder / layout.meta_file).is_file():
            return root / layout.folder
    raise DataError(
        f"{name} not found in {root} ({layout.folder}/ is missing){' and the download failed' if download else ''}; "
        f"pass --data-dir pointing at a folder that holds {layout.folder}/ (or set TOOLKIT_DATA)"
    )


def _download(name: str, root: Path) -> None:
    import torchvision.datasets as tvd  # only needed when the data is missing

    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    try:
        root.mkdir(parents=True, exist_ok=True)
        cls(str(root), train=True, download=True)
    except Exception as exc:  # offline, proxy, disk full: all end in the same advice
        raise DataError(
            f"{name} is not in {root} and could not be downloaded ({type(exc).__name__}: {first_line(exc)}); "
            f"copy the official {_LAYOUTS[name].folder}/ folder there or pass --data-dir"
        ) from None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only what CIFAR's pickles hold: dicts, lists, strings, numbers and numpy arrays."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes; it only encodes text
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR pickle")


def _read_pickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: file is missing; the CIFAR folder is incomplete, copy it again")
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except Exception as exc:
        raise DataError(f"{path}: not a readable CIFAR pickle ({type(exc).__name__}: {first_line(exc)})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, found {type(obj).__name__}; not a CIFAR batch file")
    return obj


def _read_batch(path: Path, layout: _Layout, expected_rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    obj = _read_pickle(path)
    for key in ("data", layout.label_key):
        if key not in obj:
            raise DataError(f"{path}: key {key!r} is missing; not a {layout.folder} batch file")
    data, labels = obj["data"], obj[layout.label_key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise DataError(
            f"{path}: 'data' must be uint8 rows of 3072 values (R, G, B planes of 32x32), "
            f"found {dtype} with shape {shape}"
        )
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path}: expected {data.shape[0]} integer labels, found {labels.dtype} of shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise DataError(f"{path}: labels must lie in 0..{layout.num_classes - 1}, found {labels.min()}..{labels.max()}")
    if expected_rows is not None and data.shape[0] != expected_rows:
        raise DataError(
            f"{path}: expected {expected_rows} rows, found {data.shape[0]}; the file is truncated or from another set"
        )
    return data, labels.astype(np.int64)


def read_cifar(folder: str | os.PathLike, name: str = "cifar10", train: bool = True) -> ImageSet:
    """Read and validate one split from an official python-pickle folder."""
    folder = Path(folder)
    layout = _LAYOUTS[name]
    meta = _read_pickle(folder / layout.meta_file)
    classes = meta.get(layout.names_key)
    if not isinstance(classes, list) or len(classes) != layout.num_classes:
        raise DataError(
            f"{folder / layout.meta_file}: expected {layout.num_classes} names under "
            f"{layout.names_key!r}; is this {layout.folder}/?"
        )
    files = layout.train_files if train else layout.test_files
    rows = layout.rows_per_file[0 if train else 1]
    parts = [_read_batch(folder / f, layout, rows) for f in files]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    images = torch.from_numpy(data).view(-1, 3, 32, 32)  # rows are R, G, B planes, each 32x32 row-major
    return ImageSet(name, images, torch.from_numpy(labels), tuple(str(c) for c in classes))


def provenance(name: str, data_dir: str | os.PathLike | None) -> dict:
    """Which copy of the data a run used: the official files (torchvision's md5 sums) or another copy.

    The copy built from ../shared/data/cifar10 keeps the labels and batches.meta exact but most pixels went
    through JPEG, so its accuracies run a little below published ones; the caller says so beside a figure.
    """
    import hashlib

    import torchvision.datasets as tvd

    folder = find_or_download(name, data_dir, download=False)
    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    mismatched = []
    for filename, md5 in cls.train_list + cls.test_list:
        try:
            digest = hashlib.md5((folder / filename).read_bytes()).hexdigest()
        except OSError:
            digest = None
        if digest != md5:
            mismatched.append(filename)
    official = not mismatched
    note = (
        "the official files (md5 sums as torchvision publishes them)"
        if official
        else f"not the official files ({len(mismatched)} of {len(cls.train_list) + len(cls.test_list)} differ "
        f"from the published md5 sums); a copy rebuilt from JPEG, such as ../shared's, scores below "
        f"published figures (benchmarks/jpeg_cost.py measures by how much)"
    )
    return {"dataset": name, "folder": str(folder), "official": official, "mismatched": mismatched, "note": note}
