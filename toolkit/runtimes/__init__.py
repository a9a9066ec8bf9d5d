"""Runtimes behind one interface; heavy imports happen only when one is opened.

TorchScript is deprecated upstream, so its code lives in toolkit/torchscript.py and is reached only
through the import string below: removing it means deleting that file and this entry.
"""

from __future__ import annotations

import importlib

from toolkit.errors import ConfigError
from toolkit.runtimes.base import Runtime

_RUNTIMES = {
    "eager": "toolkit.runtimes.eager:EagerRuntime",
    "torchscript": "toolkit.torchscript:TorchScriptRuntime",
    "onnxruntime": "toolkit.runtimes.ort:OnnxRuntime",
}
RUNTIMES = tuple(_RUNTIMES)


def runtime_class(name: str) -> type[Runtime]:
    if name not in _RUNTIMES:
        raise ConfigError(f"unknown runtime {name!r}; choose one of: {', '.join(_RUNTIMES)}")
    module, cls = _RUNTIMES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def open_runtime(name: str, path, device: str = "cpu", threads: int | None = None, **options) -> Runtime:
    """Load `path` into runtime `name` on `device`."""
    return runtime_class(name)(path, device, threads, **options)


__all__ = ["RUNTIMES", "Runtime", "open_runtime", "runtime_class"]
