"""The TorchScript runtime: loads a frozen model.ts (written by export/torchscript.py) on CPU or CUDA.

TorchScript is deprecated upstream in favour of torch.export; removing it means deleting this file,
export/torchscript.py and its line in targets/formats.py.
"""

from __future__ import annotations

import warnings

import torch

from toolkit.core.errors import ToolkitError, first_line
from toolkit.runtimes.torch_device import TorchDeviceRuntime


class TorchScriptRuntime(TorchDeviceRuntime):
    name = "torchscript"
    devices = ("cpu", "cuda")
    provider = "torch.jit"
    switches = ("amp",)  # the frozen graph honours autocast: bf16/fp16 here runs its convolutions in that type

    def __init__(self, path, device="cpu", threads=None, *, amp: str = "off"):
        super().__init__(path, device, threads, amp=amp)

    def load(self, path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.jit.load(str(path), map_location=self.torch_device).eval()
        except Exception as exc:
            raise ToolkitError(
                f"{path}: not a loadable TorchScript file ({first_line(exc)}); re-run toolkit export"
            ) from None
