"""One training step, the function `toolkit train`, `toolkit bench` and benchmarks/ all call.

A step sets the learning rate for its index, runs forward and loss under the run's precision, adds the loss
and correct count to running sums on the device, checks the sums for NaN/inf, then runs backward, the
optimizer and, where the recipe has one, the lookahead update. The check reads a device value, so on a GPU it runs every 50 steps rather than every step (each
read waits for the queued work); on a CPU it costs nothing and runs every step, before the update, so a NaN
loss never reaches the weights. Benchmarks pass `mark` to time the phases apart; training passes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.train.lookahead import Lookahead
from toolkit.train.optim import set_lr
from toolkit.train.precision import Precision

PHASES = ("data", "forward", "backward", "optimizer")


class NonFiniteLoss(Exception):
    """The running loss became NaN/inf by step `step` (0-based, global); the loop turns it into an error line."""

    def __init__(self, step: int, lr: float):
        super().__init__(f"non-finite loss by step {step}")
        self.step, self.lr = step, lr


class RunningSums:
    """Loss sum, correct count and images seen over an epoch, kept on the device until the epoch ends."""

    def __init__(self, device: torch.device, partial: dict | None = None):
        partial = partial or {"loss_sum": 0.0, "correct": 0, "seen": 0}
        self.loss_sum = torch.tensor(partial["loss_sum"], device=device, dtype=torch.float64)
        self.correct = torch.tensor(partial["correct"], device=device)
        self.seen = partial["seen"]

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss_sum += loss.detach().double() * y.shape[0]
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.seen += y.shape[0]

    def finite(self) -> bool:
        return bool(torch.isfinite(self.loss_sum))

    def to_dict(self) -> dict:
        return {"loss_sum": float(self.loss_sum), "correct": int(self.correct), "seen": int(self.seen)}


class TrainStep:
    """Forward, loss, NaN check, backward and optimizer for one batch; `schedule(step)` gives the lr."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        precision: Precision,
        schedule: Callable[[int], float],
        label_smoothing: float = 0.0,
        lookahead: Lookahead | None = None,
    ):
        self.model, self.optimizer, self.precision = model, optimizer, precision
        self.schedule, self.label_smoothing, self.lookahead = schedule, label_smoothing, lookahead
        self.check_every = 1 if precision.device.type == "cpu" else 50

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, step: int, sums: RunningSums, mark: Callable[[str], None] | None = None
    ) -> float:
        """Train on (x, y) as global step `step`; returns the lr it used. Raises NonFiniteLoss."""
        lr = self.schedule(step)
        set_lr(self.optimizer, lr)
        with self.precision.autocast():
            logits = self.model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        sums.add(loss, logits, y)
        if (step + 1) % self.check_every == 0 and not sums.finite():
            raise NonFiniteLoss(step, lr)
        if mark is not None:
            mark("forward")
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.backward(loss)
        if mark is not None:
            mark("backward")
        self.precision.optimizer_step(self.optimizer)
        if self.lookahead is not None:
            self.lookahead.after_step(step + 1)
        if mark is not None:
            mark("optimizer")
        return lr


def weights_finite(model: nn.Module) -> bool:
    """True when every parameter and buffer is finite (the loss check cannot see the last update)."""
    with torch.no_grad():
        flags = [torch.isfinite(t).all() for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True
