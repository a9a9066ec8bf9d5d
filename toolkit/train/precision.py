"""Precision and speed switches for training: AMP (bf16/fp16), channels_last and torch.compile, in one place.

bf16 autocast pays on CPUs with AMX (Intel Sapphire Rapids and later) and on recent GPUs; on an AVX2-only
CPU it is usually slower than fp32. fp16 needs a GradScaler to keep small gradients from underflowing.
"""

from __future__ import annotations

import shutil
import sys

import torch
from torch import nn

from toolkit.core.precision import autocast


def compile_unavailable_reason() -> str | None:
    """Why torch.compile cannot run here, or None when it can."""
    try:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            return f"torch.compile does not support Python {sys.version_info.major}.{sys.version_info.minor} here"
    except Exception as exc:  # pragma: no cover - import-time failures differ between builds
        return f"torch.compile cannot load ({type(exc).__name__})"
    if not any(shutil.which(cc) for cc in ("cc", "gcc", "clang", "cl")):
        return "torch.compile needs a C/C++ compiler on PATH for CPU code"
    return None


class Precision:
    """The switches of one training run, applied to its model, its backward pass and its optimizer step."""

    def __init__(self, amp: str, channels_last: bool, compile: bool, device: torch.device):
        self.device, self.amp, self.channels_last = device, amp, channels_last
        self.compile_skipped = compile_unavailable_reason() if compile else None
        self.compiled = compile and self.compile_skipped is None
        self.scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None

    def autocast(self):
        return autocast(self.device, self.amp)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def wrap_for_training(self, model: nn.Module) -> nn.Module:
        """The module the loop calls: compiled when asked and possible (weights stay shared)."""
        return torch.compile(model) if self.compiled else model

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)  # skips the step when the scaled gradients overflowed
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> dict | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)

    def describe(self) -> dict:
        return {
            "amp": self.amp,
            "channels_last": self.channels_last,
            "compiled": self.compiled,
            "compile_skipped": self.compile_skipped,
        }
