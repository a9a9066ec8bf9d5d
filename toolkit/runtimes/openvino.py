"""OpenVINO: model.onnx (and the INT8/fp16 files) compiled for its CPU plugin, threads and hints set and read back.

Two settings change what is measured, so both are explicit and recorded. The precision hint: on CPUs with
AMX or AVX-512-bf16 the CPU plugin silently runs fp32 models in bf16, which is a different model; here it
is f32 unless asked otherwise. The performance hint: LATENCY runs one request on all the threads given,
which is what one `run()` call is; THROUGHPUT splits the cores into streams that only pay off with several
requests in flight (measured on a 2-core AVX2 EPYC at batch 256: 750 vs 386 img/s for the tutorial CNN).
OpenVINO's GPU plugin drives Intel GPUs, which this toolkit's device names (cpu, cuda, mps) do not cover.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from toolkit.core.errors import ConfigError, ToolkitError, first_line
from toolkit.runtimes.base import Runtime

HINTS = ("latency", "throughput")
PRECISIONS = ("f32", "bf16")


class OpenVinoRuntime(Runtime):
    name = "openvino"
    devices = ("cpu",)

    module = "openvino"  # from the extra of the same name; missing, the runtime is skipped with a note

    @classmethod
    def variants(cls, fmt, device):
        # THROUGHPUT splits the cores into streams; one call at a time shows what that costs.
        return [("hint=throughput", {"hint": "throughput"}), ("bf16", {"precision": "bf16"})] if fmt == "onnx" else []

    def __init__(self, path, device="cpu", threads=None, *, hint: str = "latency", precision: str = "f32"):
        super().__init__(path, device, threads)
        if hint not in HINTS:
            raise ConfigError(f"unknown OpenVINO performance hint {hint!r}; choose {' or '.join(HINTS)}")
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown OpenVINO precision {precision!r}; choose {' or '.join(PRECISIONS)}")
        import openvino as ov

        config = {
            "PERFORMANCE_HINT": hint.upper(),
            "INFERENCE_PRECISION_HINT": precision,
            "INFERENCE_NUM_THREADS": threads or (os.cpu_count() or 1),
        }
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as exc:
            raise ToolkitError(f"{path}: OpenVINO cannot compile it ({_reason(exc)})") from None
        self.request = self.compiled.create_infer_request()
        self.version = ov.get_version().split("-")[0]

    def run(self, x: torch.Tensor) -> torch.Tensor:
        self.request.infer([np.ascontiguousarray(x.detach().cpu().numpy())])
        return torch.from_numpy(self.request.get_output_tensor(0).data.copy())

    def describe(self):
        prop = self.compiled.get_property
        return {
            "runtime": self.name,
            "device": self.device,
            "provider": f"OpenVINO {self.version} CPU plugin",
            "threads": int(prop("INFERENCE_NUM_THREADS")),
            "performance_hint": str(prop("PERFORMANCE_HINT")).split(".")[-1].lower(),
            "inference_precision": prop("INFERENCE_PRECISION_HINT").to_string(),  # what it runs in, read back
            "streams": int(prop("NUM_STREAMS")),
        }


def _reason(exc: Exception) -> str:
    """OpenVINO's messages start with lines of source locations; the cause comes after them."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.startswith("Exception from")]
    return first_line("; ".join(lines) or exc, 300)
