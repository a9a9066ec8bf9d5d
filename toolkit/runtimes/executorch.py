"""ExecuTorch's runtime: a .pte program (XNNPACK delegate) loaded through executorch.runtime, on the CPU.

The same file runs from C++, Android and iOS without PyTorch. Its batch axis is bounded (export/executorch.py
plans memory for MAX_BATCH images); a larger batch is run in slices of the bound, which describe() records.
XNNPACK's thread pool is process-wide: it is set to the threads asked for and read back.
"""

from __future__ import annotations

import torch

from toolkit.core.errors import ToolkitError, first_line
from toolkit.core.native import native_stderr_silenced
from toolkit.runtimes.base import Runtime


class ExecuTorchRuntime(Runtime):
    name = "executorch"
    devices = ("cpu",)

    module = "executorch"  # from the extra of the same name; missing, the runtime is skipped with a note

    def __init__(self, path, device="cpu", threads=None):
        super().__init__(path, device, threads)
        import os
        import warnings

        with native_stderr_silenced(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "This API is experimental": it is the one ExecuTorch documents
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime as ETRuntime

            portable_lib._unsafe_reset_threadpool(threads or (os.cpu_count() or 1))
        self.threads = portable_lib._threadpool_get_thread_count()
        try:
            with native_stderr_silenced():
                program = ETRuntime.get().load_program(str(path))
                self.method = program.load_method("forward")
        except Exception as exc:
            raise ToolkitError(
                f"{path}: ExecuTorch cannot load it ({first_line(exc)}); re-run toolkit export"
            ) from None
        self.max_batch = int(self.method.metadata.input_tensor_meta(0).sizes()[0])
        self.version = __import__("importlib.metadata").metadata.version("executorch")

    @torch.inference_mode()
    def run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32).contiguous()
        outputs = []
        for part in x.split(self.max_batch):  # the program's memory is planned for max_batch images
            try:
                outputs.append(self.method.execute([part])[0].float().clone())
            except Exception as exc:
                raise ToolkitError(
                    f"{self.path}: ExecuTorch failed on a batch of {len(part)} ({first_line(exc)})"
                ) from None
        return torch.cat(outputs)

    def describe(self):
        return {
            "runtime": self.name,
            "device": self.device,
            "provider": f"ExecuTorch {self.version}, XNNPACK",
            "threads": self.threads,
            "max_batch": self.max_batch,
        }
