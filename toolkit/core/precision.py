"""Mixed precision as every stage uses it: training's AMP and the runtimes that run a checkpoint at bf16/fp16."""

from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device, amp: str):
    """The autocast context for `amp` ('off', 'bf16' or 'fp16') on `device`."""
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
