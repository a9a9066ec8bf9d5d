"""A half-precision ONNX file for GPU providers: weights and activations fp16, inputs and outputs kept fp32.

Converted from model.onnx with onnxruntime's float16 converter (keep_io_types, so callers feed the same
fp32 batches). onnxruntime's CPU provider has no fp16 kernels: it runs the file by inserting casts,
which verify uses to check the answers, but bench does not time it there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.core.errors import first_line
from toolkit.export.check import ExportError


def write(model: nn.Module, example: torch.Tensor, path: Path, ckpt: dict, **options: Any) -> dict[str, Any]:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        proto = convert_float_to_float16(onnx.load(str(options["source_path"])), keep_io_types=True)
        _sort_nodes(proto.graph)
        proto.metadata_props.add(key="toolkit.precision", value="fp16")
        onnx.save(proto, str(path))
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise ExportError(f"fp16 conversion of model.onnx failed ({first_line(exc)})") from None
    return {"conversion": "onnxruntime float16, fp32 inputs/outputs"}


def _sort_nodes(graph) -> None:
    """Put the nodes in topological order: the converter appends its input casts after their consumers,
    which onnx.checker and strict consumers reject."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise ExportError("the fp16 graph has a cycle or an input nothing produces")
        for n in ready:
            ordered.append(n)
            known.update(n.output)
        placed = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in placed]
    del graph.node[:]
    graph.node.extend(ordered)
