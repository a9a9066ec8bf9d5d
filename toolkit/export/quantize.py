"""INT8 ONNX files from model.onnx through onnxruntime.quantization: static QDQ, and dynamic for Linear layers.

Static: onnxruntime's pre-processing first (shape inference and Conv+BatchNorm folding; its symbolic
shape inference trips on opset-18 Reduce ops, so that part is skipped), then QDQ with per-channel
weights, calibrated on training images preprocessed exactly as at evaluation (no augmentation).

The preset is chosen from the CPU, and recorded. x86 CPUs without VNNI multiply u8 x s8 with an
instruction (vpmaddubsw) whose 16-bit sums saturate; u8 activations with 7-bit weights (reduce_range)
stay clear of it and are fast there, while s8 x s8 is emulated (measured on a 2-core AVX2 EPYC,
resnet20 batch 256: u8s8-rr 1.50x fp32 onnxruntime, s8s8 0.58x). VNNI (vpdpbusd) and AMX accumulate
u8 x s8 in 32 bits, so full-range u8s8 does not saturate there; s8s8, onnxruntime's documented choice for
them, measured slower on a 2-core AMX Xeon with onnxruntime 1.32 (`toolkit bench`, batch 256, trained
resnet20: s8s8 1,367 img/s, 0.48x fp32; u8s8 5,341, 1.89x; tutorial CNN and fast-cnn: u8s8 as fast or
faster), so u8s8 is chosen there. `--int8-preset` overrides either choice.

Dynamic: weights quantized ahead, activations per batch at run time, MatMul/Gemm only: for
Linear-heavy models (the tutorial CNN's fc1 holds 25.7 M of its 25.8 M parameters).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.core.errors import ConfigError, DataError, ToolkitError, first_line
from toolkit.core.machine import cpu_flags
from toolkit.export.check import ExportError

PRESETS = {  # name -> (activation type, weight type, reduce_range)
    "u8s8-rr": ("QUInt8", "QInt8", True),
    "s8s8": ("QInt8", "QInt8", False),
    "u8s8": ("QUInt8", "QInt8", False),
}
CALIBRATIONS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
# Ops whose dynamic quantization pays: the big matrix products.
DYNAMIC_OPS = ["MatMul", "Gemm"]


def auto_preset() -> tuple[str, str]:
    """(preset, why) for this CPU."""
    flags = cpu_flags()
    have = [f for f in ("amx_int8", "avx512_vnni", "avx_vnni") if flags.get(f)]
    if have:
        return "u8s8", f"this CPU has {', '.join(have)}: u8 x s8 dot products accumulate in 32 bits, no saturation"
    return "u8s8-rr", "this CPU has no VNNI: u8 activations x 7-bit weights avoid vpmaddubsw saturation"


def validate(*, calibration_images: int = 1024, int8_preset: str = "auto", calibration: str = "minmax", **_) -> None:
    if calibration_images < 1:
        raise ConfigError(f"--calibration-images must be a positive integer, got {calibration_images}")
    if int8_preset != "auto" and int8_preset not in PRESETS:
        raise ConfigError(f"unknown --int8-preset {int8_preset!r}; choose auto, {', '.join(PRESETS)}")
    if calibration not in CALIBRATIONS:
        raise ConfigError(f"unknown --calibration {calibration!r}; choose {', '.join(CALIBRATIONS)}")


def calibration_batches(ckpt: dict, images: int, data_dir: str | None, batch: int = 64) -> list[torch.Tensor]:
    """The first `images` training images of the run's data set, normalised as at evaluation."""
    from toolkit.data import TensorLoader
    from toolkit.train.checkpoint import dataset_of

    try:
        data = dataset_of(ckpt, True, data_dir, limit=images)
    except DataError as exc:
        raise DataError(f"calibration needs the run's training images: {exc}") from None
    loader = TensorLoader(data, batch, mean=tuple(ckpt["input"]["mean"]), std=tuple(ckpt["input"]["std"]))
    return [x for x, _ in loader.epoch(0)]


def _copy_metadata(source: Path, path: Path, extra: dict[str, str]) -> dict[str, int]:
    """Carry the fp32 file's toolkit.* metadata over, add `extra`; count the quantized nodes."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for k, v in {**meta, **extra}.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, str(path))
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise ExportError(f"quantized ONNX fails onnx.checker: {first_line(exc)}") from None
    counts: dict[str, int] = {}
    for node in proto.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def write_static(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    ckpt: dict,
    *,
    calibration_images: int = 1024,
    int8_preset: str = "auto",
    calibration: str = "minmax",
    data_dir: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    import numpy as np
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process

    validate(calibration_images=calibration_images, int8_preset=int8_preset, calibration=calibration)
    source = Path(options["source_path"])  # model.onnx, which export() hands to the formats made from it
    preset, why = auto_preset() if int8_preset == "auto" else (int8_preset, "chosen with --int8-preset")
    activations, weights, reduce_range = PRESETS[preset]
    batches = calibration_batches(ckpt, calibration_images, data_dir)

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": np.ascontiguousarray(x.numpy())} for x in batches])

        def get_next(self):
            return next(self.items, None)

    extra = {"CalibTensorRangeSymmetric": False} if calibration == "percentile" else {}
    with tempfile.TemporaryDirectory(prefix="toolkit-quant-") as tmp, _root_warnings_kept():
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
            q.quantize_static(
                str(pre),
                str(path),
                Reader(),
                quant_format=q.QuantFormat.QDQ,
                per_channel=True,
                activation_type=getattr(q.QuantType, activations),
                weight_type=getattr(q.QuantType, weights),
                reduce_range=reduce_range,
                calibrate_method=getattr(q.CalibrationMethod, CALIBRATIONS[calibration]),
                extra_options=extra,
            )
        except ToolkitError:
            raise
        except Exception as exc:
            raise ExportError(f"onnxruntime static quantization failed ({first_line(exc)})") from None
    counts = _copy_metadata(
        source, path, {"toolkit.quantization": f"static QDQ {preset}, {calibration}, {len(batches)} batches"}
    )
    if not counts.get("QuantizeLinear"):
        raise ExportError("static quantization left no QuantizeLinear node: nothing was quantized")
    return {
        "quantization": "static QDQ, per-channel weights",
        "int8_preset": preset,
        "int8_preset_reason": why,
        "activation_type": activations,
        "weight_type": weights,
        "reduce_range": reduce_range,
        "calibration": calibration,
        "calibration_images": sum(len(b) for b in batches),
        "quantized_nodes": counts.get("QuantizeLinear", 0),
    }


@contextlib.contextmanager
def _root_warnings_kept():
    """onnxruntime's quantizer advises through logging.warning on the root logger, which, with no handler set
    up, installs one that prints raw `WARNING:root:...` lines. Where the application has set up no logging,
    keep those records here (they are advice about pre-processing that export already does)."""
    root = logging.getLogger()
    if root.handlers:  # the application decides where its logs go
        yield
        return
    handler = logging.NullHandler()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def write_dynamic(model: nn.Module, example: torch.Tensor, path: Path, ckpt: dict, **options: Any) -> dict[str, Any]:
    from onnxruntime import quantization as q

    source = Path(options["source_path"])
    try:
        with _root_warnings_kept():
            q.quantize_dynamic(str(source), str(path), op_types_to_quantize=DYNAMIC_OPS, weight_type=q.QuantType.QInt8)
    except Exception as exc:
        raise ExportError(f"onnxruntime dynamic quantization failed ({first_line(exc)})") from None
    counts = _copy_metadata(source, path, {"toolkit.quantization": "dynamic MatMul/Gemm, s8 weights"})
    quantized = counts.get("MatMulInteger", 0) + counts.get("DynamicQuantizeLinear", 0)
    if not quantized:
        raise ExportError(f"{ckpt['model']['name']} has no MatMul/Gemm that dynamic quantization could quantize")
    return {
        "quantization": "dynamic, MatMul/Gemm only",
        "weight_type": "QInt8",
        "quantized_nodes": counts.get("MatMulInteger", 0),
    }
