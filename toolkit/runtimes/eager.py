"""PyTorch eager mode from the checkpoint itself: the reference every other runtime is compared with."""

from __future__ import annotations

from toolkit.core.device import native_half_precisions
from toolkit.run.checkpoint import load_checkpoint, model_from_checkpoint
from toolkit.runtimes.torch_device import TorchDeviceRuntime


class EagerRuntime(TorchDeviceRuntime):
    name = "eager"
    devices = ("cpu", "cuda", "mps")
    switches = ("channels_last", "amp")

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
        super().__init__(path, device, threads, amp=amp, channels_last=channels_last)

    def load(self, path):
        self.checkpoint = load_checkpoint(path)
        return model_from_checkpoint(self.checkpoint).to(self.torch_device)

    @property
    def model(self):
        return self.module
