"""Device choice: auto picks cuda > mps > cpu; an explicit device that is not there is an error."""

from __future__ import annotations

import torch

from toolkit.core.errors import DeviceError

DEVICES = ("auto", "cpu", "cuda", "mps")


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if mps_available():
        found.append("mps")
    return found


def native_half_precisions(device: str) -> tuple[str, ...]:
    """The 16-bit float types `device` computes in hardware: what an fp16/bf16 result there is worth timing.

    CPUs: bf16 with AMX or AVX-512-bf16 (elsewhere PyTorch emulates it, far slower than fp32), no fp16.
    CUDA: fp16 always, bf16 from Ampere on.
    """
    if device == "cpu":
        from toolkit.core.machine import cpu_flags

        flags = cpu_flags()
        return ("bf16",) if flags.get("amx_bf16") or flags.get("avx512_bf16") else ()
    if device.startswith("cuda") and torch.cuda.is_available():
        return ("fp16", "bf16") if torch.cuda.is_bf16_supported() else ("fp16",)
    return ()


def pick_device(name: str = "auto") -> torch.device:
    """The torch.device for `name` ('auto', 'cpu', 'cuda', 'cuda:N' or 'mps')."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu")
    kind, _, index_text = name.partition(":")
    if kind not in DEVICES or kind == "auto":
        raise DeviceError(f"unknown device {name!r}; choose one of: auto, cpu, cuda, cuda:N, mps")
    if index_text and (not index_text.isdigit() or kind != "cuda"):
        raise DeviceError(f"bad device {name!r}: only cuda takes an index, as cuda:0, cuda:1, ...")
    if kind == "cuda":
        if not torch.cuda.is_available():
            why = "this torch has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError(f"device {name!r} is not available ({why}); use --device cpu or auto")
        index = int(index_text or 0)
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} is not available: {torch.cuda.device_count()} GPU(s) visible")
    if kind == "mps" and not mps_available():
        raise DeviceError(f"device {name!r} is not available (no Apple MPS backend); use --device cpu or auto")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a timer around it measures the work, not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
