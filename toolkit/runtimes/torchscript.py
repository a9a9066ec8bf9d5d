"""The TorchScript runtime: loads a frozen model.ts (written by export/torchscript.py) on CPU or CUDA.

TorchScript is deprecated upstream in favour of torch.export; removing it means deleting this file,
export/torchscript.py and its line in targets/formats.py.
"""

from __future__ import annotations

import warnings

import torch

from toolkit.core.device import pick_device, synchronize
from toolkit.core.errors import ToolkitError, first_line
from toolkit.core.precision import autocast
from toolkit.runtimes.base import Runtime


class TorchScriptRuntime(Runtime):
    name = "torchscript"
    devices = ("cpu", "cuda")

    def __init__(self, path, device="cpu", threads=None, *, amp: str = "off"):
        super().__init__(path, device, threads)
        self.amp = amp  # the frozen graph honours autocast: bf16/fp16 here runs its convolutions in that type
        self.torch_device = pick_device(device)
        if threads:
            torch.set_num_threads(threads)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.module = torch.jit.load(str(path), map_location=self.torch_device).eval()
        except Exception as exc:
            raise ToolkitError(
                f"{path}: not a loadable TorchScript file ({first_line(exc)}); re-run toolkit export"
            ) from None

    @torch.inference_mode()
    def run(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.torch_device, self.amp):
            out = self.module(x.to(self.torch_device)).float().cpu()
        synchronize(self.torch_device)
        return out

    def describe(self):
        return {
            "runtime": self.name,
            "device": self.device,
            "provider": f"torch.jit {torch.__version__}",
            "threads": torch.get_num_threads(),
            "amp": self.amp,
        }
