"""Factories standing in for a user's own models (`--model tests.own_models:NAME`), good and broken."""

from torch import nn


def tiny(num_classes: int = 10, width: int = 8) -> nn.Module:
    """Any input size: conv, global average pool, linear."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, num_classes),
    )


def only_32(num_classes: int = 10) -> nn.Module:
    """Takes 32x32 inputs only (a flattening linear layer)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))


def fixed_classes() -> nn.Module:
    """No num_classes parameter: always 5 outputs."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5))


def needs_depth(depth: int, num_classes: int = 10) -> nn.Module:
    return nn.Sequential(*[nn.Conv2d(3, 3, 1) for _ in range(depth)], nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(3, num_classes))  # fmt: skip


def raises(num_classes: int = 10) -> nn.Module:
    raise RuntimeError("out of ideas")


def not_a_module(num_classes: int = 10):
    return {"weights": [1, 2, 3]}


NOT_CALLABLE = 42
