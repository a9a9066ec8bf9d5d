"""What the runtimes that are PyTorch itself share (eager, TorchScript, AOTInductor): a module on a torch device,
its thread count, autocast and memory format, one `run` and one `describe`. Each subclass only loads its file."""

from __future__ import annotations

from typing import Any

import torch

from toolkit.core.device import pick_device, synchronize
from toolkit.core.precision import autocast
from toolkit.runtimes.base import Runtime


class TorchDeviceRuntime(Runtime):
    provider = "torch"  # what `describe` names, with torch's version
    #: the switches this runtime's files honour, as open_runtime options; `describe` reports them
    switches: tuple[str, ...] = ()

    def __init__(self, path, device="cpu", threads=None, *, amp: str = "off", channels_last: bool = False):
        super().__init__(path, device, threads)
        self.torch_device = pick_device(device)
        if threads:
            torch.set_num_threads(threads)  # also Inductor's OpenMP kernels
        self.amp, self.channels_last = amp, channels_last
        self.module = self.load(path)
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)

    def load(self, path) -> Any:
        """The callable module for `path`, on self.torch_device; ToolkitError when the file cannot be loaded."""
        raise NotImplementedError

    @torch.inference_mode()
    def run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.torch_device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.torch_device, self.amp):
            out = self.module(x).float().cpu()
        synchronize(self.torch_device)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "device": self.device,
            "provider": f"{self.provider} {torch.__version__}",
            "threads": torch.get_num_threads(),
            **{name: getattr(self, name) for name in self.switches},
        }
