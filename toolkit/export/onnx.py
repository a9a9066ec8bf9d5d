"""ONNX export through torch.onnx.export (dynamo or the TorchScript-based exporter), checked by onnx.checker.

The batch axis is dynamic; the example has batch 4, since an example of batch 1 lets the exporters
specialise the axis away. The file carries the checkpoint's facts as metadata, and the manifest records
the opset the file really has, read back from it (an exporter may not give the one asked for).
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.core.errors import ConfigError, first_line
from toolkit.export.check import ExportError
from toolkit.targets.formats import OPSET

EXPORTERS = ("dynamo", "torchscript")
# Opset 20 writes GELU as one Gelu node; at 18 the dynamo exporter writes Div/Erf/Add/Mul/Mul, which
# OpenCV 5.0.0's importer crashes on (SIGSEGV). onnxruntime and OpenVINO read both. (Declared in the registry.)
DEFAULT_OPSET = OPSET.default
MIN_OPSET = {"dynamo": 18, "torchscript": 13}


def validate(*, exporter: str = "dynamo", opset: int = DEFAULT_OPSET, **_: Any) -> None:
    import onnx

    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown ONNX exporter {exporter!r}; choose dynamo or torchscript")
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET[exporter] <= opset <= newest:
        raise ConfigError(
            f"--opset {opset} is out of range for the {exporter} exporter; use "
            f"{MIN_OPSET[exporter]} to {newest} (onnx {onnx.__version__})"
        )


def file_opset(proto) -> int | None:
    """The default-domain opset a model file declares."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def write(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    ckpt: dict,
    *,
    exporter: str = "dynamo",
    opset: int = DEFAULT_OPSET,
    source_sha256: str = "",
    **_: Any,
) -> dict[str, Any]:
    import onnx

    kwargs: dict[str, Any] = dict(input_names=["input"], output_names=["logits"], opset_version=opset)
    if exporter == "dynamo":
        kwargs.update(dynamo=True, external_data=False, dynamic_shapes=({0: torch.export.Dim("batch")},))
    else:
        kwargs.update(dynamo=False, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    chatter = io.StringIO()  # the exporters print progress lines; keep them out of the user's terminal
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), **kwargs)
    except Exception as exc:
        other = "torchscript" if exporter == "dynamo" else "dynamo"
        raise ExportError(
            f"ONNX export with the {exporter} exporter failed for {ckpt['model']['name']} "
            f"({first_line(exc)}); try --exporter {other}"
        ) from None
    proto = onnx.load(str(path))
    meta = {
        "toolkit.model": ckpt["model"]["name"],
        "toolkit.num_classes": str(ckpt["model"]["num_classes"]),
        "toolkit.classes": json.dumps(ckpt["classes"]),  # an image folder's class names may hold commas
        "toolkit.input_layout": ckpt["input"]["layout"],
        "toolkit.input_mean": ",".join(map(str, ckpt["input"]["mean"])),
        "toolkit.input_std": ",".join(map(str, ckpt["input"]["std"])),
        "toolkit.input_scale": ckpt["input"]["scale"],
        "toolkit.source_sha256": source_sha256,
        "toolkit.exporter": exporter,
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ExportError(f"exported ONNX fails onnx.checker: {first_line(exc)}") from None
    return {"exporter": exporter, "opset": file_opset(proto), "opset_requested": opset}
