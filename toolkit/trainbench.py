"""Training-step timing: the seed tutorial's loop against the toolkit's, on the same images.

The seed loop is reproduced as the tutorial runs it: torchvision's CIFAR10 item path (HWC uint8 ->
PIL.Image -> ToTensor) behind a DataLoader with batch 64 and shuffle, and the default Adam. The toolkit
loop is the one `toolkit train` runs (tensor-resident batches, fused optimizer, optional AMP and
channels_last). Each step is split into data / forward / backward / optimizer time, with the device
synchronized at every boundary so a phase's time is its own work, after a warm-up.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from toolkit.config import TrainConfig
from toolkit.data import ImageSet
from toolkit.device import synchronize
from toolkit.loader import TensorLoader
from toolkit.models import create_model
from toolkit.optim import make_optimizer
from toolkit.speed import SpeedSetup

PHASES = ("data", "forward", "backward", "optimizer")


@dataclass
class StepTiming:
    name: str
    batch_size: int
    phases: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})

    @property
    def step_seconds(self) -> list[float]:
        return [sum(t) for t in zip(*self.phases.values())]

    @property
    def img_per_s(self) -> float:
        """Throughput over all timed steps (total images / total time)."""
        return self.batch_size * len(self.step_seconds) / sum(self.step_seconds)

    @property
    def cv(self) -> float:
        s = self.step_seconds
        return statistics.stdev(s) / statistics.mean(s) if len(s) > 1 else 0.0

    def to_dict(self) -> dict:
        steps = self.step_seconds
        return {"name": self.name, "batch_size": self.batch_size, "steps": len(steps),
                "img_per_s": self.img_per_s, "median_step_ms": 1e3 * statistics.median(steps), "cv": self.cv,
                "phase_ms": {p: 1e3 * statistics.mean(v) for p, v in self.phases.items()}}


class SeedStyleCIFAR(torch.utils.data.Dataset):
    """torchvision.datasets.CIFAR10.__getitem__, minus the md5-checked file reading."""

    def __init__(self, data: ImageSet):
        from torchvision.transforms import ToTensor
        self.data = data.images.permute(0, 2, 3, 1).contiguous().numpy()  # HWC, as torchvision stores it
        self.targets = data.labels.tolist()
        self.transform = ToTensor()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        from PIL import Image
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


@dataclass
class Loop:
    """One training loop, split into the phases that are timed apart."""

    name: str
    batch_size: int
    device: torch.device
    batches: Iterator
    forward: Callable  # (x, y) -> loss
    backward: Callable  # loss -> None
    update: Callable  # () -> None

    def next_batch(self):
        x, y = next(self.batches)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def step(self) -> None:
        """One full step, data included, finished on the device when it returns."""
        x, y = self.next_batch()
        self.backward(self.forward(x, y))
        self.update()
        synchronize(self.device)

    def time(self, steps: int, warmup: int) -> StepTiming:
        timing = StepTiming(self.name, self.batch_size)

        def mark() -> float:
            synchronize(self.device)
            return time.perf_counter()

        for i in range(warmup + steps):
            t0 = mark()
            x, y = self.next_batch()  # data time counts: it is part of what a training step costs
            t1 = mark()
            loss = self.forward(x, y)
            t2 = mark()
            self.backward(loss)
            t3 = mark()
            self.update()
            t4 = mark()
            if i >= warmup:
                for phase, dt in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    timing.phases[phase].append(dt)
        return timing


def seed_loop(data: ImageSet, *, model: str = "tutorial-cnn", batch_size: int = 64, device: str = "cpu",
              seed: int = 0) -> Loop:
    """The tutorial's loop: DataLoader(PIL + ToTensor), default Adam(lr=1e-3), CrossEntropyLoss."""
    dev = torch.device(device)
    torch.manual_seed(seed)
    net = create_model(model).to(dev).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(SeedStyleCIFAR(data), batch_size=batch_size, shuffle=True)

    def forward(x, y):
        opt.zero_grad()
        return criterion(net(x), y)

    def cycle():
        while True:
            yield from loader

    return Loop("seed loop", batch_size, dev, cycle(), forward, lambda loss: loss.backward(), opt.step)


def toolkit_loop(data: ImageSet, *, model: str = "tutorial-cnn", batch_size: int = 64, device: str = "cpu",
                 seed: int = 0, amp: str = "off", channels_last: bool = False, compile: bool = False) -> Loop:
    """The loop `toolkit train` runs, with the model's recipe optimizer (fused where available)."""
    dev = torch.device(device)
    cfg = replace(TrainConfig(model=model, batch_size=batch_size, amp=amp, channels_last=channels_last,
                              compile=compile, run_name="bench"), device=device).resolved()
    torch.manual_seed(seed)
    speed = SpeedSetup(cfg, dev)
    net = speed.prepare_model(create_model(model).to(dev)).train()
    opt, _ = make_optimizer(net, cfg, dev)
    step_model = speed.wrap_for_training(net)
    loader = TensorLoader(data, batch_size, device=dev, shuffle=True, augment=cfg.augment,
                          channels_last=channels_last, drop_last=True, seed=seed)

    def batches():
        epoch = 0
        while True:
            yield from loader.epoch(epoch)
            epoch += 1

    def forward(x, y):
        opt.zero_grad(set_to_none=True)
        with speed.autocast(dev, amp):
            return F.cross_entropy(step_model(x), y, label_smoothing=cfg.label_smoothing)

    def backward(loss):
        (speed.scaler.scale(loss) if speed.scaler else loss).backward()

    def update():
        if speed.scaler:
            speed.scaler.step(opt)
            speed.scaler.update()
        else:
            opt.step()

    name = "toolkit" + "".join(f" {s}" for s, on in (("amp-" + amp, amp != "off"),
                                                      ("channels_last", channels_last),
                                                      ("compiled", speed.compiled)) if on)
    return Loop(name, batch_size, dev, batches(), forward, backward, update)


def time_seed_loop(data: ImageSet, *, steps: int = 20, warmup: int = 3, **kwargs) -> StepTiming:
    return seed_loop(data, **kwargs).time(steps, warmup)


def time_toolkit_loop(data: ImageSet, *, steps: int = 20, warmup: int = 3, **kwargs) -> StepTiming:
    return toolkit_loop(data, **kwargs).time(steps, warmup)
