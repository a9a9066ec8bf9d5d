"""Training: config, the shared step, the loop, checkpoints, optimizers and schedules, precision, DDP.

`toolkit.train(...)` calls `train.loop.train` (see core/callable_module.py). The names below load on first
use: the command line reads TrainConfig's fields for its options without loading torch.
"""

from __future__ import annotations

from typing import Any

from toolkit.core.callable_module import make_callable
from toolkit.core.lazy import lazy_attributes

_LAZY = {
    "TrainConfig": "toolkit.train.config:TrainConfig",
    "evaluate": "toolkit.train.evaluation:evaluate",
    "TrainResult": "toolkit.train.loop:TrainResult",
    "TrainState": "toolkit.train.loop:TrainState",
    "prepare": "toolkit.train.loop:prepare",
    "train": "toolkit.train.loop:train",
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_attributes(__name__, _LAZY)


def _train(*args: Any, **kwargs: Any) -> Any:
    """Train a model (train.loop.train): `toolkit.train(model="resnet20", epochs=1)`."""
    from toolkit.train.loop import train

    return train(*args, **kwargs)


make_callable(__name__, _train)
