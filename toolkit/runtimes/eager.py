"""PyTorch eager mode from the checkpoint itself: the reference every other runtime is compared with."""

from __future__ import annotations

import torch

from toolkit.core.device import native_half_precisions, pick_device, synchronize
from toolkit.core.precision import autocast
from toolkit.run.checkpoint import load_checkpoint, model_from_checkpoint
from toolkit.runtimes.base import Runtime


class EagerRuntime(Runtime):
    name = "eager"
    devices = ("cpu", "cuda", "mps")

    @classmethod
    def variants(cls, fmt, device):
        if fmt != "checkpoint":
            return []
        found = [("channels_last", {"channels_last": True})]
        if "bf16" not in native_half_precisions(device):  # where it is native, it is a format of its own
            # Emulated bf16 is timed too: the table shows what it costs on a CPU without AMX.
            found.append(("bf16 (emulated)", {"amp": "bf16"}))
        return found

    def __init__(self, path, device="cpu", threads=None, *, channels_last: bool = False, amp: str = "off"):
        super().__init__(path, device, threads)
        self.torch_device = pick_device(device)
        if threads:
            torch.set_num_threads(threads)
        self.checkpoint = load_checkpoint(path)
        self.model = model_from_checkpoint(self.checkpoint).to(self.torch_device)
        self.channels_last, self.amp = channels_last, amp
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.torch_device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.torch_device, self.amp):
            out = self.model(x).float().cpu()
        synchronize(self.torch_device)
        return out

    def describe(self):
        return {
            "runtime": self.name,
            "device": self.device,
            "provider": f"torch {torch.__version__}",
            "threads": torch.get_num_threads(),
            "channels_last": self.channels_last,
            "amp": self.amp,
        }
