"""ExecuTorch programs (.pte) lowered to XNNPACK: model.pte in fp32, model-int8.pte quantized by PT2E.

The batch axis is dynamic up to MAX_BATCH: ExecuTorch plans every tensor's memory for its upper bound, so
the bound is what the program costs in memory (the manifest records it, and runtimes/executorch.py runs a
larger batch in slices of it). Lowering runs with the shape environment's guards suppressed: PyTorch's
fake convolution guards on `batch < 16` when it picks a memory format (fake_impls.py, conv), which would
narrow the planned bound to the example's side of 16; the program itself is correct for every batch,
which the export check runs at 1, 7 and 256.

INT8: static post-training quantization with XNNPACK's quantizer (symmetric, per-channel weights, per-tensor
activations), calibrated on the run's training images preprocessed as at evaluation, the same images
onnx-int8 calibrates on.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.core.errors import first_line
from toolkit.export.check import ExportError
from toolkit.export.quantize import calibration_batches
from toolkit.export.torch_export import exported_program

MAX_BATCH = 256
# torchao registers an Enum with torch's pytree on import, which logs a deprecation warning meant for torchao.
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)


def _lower(program, path: Path) -> int:
    """`program` lowered to XNNPACK and written to `path`; its size in bytes."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    (x,) = (n for n in program.graph.nodes if n.op == "placeholder" and n.name in program.graph_signature.user_inputs)
    shape_env = x.meta["val"].shape[0].node.shape_env
    try:
        with shape_env.suppress_guards(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            buffer = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    except Exception as exc:
        raise ExportError(f"ExecuTorch cannot lower this model to XNNPACK ({first_line(exc)})") from None
    path.write_bytes(buffer)
    return len(buffer)


def _details(started: float) -> dict[str, Any]:
    import importlib.metadata

    return {
        "backend": "XNNPACK",
        "max_batch": MAX_BATCH,
        "executorch": importlib.metadata.version("executorch"),
        "lower_seconds": round(time.perf_counter() - started, 1),
    }


def write(model: nn.Module, example: torch.Tensor, path: Path, ckpt: dict, **_: Any) -> dict[str, Any]:
    started = time.perf_counter()
    _lower(exported_program(model, example, MAX_BATCH, what="ExecuTorch"), path)
    return _details(started)


def write_int8(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    ckpt: dict,
    *,
    calibration_images: int = 1024,
    data_dir: str | None = None,
    **_: Any,
) -> dict[str, Any]:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    started = time.perf_counter()
    batches = calibration_batches(ckpt, calibration_images, data_dir)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared = prepare_pt2e(exported_program(model, example, MAX_BATCH, what="PT2E").module(), quantizer)
            with torch.no_grad():
                for x in batches:
                    prepared(x)
            quantized = convert_pt2e(prepared)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"PT2E quantization failed for {ckpt['model']['name']} ({first_line(exc)})") from None
    _lower(exported_program(quantized, example, MAX_BATCH, what="ExecuTorch"), path)
    return {
        **_details(started),
        "quantization": "PT2E static, XNNPACK quantizer: symmetric int8, per-channel weights",
        "calibration_images": sum(len(x) for x in batches),
    }
