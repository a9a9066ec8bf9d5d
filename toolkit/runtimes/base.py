"""The interface every runtime implements: open a file for a device, run a batch, say what it really uses."""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch

from toolkit.core.errors import ConfigError


class Runtime(ABC):
    name: str = ""
    #: devices this runtime can use at all; which are present is checked when it opens
    devices: tuple[str, ...] = ("cpu",)
    #: the package an optional runtime needs (installed by the extra named like the runtime), or None
    module: str | None = None

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        if threads is not None and threads < 1:
            raise ConfigError(f"--threads must be a positive integer, got {threads}")
        if self.module is not None and (why := self.unavailable_reason(device)):  # an optional runtime
            raise ConfigError(why)
        self.path, self.device, self.requested_threads = Path(path), device, threads

    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        """Why this runtime cannot use `device` here (a missing package or provider), or None."""
        if cls.module is not None and importlib.util.find_spec(cls.module) is None:
            return f"{cls.name} is not installed (pip install -e '.[{cls.name}]')"
        return None if device in cls.devices else f"{cls.name} has no {device} support"

    @classmethod
    def variants(cls, fmt: str, device: str) -> list[tuple[str, dict[str, Any]]]:
        """(label, options) of other settings worth timing for file format `fmt` (bench --variants); none here."""
        return []

    @abstractmethod
    def run(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (float32, CPU) for a float32 NCHW batch; device work is finished when this returns."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What the runtime actually uses, read back from it: provider, threads, device."""

    @property
    def label(self) -> str:
        return f"{self.name}/{self.device}"
