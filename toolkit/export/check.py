"""Every export checks itself before it is kept: re-load it, run it, compare it with eager PyTorch.

Fixed batches of 1, 7 and 256 images: an ONNX batch axis silently fixed by the example input shows up
there. A non-finite logit on either side fails the check by name; a NaN must never compare as "no difference".
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from toolkit.core.errors import ToolkitError
from toolkit.data import normalise
from toolkit.targets.gates import Thresholds, fp32_excess, fp32_failure

CHECK_BATCHES = (1, 7, 256)


class ExportError(ToolkitError):
    """An export that failed, or whose re-loaded file does not answer like eager PyTorch."""


def example_inputs(ckpt: dict, batch: int, seed: int = 0) -> torch.Tensor:
    """A fixed, normalised batch of random images, the same every time for a given checkpoint."""
    g = torch.Generator().manual_seed(seed + batch)
    pixels = torch.randint(0, 256, (batch, *ckpt["input"]["shape"]), generator=g, dtype=torch.uint8)
    return normalise(pixels, ckpt["input"]["mean"], ckpt["input"]["std"])


def count_non_finite(t: torch.Tensor) -> int:
    return int((~torch.isfinite(t)).sum())


def check_batches(ckpt: dict) -> list[torch.Tensor]:
    return [example_inputs(ckpt, b) for b in CHECK_BATCHES]


def compare_with_eager(
    model: nn.Module,
    inputs: list[torch.Tensor],
    outputs: list[torch.Tensor],
    label: str,
    ckpt: dict,
    atol: float,
    rtol: float,
    gate_logits: bool = True,
) -> dict[str, Any]:
    """Compare a runtime's `outputs` for `inputs` (check_batches) with eager's; raise ExportError on the first problem.

    fp32 files must match the logits by verify's rule (targets.gates.fp32_allowance: atol + rtol * the image's
    largest |logit|). Reduced-precision files (`gate_logits=False`)
    must give finite logits of the right shape; their distance and top-1 agreement on these random
    images are recorded, and verify gates them on the test set by accuracy and agreement.
    """
    worst, agree, total = 0.0, 0, 0
    tolerance = Thresholds(atol=atol, rtol=rtol)
    for x, got in zip(inputs, outputs, strict=True):
        b = len(x)
        with torch.inference_mode():
            ref = model(x)
        if count_non_finite(ref):
            raise ExportError(
                f"eager {ckpt['model']['name']} gives {count_non_finite(ref)} NaN/inf logits for a "
                f"batch of {b}: the checkpoint's weights are broken; nothing was exported"
            )
        if got.shape != ref.shape:
            raise ExportError(
                f"{label} returned shape {tuple(got.shape)} for a batch of {b}, expected {tuple(ref.shape)}"
            )
        if count_non_finite(got):
            raise ExportError(
                f"{label} gives {count_non_finite(got)} NaN/inf logits for a batch of {b} where eager gives none"
            )
        diff = (got - ref).abs()
        worst = max(worst, float(diff.max()))
        agree += int((got.argmax(1) == ref.argmax(1)).sum())
        total += b
        excess = fp32_excess(got, ref, tolerance)
        if gate_logits and excess.ratio > 1:
            raise ExportError(fp32_failure(label, excess, tolerance, f"in a batch of {b}"))
    gates = {"atol": atol, "rtol": rtol} if gate_logits else {"gated_by": "toolkit verify (accuracy drop, agreement)"}
    return {
        "batch_sizes": list(CHECK_BATCHES),
        "max_abs_diff": worst,
        "top1_agreement": 100.0 * agree / total,
        **gates,
    }
