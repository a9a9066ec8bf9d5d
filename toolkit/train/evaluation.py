"""Test-set evaluation, plain and under a test-time augmentation (TTA) policy.

TTA is an evaluation policy recorded in the recipe and the checkpoint; exported models stay single-view.
'mirror' averages the image and its mirror; 'mirror-translate' (airbench94) weighs the image and its
mirror 0.25 each, and the image shifted 1 px up-left and 1 px down-right (reflect padding), each with its
mirror, 0.125 each: six views, logits averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.core.precision import autocast
from toolkit.data import TensorLoader


def tta_views(x: torch.Tensor, policy: str) -> list[tuple[float, torch.Tensor]]:
    """(weight, view) pairs for `policy`; the weights sum to 1."""
    if policy == "none":
        return [(1.0, x)]
    mirrored = [(0.5, x), (0.5, x.flip(-1))]
    if policy == "mirror":
        return mirrored
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    h, w = x.shape[-2:]
    shifted = [padded[..., 0:h, 0:w], padded[..., 2 : h + 2, 2 : w + 2]]  # content moves down-right / up-left
    return [(0.25, x), (0.25, x.flip(-1))] + [(0.125, v) for s in shifted for v in (s, s.flip(-1))]


def tta_logits(model: nn.Module, x: torch.Tensor, policy: str) -> torch.Tensor:
    return sum(weight * model(view).float() for weight, view in tta_views(x, policy))


@torch.inference_mode()
def evaluate(model: nn.Module, loader: TensorLoader, amp: str = "off", tta: str = "none") -> tuple[float, float]:
    """(accuracy in percent, mean cross-entropy) over every sample of `loader`, under the TTA policy."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=loader.device)
    loss_sum = torch.zeros((), device=loader.device)
    for x, y in loader.epoch(0):
        with autocast(loader.device, amp):
            logits = tta_logits(model, x, tta)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    n = max(loader.num_samples, 1)
    return 100.0 * correct.item() / n, loss_sum.item() / n
