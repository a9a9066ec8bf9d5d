"""The runtime registry: one line per runtime, naming its class (runtimes/<runtime>.py) by import string.

Import strings keep heavy packages (onnxruntime, openvino, cv2, executorch) out of every command that does
not use them. Which files a runtime reads is declared with the formats (formats.py); which variants bench
times with --variants, by the runtime's class (Runtime.variants).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.core.errors import ConfigError
from toolkit.core.lazy import load_object

if TYPE_CHECKING:  # the registry is read by `toolkit --help`: no torch until a runtime is opened
    from toolkit.runtimes.base import Runtime

RUNTIME_CLASSES = {
    "eager": "toolkit.runtimes.eager:EagerRuntime",
    "torchscript": "toolkit.runtimes.torchscript:TorchScriptRuntime",
    "torch-export": "toolkit.runtimes.torch_export:TorchExportRuntime",
    "aoti": "toolkit.runtimes.aoti:AotiRuntime",
    "onnxruntime": "toolkit.runtimes.onnxruntime:OnnxRuntime",
    "openvino": "toolkit.runtimes.openvino:OpenVinoRuntime",
    "opencv": "toolkit.runtimes.opencv:OpenCvRuntime",
    "executorch": "toolkit.runtimes.executorch:ExecuTorchRuntime",
}
RUNTIMES = tuple(RUNTIME_CLASSES)


def check_runtime(name: str) -> None:
    if name not in RUNTIME_CLASSES:
        raise ConfigError(f"unknown runtime {name!r}; choose one of: {', '.join(RUNTIMES)}")


def runtime_class(name: str) -> type[Runtime]:
    """A registered runtime's class; "module:Class" loads one from outside the registry (a plug-in, a test)."""
    if ":" in name and name not in RUNTIME_CLASSES:
        return load_object(name)
    check_runtime(name)
    return load_object(RUNTIME_CLASSES[name])


def open_runtime(name: str, path, device: str = "cpu", threads: int | None = None, **options) -> Runtime:
    """Load `path` into runtime `name` on `device`."""
    return runtime_class(name)(path, device, threads, **options)
