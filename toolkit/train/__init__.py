"""Training: config, the shared step, the loop, checkpoints, optimizers and schedules, precision, DDP.

`toolkit.train(...)` calls `train` below (see core/callable_module.py).
"""

from toolkit.core.callable_module import make_callable
from toolkit.train.config import TrainConfig
from toolkit.train.evaluation import evaluate
from toolkit.train.loop import TrainResult, TrainState, prepare, train

__all__ = ["TrainConfig", "TrainResult", "TrainState", "evaluate", "prepare", "train"]

make_callable(__name__, train)
