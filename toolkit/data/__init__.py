"""Data: the data set registry (registry.py: one line per data set), CIFAR-10/100 (restricted unpickler,
structure checks), image folders, a synthetic set, the loader."""

from toolkit.data.cifar import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, find_or_download, read_cifar
from toolkit.data.imagefolder import BAD_IMAGE_POLICIES
from toolkit.data.imageset import ImageSet, default_data_dir
from toolkit.data.loader import TensorLoader, normalise
from toolkit.data.registry import DATASETS, load_dataset, native_image_size, normalization, provenance
from toolkit.data.split import stratified_split
from toolkit.data.synthetic import synthetic

__all__ = [
    "BAD_IMAGE_POLICIES",
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASETS",
    "ImageSet",
    "TensorLoader",
    "default_data_dir",
    "find_or_download",
    "load_dataset",
    "native_image_size",
    "normalise",
    "normalization",
    "provenance",
    "read_cifar",
    "stratified_split",
    "synthetic",
]
