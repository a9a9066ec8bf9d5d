"""Training: config, the shared step, the loop, checkpoints, optimizers and schedules, precision, DDP.

`toolkit.train(...)` calls `train.loop.train` (see core/callable_module.py). The names below load on first
use: the command line reads TrainConfig's fields for its options without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from toolkit.core.callable_module import make_callable

_LAZY = {
    "TrainConfig": "toolkit.train.config",
    "evaluate": "toolkit.train.evaluation",
    "TrainResult": "toolkit.train.loop",
    "TrainState": "toolkit.train.loop",
    "prepare": "toolkit.train.loop",
    "train": "toolkit.train.loop",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'toolkit.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


def _train(*args: Any, **kwargs: Any) -> Any:
    """Train a model (train.loop.train): `toolkit.train(model="resnet20", epochs=1)`."""
    from toolkit.train.loop import train

    return train(*args, **kwargs)


make_callable(__name__, _train)
