"""Lookahead over all float state (airbench94): every k steps the slow copy moves toward the fast weights,
slow <- slow + (1 - d) (fast - slow), and the fast weights restart from it; the final model is the slow copy.

d = decay^k * (step / total)^3 grows from 0 (the slow copy follows the fast one) to decay^k near the end
(it averages). BatchNorm running statistics are float state too and are averaged alike.
"""

from __future__ import annotations

import torch
from torch import nn


class Lookahead:
    def __init__(self, model: nn.Module, every: int, decay: float, total_steps: int):
        self.model, self.every, self.decay, self.total = model, every, decay, max(total_steps, 1)
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def decay_at(self, steps_done: int) -> float:
        return self.decay**self.every * (steps_done / self.total) ** 3

    def after_step(self, steps_done: int) -> None:
        """Called after every optimizer step with the number of steps done so far."""
        if steps_done % self.every == 0:
            self.update(self.decay_at(steps_done))

    @torch.no_grad()
    def update(self, d: float) -> None:
        state = self.model.state_dict()
        for name, slow in self.slow.items():
            slow.lerp_(state[name], 1 - d)
            state[name].copy_(slow)

    def finish(self) -> None:
        """End of training: the model becomes the slow weights."""
        self.update(1.0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.slow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.slow[k].copy_(v)
