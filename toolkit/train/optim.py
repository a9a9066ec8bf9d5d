"""Optimizers and learning-rate schedules.

Fused optimizers matter on CPU too: the default (foreach) Adam step for the tutorial CNN's 25.8 M
parameters took ~98 ms of a ~240 ms batch-64 step on a Xeon; `fused=True` does it in ~16 ms.
The schedule is a pure function of the step, so a resumed run needs no scheduler state.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from toolkit.train.config import TrainConfig


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Trainable parameters grouped by the recipe's lr_scales: (name fragment, lr factor) pairs.

    A group's lr is the scheduled lr times its factor and its weight decay is the recipe's divided by the
    factor, so lr x decay (the shrink per step) stays the same in every group. Without lr_scales there is
    one group of every trainable parameter, in model order.
    """
    factors: dict[float, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        factor = next((f for fragment, f in cfg.lr_scales or () if fragment in name), 1.0)
        factors.setdefault(factor, []).append(p)
    return [
        {"params": ps, "lr": cfg.lr * f, "lr_factor": f, "weight_decay": cfg.weight_decay / f}
        for f, ps in factors.items()
    ]


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> tuple[torch.optim.Optimizer, bool]:
    """The optimizer and whether it is fused (fused kernels exist for cpu/cuda/mps in torch >= 2.4)."""
    groups = param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        make = lambda **kw: torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay, **kw
        )
    else:
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        make = lambda **kw: cls(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, **kw)
    if cfg.optimizer == "sgd" and cfg.amp == "fp16":
        # Fused SGD advances its momentum on the overflow steps GradScaler must skip, and the weights
        # explode a step later (seen here on CPU, torch 2.14; LibreYOLO/libreyolo#771 on CUDA).
        # Fused Adam/AdamW honour found_inf, so only this pair falls back.
        return make(), False
    try:
        return make(fused=True), True
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without fused kernels
        return make(), False


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total_steps`."""
    frac = step / max(total_steps, 1)
    if cfg.schedule == "multistep":  # He et al.: divide by 10 at 50 % and 75 % of training
        return cfg.lr * 0.1 ** ((frac >= 0.5) + (frac >= 0.75))
    if cfg.schedule == "cosine":
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * frac))
    if cfg.schedule == "onecycle":  # linear warm-up over the first 20 %, then linear decay to zero
        warm = 0.2
        return cfg.lr * ((step + 1) / (warm * total_steps) if frac < warm else (1 - frac) / (1 - warm))
    if cfg.schedule == "warmup-linear":  # airbench94: factor start -> 1 over the warm-up, then 1 -> end
        warm = int(total_steps * cfg.warmup_fraction)
        if step < warm:
            return cfg.lr * (cfg.lr_start_factor + (1 - cfg.lr_start_factor) * step / warm)
        return cfg.lr * (1 + (cfg.lr_end_factor - 1) * (step - warm) / max(total_steps - warm, 1))
    return cfg.lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_factor", 1.0)
