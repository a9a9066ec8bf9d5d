"""The registry: each format's file, the function that writes it, and the runtimes that load it.

One line per format. Adding or removing one touches its writer (export/<format>.py), its runtime
(runtimes/<runtime>.py) and its line here, nothing else. Import strings keep heavy packages (onnx,
onnxruntime, torch.jit) out of every command that does not use them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toolkit.core.errors import ConfigError
from toolkit.core.runs import CHECKPOINT
from toolkit.runtimes.base import Runtime


@dataclass(frozen=True)
class Format:
    name: str  # what --format takes
    filename: str  # the file in a run folder
    writer: str | None  # "module:function" that writes it; None for the checkpoint, which training writes
    runtimes: dict[str, str]  # runtime name -> "module:Class" that loads the file


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format("checkpoint", CHECKPOINT, None, {"eager": "toolkit.runtimes.eager:EagerRuntime"}),
        Format(
            "torchscript",
            "model.ts",
            "toolkit.export.torchscript:write",
            {"torchscript": "toolkit.runtimes.torchscript:TorchScriptRuntime"},
        ),
        Format(
            "onnx",
            "model.onnx",
            "toolkit.export.onnx:write",
            {"onnxruntime": "toolkit.runtimes.onnxruntime:OnnxRuntime"},
        ),
    ]
}
EXPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.writer is not None)
RUNTIMES = tuple(r for f in FORMATS.values() for r in f.runtimes)


def _load(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def get_format(name: str) -> Format:
    if name not in FORMATS or FORMATS[name].writer is None:
        raise ConfigError(f"unknown format {name!r}; choose one of: {', '.join(EXPORT_FORMATS)} or all")
    return FORMATS[name]


def writer(fmt: Format) -> Callable[..., dict[str, Any]]:
    return _load(fmt.writer)


def validator(fmt: Format) -> Callable[..., None]:
    """The writer module's `validate(**options)`, which rejects bad options before any work; a no-op if none."""
    module = importlib.import_module(fmt.writer.split(":")[0])
    return getattr(module, "validate", lambda **_: None)


def format_of(runtime: str) -> Format:
    """The format a runtime loads."""
    for f in FORMATS.values():
        if runtime in f.runtimes:
            return f
    raise ConfigError(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")


def runtime_class(name: str) -> type[Runtime]:
    return _load(format_of(name).runtimes[name])


def open_runtime(name: str, path, device: str = "cpu", threads: int | None = None, **options) -> Runtime:
    """Load `path` into runtime `name` on `device`."""
    return runtime_class(name)(path, device, threads, **options)
