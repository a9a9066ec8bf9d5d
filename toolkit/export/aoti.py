"""AOTInductor: the exported program compiled ahead of time to a shared library, packaged as model-aoti.pt2.

Runs from Python (torch._inductor.aoti_load_package) or C++ (torch::inductor::AOTIModelPackageLoader)
without the model's Python code. Inductor compiles C++ with the machine's compiler and -march=native: the
package is for this CPU's instruction set. What it was compiled for (device, CPU, ISA extensions) goes into
the package's own metadata and the manifest; runtimes/aoti.py refuses to run it on a CPU that lacks any of
those extensions, with a line saying so, instead of dying on an illegal instruction.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.core.errors import ConfigError, first_line
from toolkit.core.machine import cpu_model, isa_extensions
from toolkit.export.check import ExportError
from toolkit.export.torch_export import exported_program, metadata


def compiler() -> str:
    """The C++ compiler Inductor will call; ConfigError when there is none."""
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        return get_cpp_compiler()
    except Exception as exc:
        raise ConfigError(
            f"aoti needs a C++ compiler and found none ({first_line(exc)}); install g++ "
            "(apt-get install g++) or set CXX, or export the other formats"
        ) from None


def compiled_for() -> dict[str, Any]:
    """What a package compiled here may rely on: the device, this CPU's model and ISA extensions."""
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    return {"device": "cpu", "cpu": cpu_model(), "vec_isa": str(pick_vec_isa()), "isa": isa_extensions()}


def write(
    model: nn.Module, example: torch.Tensor, path: Path, ckpt: dict, *, source_sha256: str = "", **_: Any
) -> dict[str, Any]:
    cxx = compiler()
    program = exported_program(model, example, what="AOTInductor")
    target = compiled_for()
    meta = {
        **metadata(ckpt, source_sha256),
        "toolkit.device": target["device"],
        "toolkit.cpu": target["cpu"],
        "toolkit.isa": " ".join(target["isa"]),
    }
    # "No CUDA runtime is found": torch.utils.cpp_extension's warning on a CPU-only machine, not ours to show.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    package = io.BytesIO()  # Inductor wants a name ending in .pt2; the atomic temp file has another
    started = time.perf_counter()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch._inductor.aoti_compile_and_package(
                program, package_path=package, inductor_configs={"aot_inductor.metadata": meta}
            )
    except Exception as exc:
        raise ExportError(f"AOTInductor could not compile this model with {cxx} ({first_line(exc)})") from None
    seconds = time.perf_counter() - started
    path.write_bytes(package.getvalue())
    return {
        "compiled_for": target,
        "compiler": os.path.basename(cxx),
        "compile_seconds": round(seconds, 1),
        "dynamic_batch": "1..",
    }
