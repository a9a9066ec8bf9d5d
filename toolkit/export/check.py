"""Every export checks itself before it is kept: re-load it, run it, compare it with eager PyTorch.

Fixed batches of 1, 7 and 256 images: an ONNX batch axis silently fixed by the example input shows up
there. A non-finite logit on either side fails the check by name; a NaN must never compare as "no difference".
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from toolkit.core.errors import ToolkitError, first_line

CHECK_BATCHES = (1, 7, 256)


class ExportError(ToolkitError):
    """An export that failed, or whose re-loaded file does not answer like eager PyTorch."""


def example_inputs(ckpt: dict, batch: int, seed: int = 0) -> torch.Tensor:
    """A fixed, normalised batch of random images, the same every time for a given checkpoint."""
    g = torch.Generator().manual_seed(seed + batch)
    x = torch.randint(0, 256, (batch, *ckpt["input"]["shape"]), generator=g).float() / 255
    mean = torch.tensor(ckpt["input"]["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(ckpt["input"]["std"]).view(1, -1, 1, 1)
    return (x - mean) / std


def count_non_finite(t: torch.Tensor) -> int:
    return int((~torch.isfinite(t)).sum())


def compare_with_eager(model: nn.Module, runtime, ckpt: dict, atol: float, rtol: float) -> dict[str, Any]:
    """Run both on fixed batches of each CHECK_BATCHES size; raise ExportError on the first mismatch."""
    worst = 0.0
    for b in CHECK_BATCHES:
        x = example_inputs(ckpt, b)
        with torch.inference_mode():
            ref = model(x)
        if count_non_finite(ref):
            raise ExportError(
                f"eager {ckpt['model']['name']} gives {count_non_finite(ref)} NaN/inf logits for a "
                f"batch of {b}: the checkpoint's weights are broken; nothing was exported"
            )
        try:
            got = runtime.run(x)
        except Exception as exc:
            raise ExportError(
                f"{runtime.name} cannot run a batch of {b} ({type(exc).__name__}: "
                f"{first_line(exc, 160)}); the batch axis may be fixed"
            ) from None
        if got.shape != ref.shape:
            raise ExportError(
                f"{runtime.name} returned shape {tuple(got.shape)} for a batch of {b}, expected {tuple(ref.shape)}"
            )
        if count_non_finite(got):
            raise ExportError(
                f"{runtime.name} gives {count_non_finite(got)} NaN/inf logits for a batch of {b} where eager gives none"
            )
        diff = (got - ref).abs()
        worst = max(worst, float(diff.max()))
        if (diff > atol + rtol * ref.abs()).any():
            raise ExportError(
                f"{runtime.name} differs from eager by up to {float(diff.max()):.3g} at batch {b} "
                f"(allowed {atol:g} + {rtol:g}*|logit|)"
            )
    return {"batch_sizes": list(CHECK_BATCHES), "max_abs_diff": worst, "atol": atol, "rtol": rtol}
