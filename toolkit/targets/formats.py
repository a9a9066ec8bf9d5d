"""The format registry: each format's file, the function that writes it, the runtimes that read it, its gate.

One line per format. A new format is its writer (export/<format>.py) and its line here; a new consumer, its
runtime (runtimes/<runtime>.py) and its line in runtimes.py. Writers are named by import string, so heavy
packages load only where a format is used.

A *target* is a (format, runtime) pair: onnxruntime runs model.onnx and the quantized files, OpenVINO and
OpenCV run model.onnx, eager runs the checkpoint in fp32 and, where the hardware has them, in bf16/fp16.
Its label is "runtime/device" for the runtime's fp32 file and "runtime[int8]/device" for the others.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from toolkit.core.errors import ConfigError
from toolkit.core.lazy import load_object
from toolkit.run.folder import CHECKPOINT
from toolkit.targets.gates import GATES, Gate
from toolkit.targets.runtimes import check_runtime

# onnxruntime's CPU provider has no fp16 kernels: it wraps each node in casts back to fp32. The answers are
# right (verify checks them) but the speed says nothing about fp16, so bench does not time it.
_NO_FP16_ON_CPU = "onnxruntime's CPU provider has no fp16 kernels (it inserts casts to fp32); not timed"


@dataclass(frozen=True)
class WriterOption:
    """One option of a format's writer, declared once: `toolkit export --NAME` and `export(NAME=...)` both come
    from it, and every writer receives it (a writer takes the ones it reads)."""

    name: str  # the writer's and export()'s keyword; --name-with-dashes on the command line
    type: type  # int | str: what the command line parses and export() checks
    default: Any
    help: str  # what it does, without its default or its formats: those are added where it is shown

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> None:
        fits = isinstance(value, self.type) and not (self.type is int and isinstance(value, bool))
        if not fits:
            raise ConfigError(f"{self.flag} takes {self.type.__name__} values, got {value!r}")


# Declared once, listed by every format whose writer reads them.
TS_MODE = WriterOption("ts_mode", str, "trace", "trace | script")
EXPORTER = WriterOption("exporter", str, "dynamo", "ONNX exporter: dynamo | torchscript (torch.onnx.export dynamo=)")
OPSET = WriterOption("opset", int, 20, "ONNX opset (20 writes GELU as one node, which OpenCV needs)")
CALIBRATION_IMAGES = WriterOption("calibration_images", int, 1024, "training images to calibrate on")
INT8_PRESET = WriterOption(
    "int8_preset", str, "auto", "auto (from the CPU) | u8s8-rr | s8s8 | u8s8 (activations x weights)"
)
CALIBRATION = WriterOption("calibration", str, "minmax", "minmax | percentile | entropy")


@dataclass(frozen=True)
class Format:
    name: str  # what --format takes
    filename: str  # the file in a run folder
    writer: str | None  # "module:function" that writes it; None for the checkpoint, which training writes
    runtimes: tuple[str, ...]  # runtimes that load it; the first one checks it at export
    precision: str = "fp32"  # picks the gate: fp32 files are gated on logits, the others relative to their scale
    source: str | None = None  # the format it is made from (the quantizers read model.onnx), None: the checkpoint
    not_timed: dict[tuple[str, str], str] = field(default_factory=dict)  # (runtime, device) -> why bench skips it
    runtime_options: dict[str, Any] = field(default_factory=dict)  # passed to the runtime (eager's autocast dtype)
    native_only: bool = False  # checked and timed only on devices that compute this precision in hardware
    requires: str | None = None  # the optional package (and extra of the same name) its writer needs
    writer_options: tuple[WriterOption, ...] = ()  # what its writer reads besides the model
    note: str = ""  # said when export starts writing it: what the user waits for
    summary: str = ""  # its family, for the one-line descriptions of what export writes ("TorchScript")

    @property
    def reduced(self) -> bool:
        return self.precision != "fp32"

    @property
    def gate(self) -> Gate:
        """How verify holds this file to what it promises (gates.py)."""
        return GATES[self.precision]

    def missing(self) -> str | None:
        """Why this format cannot be written here (its optional package is absent), or None."""
        if self.requires and importlib.util.find_spec(self.requires) is None:
            return f"{self.name} needs {self.requires} (pip install -e '.[{self.requires}]')"
        return None


_CALIBRATED = "calibrating on training images"
FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format("checkpoint", CHECKPOINT, None, ("eager",)),
        Format("torchscript", "model.ts", "toolkit.export.torchscript:write", ("torchscript",),
               writer_options=(TS_MODE,), summary="TorchScript"),
        # The checkpoint and model.ts run under autocast (the frozen graph honours it): where the hardware has
        # the type, what a half-precision deployment of the PyTorch model gives. No file of their own.
        Format("checkpoint-bf16", CHECKPOINT, None, ("eager",), "bf16", runtime_options={"amp": "bf16"}, native_only=True),
        Format("checkpoint-fp16", CHECKPOINT, None, ("eager",), "fp16", runtime_options={"amp": "fp16"}, native_only=True),
        Format("torchscript-bf16", "model.ts", None, ("torchscript",), "bf16", runtime_options={"amp": "bf16"},
               native_only=True),
        Format("torchscript-fp16", "model.ts", None, ("torchscript",), "fp16", runtime_options={"amp": "fp16"},
               native_only=True),
        Format("pt2", "model.pt2", "toolkit.export.torch_export:write", ("torch-export",), summary="torch.export"),
        Format("aoti", "model-aoti.pt2", "toolkit.export.aoti:write", ("aoti",), summary="AOTInductor",
               note="AOTInductor compiles C++ for this CPU: 20 s to a few minutes"),
        Format("onnx", "model.onnx", "toolkit.export.onnx:write", ("onnxruntime", "openvino", "opencv"),
               writer_options=(EXPORTER, OPSET), summary="ONNX"),
        Format("onnx-int8", "model-int8.onnx", "toolkit.export.quantize:write_static", ("onnxruntime", "openvino"),
               precision="int8", source="onnx", writer_options=(CALIBRATION_IMAGES, INT8_PRESET, CALIBRATION),
               note=_CALIBRATED),
        Format("onnx-int8-dynamic", "model-int8-dynamic.onnx", "toolkit.export.quantize:write_dynamic",
               ("onnxruntime",), precision="int8-dynamic", source="onnx"),
        Format("onnx-fp16", "model-fp16.onnx", "toolkit.export.fp16:write", ("onnxruntime", "openvino"),
               precision="fp16", source="onnx", not_timed={("onnxruntime", "cpu"): _NO_FP16_ON_CPU}),
        Format("pte", "model.pte", "toolkit.export.executorch:write", ("executorch",), requires="executorch",
               summary="ExecuTorch", note="lowering to XNNPACK"),
        Format("pte-int8", "model-int8.pte", "toolkit.export.executorch:write_int8", ("executorch",),
               precision="int8", requires="executorch", writer_options=(CALIBRATION_IMAGES,),
               note=f"{_CALIBRATED} and lowering to XNNPACK"),
    ]
}  # fmt: skip
# What `toolkit export` writes when no --format is given: the two files every consumer reads, in seconds.
# The PyTorch 2 files (an AOTInductor package compiles C++ for a minute) and low precision are asked for.
DEFAULT_FORMATS = ("torchscript", "onnx")


def register_format(fmt: Format) -> None:
    """Add a format (a plugin's, or a test's): it is then listed, written, planned, verified and timed like
    the ones above, and its writer's options appear on `toolkit export`."""
    if fmt.name in FORMATS or fmt.name in format_sets():
        raise ConfigError(f"a format named {fmt.name!r} is already registered")
    for r in fmt.runtimes:
        check_runtime(r)
    FORMATS[fmt.name] = fmt


def export_formats() -> tuple[str, ...]:
    """The formats export writes (the others are the checkpoint, which training writes, run another way)."""
    return tuple(name for name, f in FORMATS.items() if f.writer is not None)


def format_sets() -> dict[str, tuple[str, ...]]:
    """Names for sets of formats: --format default, fp32, all."""
    every = export_formats()
    return {"default": DEFAULT_FORMATS, "fp32": tuple(n for n in every if not FORMATS[n].reduced), "all": every}


def targets() -> tuple[tuple[str, str], ...]:
    """Every (format, runtime) pair the registry knows."""
    return tuple((f.name, r) for f in FORMATS.values() for r in f.runtimes)


def writer_options() -> dict[str, tuple[WriterOption, list[str]]]:
    """Every writer option, once, with the formats whose writers read it, in registry order."""
    found: dict[str, tuple[WriterOption, list[str]]] = {}
    for f in FORMATS.values():
        for option in f.writer_options:
            found.setdefault(option.name, (option, []))[1].append(f.name)
    return found


def option_help(option: WriterOption, formats: list[str]) -> str:
    """`toolkit export --help`'s line for an option: the formats that read it, what it does, its default."""
    return f"{', '.join(formats)}: {option.help} [{option.default}]."


def summary_of_formats() -> str:
    """What export writes, by family ("TorchScript, torch.export, ..."), for the one-line help texts."""
    return ", ".join(dict.fromkeys(f.summary for f in FORMATS.values() if f.summary))


def expand_formats(spec: str | Iterable[str] | None) -> tuple[tuple[str, ...], list[str]]:
    """(formats, notes) for "onnx,pte-int8", "fp32", "all" or a list of names; None is the default set.

    A set (fp32, all) leaves out what cannot be written here (a missing optional package), with a note;
    a format named on its own that cannot be written is an error with the install line."""
    if spec is None:
        return DEFAULT_FORMATS, []
    parts = split_names(spec)
    sets = format_sets()
    if not parts:
        raise ConfigError(f"no format given; choose one of: {', '.join(export_formats())}, or {', '.join(sets)}")
    names, notes = [], []
    for part in parts:
        if part in sets:
            for name in sets[part]:
                why = FORMATS[name].missing()
                if why is None:
                    names.append(name)
                elif f"skipped {why}" not in notes:
                    notes.append(f"skipped {why}")
        else:
            fmt = get_format(part)
            if why := fmt.missing():
                raise ConfigError(why)
            names.append(part)
    return tuple(dict.fromkeys(names)), notes


def split_names(values: str | Iterable[str]) -> list[str]:
    """["onnx", "pte,pte-int8"] or "onnx,pte" -> the names, in order: an option may be repeated or comma-separated."""
    values = [values] if isinstance(values, str) else list(values)
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


def get_format(name: str) -> Format:
    if name not in FORMATS or FORMATS[name].writer is None:
        raise ConfigError(
            f"unknown format {name!r}; choose one of: {', '.join(export_formats())}, or {', '.join(format_sets())}"
        )
    return FORMATS[name]


def writer(fmt: Format) -> Callable[..., dict[str, Any]]:
    return load_object(fmt.writer)


def validator(fmt: Format) -> Callable[..., None]:
    """The writer module's `validate(**options)`, which rejects bad options before any work; a no-op if none."""
    if fmt.missing():  # its module imports the optional package
        return lambda **_: None
    module = importlib.import_module(fmt.writer.split(":")[0])
    return getattr(module, "validate", lambda **_: None)


def primary_format(runtime: str) -> Format:
    """The fp32 format a runtime loads (the first one listing it)."""
    check_runtime(runtime)
    return next(f for f in FORMATS.values() if runtime in f.runtimes)


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
