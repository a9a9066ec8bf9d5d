"""TorchScript export: trace (or script), freeze, save. Loaded back by runtimes/torchscript.py.

TorchScript is deprecated upstream in favour of torch.export; this file, the runtime and one line in
targets/formats.py are all there is of it.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.core.errors import ConfigError

MODES = ("trace", "script")


def write(
    model: nn.Module, example: torch.Tensor, path: Path, ckpt: dict, *, ts_mode: str = "trace", **_: Any
) -> dict[str, Any]:
    """Write a frozen TorchScript module for inference (the caller checks and renames it)."""
    if ts_mode not in MODES:
        raise ConfigError(f"unknown TorchScript mode {ts_mode!r}; choose trace or script")
    model = model.eval()
    with warnings.catch_warnings(), torch.no_grad(), _strict_fp32_convolutions():
        warnings.simplefilter("ignore")  # the deprecation notice says nothing the module docstring does not
        module = torch.jit.trace(model, example) if ts_mode == "trace" else torch.jit.script(model)
        # To memory, then to disk with Python's I/O: torch.jit.save straight to a path aborts the process in C++
        # (`terminate called`) when the disk fills up; here that is an OSError like any other.
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.freeze(module), buffer)
    path.write_bytes(buffer.getvalue())
    return {"mode": ts_mode, "frozen": True, "cudnn_tf32": False}


@contextlib.contextmanager
def _strict_fp32_convolutions():
    """Trace with cuDNN's TF32 switch off: tracing bakes the switch into every aten::_convolution call.

    Traced with the default (on), model.ts ran its convolutions in TF32 on any GPU whatever the loading
    process set, and missed eager fp32 by 6.9e-3 on an H200 (toolkit verify caught it).
    """
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before
