"""Training-step timing: the seed tutorial's loop against `toolkit train`'s own step, on the same images.

The seed loop is reproduced as the tutorial runs it: torchvision's CIFAR10 item path (HWC uint8 ->
PIL.Image -> ToTensor) behind a DataLoader with batch 64 and shuffle, and the default Adam. Ours is not a
copy: it is `toolkit.train.prepare` (the set-up `toolkit train` runs) and its TrainStep, called with a
`mark` hook that synchronizes the device and stamps the time at each phase boundary. Each step is split
into data / forward / backward / optimizer time after a warm-up.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from toolkit.core.device import synchronize
from toolkit.data import ImageSet
from toolkit.models import create_model
from toolkit.train import speed
from toolkit.train.config import TrainConfig
from toolkit.train.setup import batches_per_epoch, prepare, total_steps
from toolkit.train.speed_probe import decide_speed
from toolkit.train.step import PHASES, RunningSums


@dataclass
class StepTiming:
    name: str
    batch_size: int
    phases: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    images: list[int] = field(default_factory=list)  # per timed step (a last partial batch is smaller)

    @property
    def step_seconds(self) -> list[float]:
        return [sum(t) for t in zip(*self.phases.values(), strict=True)]

    @property
    def img_per_s(self) -> float:
        """Throughput over all timed steps (total images / total time)."""
        return sum(self.images) / sum(self.step_seconds)

    @property
    def cv(self) -> float:
        s = self.step_seconds
        return statistics.stdev(s) / statistics.mean(s) if len(s) > 1 else 0.0

    def to_dict(self) -> dict:
        steps = self.step_seconds
        return {
            "name": self.name,
            "batch_size": self.batch_size,
            "steps": len(steps),
            "img_per_s": self.img_per_s,
            "median_step_ms": 1e3 * statistics.median(steps),
            "cv": self.cv,
            "step_ms": [1e3 * s for s in steps],
            "phase_ms": {p: 1e3 * statistics.mean(v) for p, v in self.phases.items()},
        }


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


# step(x, y, index, mark): one training step; mark(phase) is called after forward, backward and optimizer.
StepFn = Callable[[torch.Tensor, torch.Tensor, int, Callable[[str], None] | None], None]


@dataclass
class Loop:
    """A training loop reduced to what is timed: a batch source and one step function."""

    name: str
    batch_size: int
    device: torch.device
    batches: Iterator
    train_step: StepFn
    steps_done: int = 0

    def next_batch(self):
        x, y = next(self.batches)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def step(self) -> None:
        """One full step, data included, finished on the device when it returns."""
        x, y = self.next_batch()
        self.train_step(x, y, self.steps_done, None)
        self.steps_done += 1
        synchronize(self.device)

    def time(self, steps: int, warmup: int) -> StepTiming:
        timing = StepTiming(self.name, self.batch_size)
        stamps: dict[str, float] = {}

        def mark(phase: str) -> None:
            synchronize(self.device)
            stamps[phase] = time.perf_counter()

        for i in range(warmup + steps):
            mark("start")
            x, y = self.next_batch()  # data time counts: it is part of what a training step costs
            mark("data")
            self.train_step(x, y, self.steps_done, mark)
            self.steps_done += 1
            if i >= warmup:
                previous = "start"
                for phase in PHASES:
                    timing.phases[phase].append(stamps[phase] - stamps[previous])
                    previous = phase
                timing.images.append(int(y.shape[0]))
        return timing


def _forever(epochs: Callable[[int], Iterator]) -> Iterator:
    epoch = 0
    while True:
        yield from epochs(epoch)
        epoch += 1


def seed_loop(
    data: ImageSet,
    *,
    model: str = "tutorial-cnn",
    model_args: dict | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    seed: int = 0,
) -> Loop:
    """The tutorial's loop: DataLoader(PIL + ToTensor), default Adam(lr=1e-3), CrossEntropyLoss."""
    dev = torch.device(device)
    torch.manual_seed(seed)
    net = create_model(model, len(data.classes), model_args).to(dev).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(SeedStyleCIFAR(data), batch_size=batch_size, shuffle=True)

    def train_step(x, y, index, mark):
        opt.zero_grad()
        loss = criterion(net(x), y)
        if mark:
            mark("forward")
        loss.backward()
        if mark:
            mark("backward")
        opt.step()
        if mark:
            mark("optimizer")

    return Loop("seed loop", batch_size, dev, _forever(lambda e: iter(loader)), train_step)


def toolkit_loop(
    data: ImageSet,
    *,
    model: str = "tutorial-cnn",
    model_args: dict | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    amp: str = "off",
    channels_last: bool | None = False,
    compile: bool | None = False,
    run_images: int = 50_000,
) -> Loop:
    """`toolkit train`'s own set-up and step (recipe optimizer, fused where available, lr schedule, NaN check).

    Switches left at "auto"/None are decided by the speed policy as `toolkit train` decides them, for the
    recipe's full run over `run_images` training images (the decision is cached; its timing is not counted).
    """
    dev = torch.device(device)
    cfg = TrainConfig(
        model=model,
        model_args=model_args,
        dataset=data.name if data.name != "imagefolder" else "synthetic",  # the data is given; its name sets sizes
        image_size=data.image_size if data.name in ("synthetic", "imagefolder") else None,
        batch_size=batch_size,
        amp=amp,
        channels_last=channels_last,
        compile=compile,
        device=device,
        seed=seed,
        run_name="bench",
    ).resolved()
    decision = None
    if not cfg.speed_decided:
        decision = decide_speed(cfg, dev, data, total_steps(cfg, batches_per_epoch(cfg, run_images)))
        cfg = speed.apply(cfg, decision)
    t = prepare(cfg, dev, train_set=data, test_set=data.subset(1))
    t.step.model.train()
    sums = RunningSums(dev)

    def train_step(x, y, index, mark):
        t.step(x, y, index, sums, mark)

    if decision is not None:
        name = f"toolkit default ({decision.choice.label}, {decision.how})"
    else:
        name = "toolkit" + "".join(
            f" {s}"
            for s, on in (
                ("amp-" + cfg.amp, cfg.amp != "off"),
                ("channels_last", cfg.channels_last),
                ("compiled", t.precision.compiled),
            )
            if on
        )
    return Loop(name, cfg.batch_size, dev, _forever(t.train_loader.epoch), train_step)
