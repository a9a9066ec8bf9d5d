"""Data: CIFAR-10/100 reader (restricted unpickler, structure checks), a synthetic set, the tensor loader."""

from toolkit.data.cifar import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATASETS,
    ImageSet,
    default_data_dir,
    find_or_download,
    load_dataset,
    normalization,
    num_classes,
    provenance,
    read_cifar,
)
from toolkit.data.loader import TensorLoader, normalise
from toolkit.data.split import stratified_split
from toolkit.data.synthetic import synthetic

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASETS",
    "ImageSet",
    "TensorLoader",
    "default_data_dir",
    "find_or_download",
    "load_dataset",
    "normalization",
    "provenance",
    "num_classes",
    "read_cifar",
    "normalise",
    "stratified_split",
    "synthetic",
]
