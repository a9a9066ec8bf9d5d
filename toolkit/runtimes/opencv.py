"""OpenCV DNN: model.onnx through cv2.dnn, the usual path into C++ applications, on the CPU.

OpenCV's ONNX importer covers fewer operators than onnxruntime; a file it cannot read is a one-line error
here, and in verify a crash inside it (OpenCV 5.0.0 segfaults on the Div/Erf/Mul form of GELU that opset 18
exports) is a failure line, since verify runs each runtime in its own process. Opset 20 exports GELU as
one Gelu node, which it reads: that is why `toolkit export` defaults to opset 20.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from toolkit.core.errors import ToolkitError, first_line
from toolkit.runtimes.base import Runtime


class OpenCvRuntime(Runtime):
    name = "opencv"
    devices = ("cpu",)

    module = "cv2"  # from the extra of the same name; missing, the runtime is skipped with a note

    def __init__(self, path, device="cpu", threads=None):
        super().__init__(path, device, threads)
        import cv2

        cv2.setNumThreads(threads or (os.cpu_count() or 1))
        try:
            # OpenCV 5 picks its new graph engine and falls back to the classic one; both run on the CPU
            # (setting a backend or target only draws a warning from the new engine).
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise ToolkitError(f"{path}: OpenCV DNN cannot read it ({first_line(exc)})") from None
        self.cv2 = cv2

    def run(self, x: torch.Tensor) -> torch.Tensor:
        self.net.setInput(np.ascontiguousarray(x.detach().cpu().numpy()))
        return torch.from_numpy(np.array(self.net.forward(), dtype=np.float32, copy=True))

    def describe(self):
        return {
            "runtime": self.name,
            "device": self.device,
            "provider": f"OpenCV {self.cv2.__version__} DNN, CPU",
            "threads": self.cv2.getNumThreads(),
        }
