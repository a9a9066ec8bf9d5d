"""Data: CIFAR-10/100 reader (restricted unpickler, structure checks), image folders, a synthetic set, the loader."""

from toolkit.data.cifar import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATASETS,
    ImageSet,
    default_data_dir,
    find_or_download,
    load_dataset,
    native_image_size,
    normalization,
    provenance,
    read_cifar,
)
from toolkit.data.imagefolder import BAD_IMAGE_POLICIES
from toolkit.data.loader import TensorLoader, normalise
from toolkit.data.split import stratified_split
from toolkit.data.synthetic import synthetic

__all__ = [
    "BAD_IMAGE_POLICIES",
    "native_image_size",
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
    "read_cifar",
    "normalise",
    "stratified_split",
    "synthetic",
]
