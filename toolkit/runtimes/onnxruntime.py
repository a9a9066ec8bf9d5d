"""onnxruntime: providers and threads are set explicitly and read back from the session.

onnxruntime silently falls back to the CPU provider when the CUDA one cannot load; here a missing
provider is an error, so a "cuda" result is never a CPU result in disguise.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from toolkit.core.errors import ConfigError, DeviceError, ToolkitError, first_line
from toolkit.runtimes.base import Runtime

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    devices = ("cpu", "cuda")

    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        import onnxruntime as ort

        if device not in PROVIDERS:
            return f"onnxruntime has no provider for device {device!r}"
        if PROVIDERS[device] not in ort.get_available_providers():
            return f"onnxruntime provider {PROVIDERS[device]} is not installed (pip install -e '.[gpu]')"
        return None

    @classmethod
    def variants(cls, fmt, device):
        # The gap between "disable" and "all" is what the graph optimisations buy.
        return [(f"opt={lvl}", {"opt_level": lvl}) for lvl in OPT_LEVELS if lvl != "all"] if fmt == "onnx" else []

    def __init__(self, path, device="cpu", threads=None, *, opt_level: str = "all", inter_threads: int = 1):
        super().__init__(path, device, threads)
        import onnxruntime as ort

        if device not in PROVIDERS:
            raise DeviceError(f"onnxruntime has no provider for device {device!r}; choose cpu or cuda")
        wanted = PROVIDERS[device]
        if wanted not in ort.get_available_providers():
            hint = " (install the gpu extra: pip install -e '.[gpu]')" if device == "cuda" else ""
            raise DeviceError(f"onnxruntime provider {wanted} is not available{hint}")
        opts = ort.SessionOptions()
        # 0 would mean "one per core", which we cannot record honestly; pick and record a number instead.
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = inter_threads
        if opt_level not in OPT_LEVELS:
            raise ConfigError(f"unknown onnxruntime optimisation level {opt_level!r}; choose {', '.join(OPT_LEVELS)}")
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[opt_level])
        self.opt_level, self.intra, self.inter = opt_level, opts.intra_op_num_threads, inter_threads
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=[wanted])
        except Exception as exc:
            raise ToolkitError(
                f"{path}: onnxruntime cannot load it ({first_line(exc)}); re-run toolkit export"
            ) from None
        got = self.session.get_providers()
        if got[0] != wanted:
            raise DeviceError(f"onnxruntime fell back to {got[0]} instead of {wanted}; refusing a silent fallback")
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x.detach().cpu().numpy())})[0]
        return torch.from_numpy(out)

    def describe(self):
        return {
            "runtime": self.name,
            "device": self.device,
            "provider": self.session.get_providers()[0],
            "threads": self.intra,
            "inter_op_threads": self.inter,
            "graph_optimization": self.opt_level,
        }
