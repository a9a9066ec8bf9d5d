"""A labelled image set held in memory: what every data set's reader returns."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class ImageSet:
    """A labelled image set held in memory."""

    name: str
    images: torch.Tensor  # uint8, (N, 3, H, W), RGB
    labels: torch.Tensor  # int64, (N,)
    classes: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)  # where it came from (image folders: files, skipped, ...)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def subset(self, limit: int | None) -> ImageSet:
        if limit is None or limit >= len(self):
            return self
        return ImageSet(self.name, self.images[:limit], self.labels[:limit], self.classes, self.info)


def default_data_dir() -> Path:
    return Path(os.environ.get("TOOLKIT_DATA", "data"))
