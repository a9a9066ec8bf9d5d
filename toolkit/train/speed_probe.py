"""The speed policy's stopwatch: a few steps of the real TrainStep per candidate, on the run's own data.

Each candidate gets its own `prepare` (model, optimizer, loader) on the first images of the training set;
nothing of the run itself is touched (prepare reseeds, so the run starts from the same weights whatever was
timed). Steps are interleaved round-robin, one step of each candidate per round, so a change in the
machine's load falls on every candidate alike; each step is synchronized on the device and timed whole.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import torch

from toolkit.core.device import synchronize
from toolkit.core.errors import ConfigError, first_line
from toolkit.data import ImageSet
from toolkit.train import speed
from toolkit.train.config import TrainConfig
from toolkit.train.setup import Training, prepare
from toolkit.train.speed import COMPILE_ROUNDS, PROBE_STEPS, PROBE_WARMUP, Choice, SpeedDecision
from toolkit.train.step import RunningSums


class Probe:
    """Times candidates of one configuration on `images` (a training set; its first few batches are used)."""

    def __init__(self, cfg: TrainConfig, device: torch.device, images: ImageSet):
        self.cfg, self.device = cfg, device
        rounds = PROBE_WARMUP + PROBE_STEPS
        self.images = images.subset(cfg.batch_size * rounds)

    def _setup(self, choice: Choice) -> tuple[Training, Iterator]:
        cfg = replace(
            self.cfg,
            amp=choice.amp,
            channels_last=choice.channels_last,
            compile=choice.compile,
            test_eval=False,
            val_size=None,
            limit_train=None,
        )
        t = prepare(cfg, self.device, train_set=self.images, test_set=None)
        if len(t.train_loader) == 0:  # fewer images than one batch that drop_last keeps
            raise ConfigError(f"{len(self.images)} images make no batch of {cfg.batch_size} to time")
        t.step.model.train()
        return t, _forever(t.train_loader)

    def _step(self, t: Training, batches: Iterator, index: int, sums: RunningSums) -> float:
        x, y = next(batches)
        synchronize(self.device)
        start = time.perf_counter()
        t.step(x, y, index, sums)
        synchronize(self.device)
        return time.perf_counter() - start

    def time_steps(self, choices: list[Choice]) -> tuple[dict[Choice, float], dict[Choice, str]]:
        """Median seconds per step of each choice; a choice that fails to set up or run is left out, with why."""
        live, failed = {}, {}
        for c in choices:
            try:
                live[c] = (*self._setup(c), RunningSums(self.device), [])
            except Exception as exc:  # one candidate the machine cannot run is not the run's failure
                failed[c] = first_line(exc)
        for i in range(PROBE_WARMUP + PROBE_STEPS):
            for c in list(live):
                t, batches, sums, seconds = live[c]
                try:
                    seconds.append(self._step(t, batches, i, sums))
                except Exception as exc:
                    failed[c] = first_line(exc)
                    del live[c]
        return {c: statistics.median(v[3][PROBE_WARMUP:]) for c, v in live.items()}, failed

    def time_compiled(self, choice: Choice) -> speed.CompileTiming:
        """Compiled and eager steps of `choice`, one of each per round after the compiling first step, so that
        a change in the machine's load falls on both alike."""
        compiled, compiled_batches = self._setup(replace(choice, compile=True))
        eager, eager_batches = self._setup(replace(choice, compile=False))
        c_sums, e_sums = RunningSums(self.device), RunningSums(self.device)
        self._step(eager, eager_batches, 0, e_sums)  # warm-up: kernel selection, allocator growth
        first = self._step(compiled, compiled_batches, 0, c_sums)
        c_times, e_times = [], []
        for i in range(1, 1 + COMPILE_ROUNDS):
            e_times.append(self._step(eager, eager_batches, i, e_sums))
            c_times.append(self._step(compiled, compiled_batches, i, c_sums))
        step = statistics.median(c_times)
        ratios = tuple(c / e for c, e in zip(c_times, e_times, strict=True))
        return speed.CompileTiming(step, max(first - step, 0.0), statistics.median(e_times), ratios)


def decide_speed(
    cfg: TrainConfig,
    device: torch.device,
    images: ImageSet,
    steps: int,
    world_size: int = 1,
    note: Callable[[str], None] = lambda text: None,
) -> SpeedDecision:
    """speed.decide for a run of `steps` steps, timed by a Probe on `images`; `note` hears what is being timed."""
    probe = Probe(cfg, device, images)

    def time_steps(choices):
        note(f"speed: timing {len(choices)} candidates ({'; '.join(c.label for c in choices)})")
        return probe.time_steps(choices)

    def time_compiled(choice):
        note(f"speed: timing torch.compile of {choice.label} (the first step compiles)")
        return probe.time_compiled(choice)

    return speed.decide(cfg, device, steps, time_steps, time_compiled, world_size)


def _forever(loader) -> Iterator:
    epoch = 0
    while True:
        yield from loader.epoch(epoch)
        epoch += 1
