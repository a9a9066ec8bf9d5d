"""AOTInductor's runtime: a model-aoti.pt2 package loaded with torch._inductor.aoti_load_package.

Before loading, the package's metadata (a JSON file inside the zip, written by export/aoti.py) is read:
a package compiled for another device, or with -march=native on a CPU with an extension this one lacks,
is refused with one line, where running it would end in an illegal instruction.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
import zipfile
from pathlib import Path

import torch

from toolkit.core.errors import ConfigError, ToolkitError, first_line
from toolkit.core.machine import isa_extensions
from toolkit.runtimes.torch_device import TorchDeviceRuntime


def package_metadata(path) -> dict[str, str]:
    """The metadata AOTInductor stored in the package (AOTI_DEVICE_KEY, toolkit.isa, ...); {} if none."""
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if name.endswith("metadata.json"):
                    meta = json.loads(z.read(name))
                    if "AOTI_DEVICE_KEY" in meta:
                        return meta
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise ToolkitError(f"{path}: not an AOTInductor package ({first_line(exc)}); re-run toolkit export") from None
    return {}


def refusal(meta: dict[str, str], device: str) -> str | None:
    """Why a package with `meta` must not run on `device` of this machine, or None."""
    built = meta.get("AOTI_DEVICE_KEY", meta.get("toolkit.device", "cpu"))
    if built != device:
        return f"it was compiled for {built}, not {device}"
    if device == "cpu":
        missing = sorted(set(meta.get("toolkit.isa", "").split()) - set(isa_extensions()))
        if missing:
            where = meta.get("toolkit.cpu", "another CPU")
            return f"it was compiled for {where}, and this CPU lacks {', '.join(missing)}"
    return None


class AotiRuntime(TorchDeviceRuntime):
    name = "aoti"
    devices = ("cpu", "cuda")
    provider = "AOTInductor, torch"

    def __init__(self, path, device="cpu", threads=None):
        self.metadata = package_metadata(path)
        if why := refusal(self.metadata, device):
            raise ConfigError(f"{path}: {why}; re-run `toolkit export <run> --format aoti` on this machine")
        super().__init__(path, device, threads)

    def load(self, path):
        # "No CUDA runtime is found": torch.utils.cpp_extension's warning on a CPU-only machine, not ours to show.
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # From bytes: Inductor warns about names not ending in .pt2, such as export's temp file.
                return torch._inductor.aoti_load_package(io.BytesIO(Path(path).read_bytes()))
        except Exception as exc:
            raise ToolkitError(
                f"{path}: AOTInductor cannot load it ({first_line(exc)}); re-run toolkit export"
            ) from None
