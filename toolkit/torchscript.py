"""Everything TorchScript: export (trace or script, then freeze) and the runtime that loads it.

TorchScript is deprecated upstream in favour of torch.export; keeping it in this one file means it can go
away by deleting the file and its two registry entries (runtimes/__init__.py, export.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from toolkit.device import pick_device, synchronize
from toolkit.errors import ConfigError, ToolkitError
from toolkit.runtimes.base import Runtime

MODES = ("trace", "script")


def to_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path, mode: str = "trace") -> None:
    """Write a frozen TorchScript module for inference (the caller checks and renames it)."""
    if mode not in MODES:
        raise ConfigError(f"unknown TorchScript mode {mode!r}; choose trace or script")
    model = model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the deprecation notice says nothing the module docstring does not
        module = torch.jit.trace(model, example) if mode == "trace" else torch.jit.script(model)
        frozen = torch.jit.freeze(module)
        torch.jit.save(frozen, str(path))


class TorchScriptRuntime(Runtime):
    name = "torchscript"
    filename = "model.ts"
    devices = ("cpu", "cuda")

    def __init__(self, path, device="cpu", threads=None):
        super().__init__(path, device, threads)
        self.torch_device = pick_device(device)
        if threads:
            torch.set_num_threads(threads)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.module = torch.jit.load(str(path), map_location=self.torch_device).eval()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ToolkitError(f"{path}: not a loadable TorchScript file ({first}); re-run toolkit export") from None

    @torch.inference_mode()
    def run(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x.to(self.torch_device)).float().cpu()
        synchronize(self.torch_device)
        return out

    def describe(self):
        return {"runtime": self.name, "device": self.device, "provider": f"torch.jit {torch.__version__}",
                "threads": torch.get_num_threads()}
