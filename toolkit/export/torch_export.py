"""torch.export: the ExportedProgram PyTorch recommends in place of TorchScript, with a dynamic batch axis.

`exported_program` is shared by the files made from it (AOTInductor, ExecuTorch). model.pt2 carries the
checkpoint's facts in an extra file (toolkit.json), read back by runtimes/torch_export.py so that verify
never compares a file exported from another model as if it were this one.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.core.errors import first_line
from toolkit.export.check import ExportError

METADATA_FILE = "toolkit.json"


def exported_program(model: nn.Module, example: torch.Tensor, max_batch: int | None = None, what: str = "torch.export"):
    """`model` exported for any batch from 1 to `max_batch` (None: no upper bound); ExportError on failure.

    The example has batch 4: an example of 1 lets the exporter specialise the axis away."""
    batch = torch.export.Dim("batch", min=1, max=max_batch) if max_batch else torch.export.Dim("batch", min=1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not isinstance(model, torch.fx.GraphModule):  # PT2E's quantized module is exported as it is
                model = model.eval()
            return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:
        raise ExportError(f"{what} cannot export this model ({first_line(exc)})") from None


def metadata(ckpt: dict, source_sha256: str) -> dict[str, str]:
    """The checkpoint's facts every PyTorch 2 file carries (the ONNX files carry the same as metadata_props)."""
    return {
        "toolkit.model": ckpt["model"]["name"],
        "toolkit.num_classes": str(ckpt["model"]["num_classes"]),
        "toolkit.source_sha256": source_sha256,
    }


def write(
    model: nn.Module, example: torch.Tensor, path: Path, ckpt: dict, *, source_sha256: str = "", **_: Any
) -> dict[str, Any]:
    program = exported_program(model, example)
    extra = {METADATA_FILE: json.dumps(metadata(ckpt, source_sha256))}
    buffer = io.BytesIO()  # torch.export wants a name ending in .pt2; the atomic temp file has another
    torch.export.save(program, buffer, extra_files=extra)
    path.write_bytes(buffer.getvalue())
    return {"dynamic_batch": "1..", "torch": str(torch.__version__)}
