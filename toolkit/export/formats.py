"""The registries: each format's file, the function that writes it, what it promises; each runtime's class.

One line per format and one per runtime. Adding a format touches its writer (export/<format>.py) and its
line here; adding a consumer, its runtime (runtimes/<runtime>.py), its line in RUNTIME_CLASSES and the
formats it reads. Import strings keep heavy packages (onnx, onnxruntime, openvino, cv2) out of every
command that does not use them.

A *target* is a (format, runtime) pair: onnxruntime runs model.onnx and the quantized files, OpenVINO and
OpenCV run model.onnx, eager runs the checkpoint in fp32 and, where the hardware has them, in bf16/fp16.
Its label is "runtime/device" for the runtime's fp32 file and "runtime[int8]/device" for the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolkit.core.errors import ConfigError
from toolkit.core.runs import CHECKPOINT
from toolkit.runtimes.base import Runtime

RUNTIME_CLASSES = {
    "eager": "toolkit.runtimes.eager:EagerRuntime",
    "torchscript": "toolkit.runtimes.torchscript:TorchScriptRuntime",
    "onnxruntime": "toolkit.runtimes.onnxruntime:OnnxRuntime",
    "openvino": "toolkit.runtimes.openvino:OpenVinoRuntime",
    "opencv": "toolkit.runtimes.opencv:OpenCvRuntime",
}
RUNTIMES = tuple(RUNTIME_CLASSES)

# onnxruntime's CPU provider has no fp16 kernels: it wraps each node in casts back to fp32. The answers are
# right (verify checks them) but the speed says nothing about fp16, so bench does not time it.
_NO_FP16_ON_CPU = "onnxruntime's CPU provider has no fp16 kernels (it inserts casts to fp32); not timed"


@dataclass(frozen=True)
class Format:
    name: str  # what --format takes
    filename: str  # the file in a run folder
    writer: str | None  # "module:function" that writes it; None for the checkpoint, which training writes
    runtimes: tuple[str, ...]  # runtimes that load it; the first one checks it at export
    precision: str = "fp32"  # fp32 files are gated on logits; the others on accuracy drop and agreement
    source: str | None = None  # the format it is made from (the quantizers read model.onnx), None: the checkpoint
    not_timed: dict[tuple[str, str], str] = field(default_factory=dict)  # (runtime, device) -> why bench skips it
    options: dict[str, Any] = field(default_factory=dict)  # passed to the runtime (eager's autocast dtype)
    native_only: bool = False  # checked and timed only on devices that compute this precision in hardware

    @property
    def reduced(self) -> bool:
        return self.precision != "fp32"


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format("checkpoint", CHECKPOINT, None, ("eager",)),
        Format("torchscript", "model.ts", "toolkit.export.torchscript:write", ("torchscript",)),
        # The checkpoint and model.ts run under autocast (the frozen graph honours it): where the hardware has
        # the type, what a half-precision deployment of the PyTorch model gives. No file of their own.
        Format("checkpoint-bf16", CHECKPOINT, None, ("eager",), "bf16", options={"amp": "bf16"}, native_only=True),
        Format("checkpoint-fp16", CHECKPOINT, None, ("eager",), "fp16", options={"amp": "fp16"}, native_only=True),
        Format(
            "torchscript-bf16", "model.ts", None, ("torchscript",), "bf16", options={"amp": "bf16"}, native_only=True
        ),
        Format(
            "torchscript-fp16", "model.ts", None, ("torchscript",), "fp16", options={"amp": "fp16"}, native_only=True
        ),
        Format("onnx", "model.onnx", "toolkit.export.onnx:write", ("onnxruntime", "openvino", "opencv")),
        Format(
            "onnx-int8",
            "model-int8.onnx",
            "toolkit.export.quantize:write_static",
            ("onnxruntime", "openvino"),
            precision="int8",
            source="onnx",
        ),
        Format(
            "onnx-int8-dynamic",
            "model-int8-dynamic.onnx",
            "toolkit.export.quantize:write_dynamic",
            ("onnxruntime",),
            precision="int8-dynamic",
            source="onnx",
        ),
        Format(
            "onnx-fp16",
            "model-fp16.onnx",
            "toolkit.export.fp16:write",
            ("onnxruntime", "openvino"),
            precision="fp16",
            source="onnx",
            not_timed={("onnxruntime", "cpu"): _NO_FP16_ON_CPU},
        ),
    ]
}
EXPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.writer is not None)
# What `toolkit export` writes when no --format is given: the fp32 files; low precision is asked for.
DEFAULT_FORMATS = tuple(name for name in EXPORT_FORMATS if not FORMATS[name].reduced)
TARGETS = tuple((f.name, r) for f in FORMATS.values() for r in f.runtimes)


def _load(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def get_format(name: str) -> Format:
    if name not in FORMATS or FORMATS[name].writer is None:
        raise ConfigError(f"unknown format {name!r}; choose one of: {', '.join(EXPORT_FORMATS)}, fp32 or all")
    return FORMATS[name]


def writer(fmt: Format) -> Callable[..., dict[str, Any]]:
    return _load(fmt.writer)


def validator(fmt: Format) -> Callable[..., None]:
    """The writer module's `validate(**options)`, which rejects bad options before any work; a no-op if none."""
    module = importlib.import_module(fmt.writer.split(":")[0])
    return getattr(module, "validate", lambda **_: None)


def primary_format(runtime: str) -> Format:
    """The fp32 format a runtime loads (the first one listing it)."""
    check_runtime(runtime)
    return next(f for f in FORMATS.values() if runtime in f.runtimes)


def check_runtime(name: str) -> None:
    if name not in RUNTIME_CLASSES:
        raise ConfigError(f"unknown runtime {name!r}; choose one of: {', '.join(RUNTIMES)}")


def target_label(fmt: str, runtime: str, device: str) -> str:
    """ "onnxruntime/cpu" for a runtime's fp32 file, "onnxruntime[int8]/cpu" for model-int8.onnx."""
    primary = primary_format(runtime).name
    tag = "" if primary == fmt else f"[{fmt.removeprefix(primary + '-')}]"
    return f"{runtime}{tag}/{device}"


def runs_here(fmt: Format, device: str) -> str | None:
    """Why `fmt` is not checked or timed on `device` (the hardware lacks its precision), or None."""
    from toolkit.core.device import native_half_precisions

    if fmt.native_only and fmt.precision not in native_half_precisions(device):
        return f"{device} has no native {fmt.precision} (on CPUs: AMX or AVX-512-bf16); not checked or timed"
    return None


def runtime_class(name: str) -> type[Runtime]:
    """A registered runtime's class; "module:Class" loads one from outside the registry (a plug-in, a test)."""
    if ":" in name and name not in RUNTIME_CLASSES:
        return _load(name)
    check_runtime(name)
    return _load(RUNTIME_CLASSES[name])


def open_runtime(name: str, path, device: str = "cpu", threads: int | None = None, **options) -> Runtime:
    """Load `path` into runtime `name` on `device`."""
    return runtime_class(name)(path, device, threads, **options)
