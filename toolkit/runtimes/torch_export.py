"""torch.export's runtime: model.pt2 loaded with torch.export.load and run as the module it unflattens to.

This is the file PyTorch itself now recommends in place of TorchScript: Python and torch are needed to run
it; AOTInductor (aoti) and ExecuTorch (executorch) compile the same program for use without Python.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch

from toolkit.core.errors import ToolkitError, first_line
from toolkit.core.native import loggers_silenced
from toolkit.runtimes.base import Runtime


class TorchExportRuntime(Runtime):
    name = "torch-export"
    devices = ("cpu",)  # the program is exported on the CPU; its constants stay there

    def __init__(self, path, device="cpu", threads=None):
        super().__init__(path, device, threads)
        if threads:
            torch.set_num_threads(threads)
        extra = {"toolkit.json": ""}
        try:
            with warnings.catch_warnings(), loggers_silenced("torch.export"):
                warnings.simplefilter("ignore")
                # From bytes: torch.export warns about names not ending in .pt2, such as export's temp file.
                self.module = torch.export.load(io.BytesIO(Path(path).read_bytes()), extra_files=extra).module()
        except Exception as exc:
            raise ToolkitError(
                f"{path}: torch.export.load cannot read it ({first_line(exc)}); re-run toolkit export"
            ) from None
        try:
            self.metadata = json.loads(extra["toolkit.json"]) if extra["toolkit.json"] else None
        except ValueError:
            self.metadata = None

    @torch.inference_mode()
    def run(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.to(torch.float32)).float()

    def describe(self):
        return {
            "runtime": self.name,
            "device": self.device,
            "provider": f"torch.export {torch.__version__}",
            "threads": torch.get_num_threads(),
        }
