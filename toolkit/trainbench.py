"""Training-step timing: the seed tutorial's loop against the toolkit's, on the same images.

The seed loop is reproduced as the tutorial runs it: torchvision's CIFAR10 item path (HWC uint8 ->
PIL.Image -> ToTensor) behind a DataLoader with batch 64 and shuffle, and the default Adam. The toolkit
loop is the one `toolkit train` runs (tensor-resident batches, fused optimizer, optional AMP and
channels_last). Both time whole steps, data included, after a warm-up, with the device synchronized.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace
from typing import Iterator

import torch

from toolkit.config import TrainConfig
from toolkit.data import ImageSet
from toolkit.device import synchronize
from toolkit.loader import TensorLoader
from toolkit.models import create_model
from toolkit.optim import make_optimizer
from toolkit.speed import SpeedSetup, tune_cpu_allocator


@dataclass
class StepTiming:
    name: str
    batch_size: int
    step_seconds: list[float]  # one entry per timed step

    @property
    def img_per_s(self) -> float:
        """Throughput over all timed steps (total images / total time)."""
        return self.batch_size * len(self.step_seconds) / sum(self.step_seconds)

    @property
    def cv(self) -> float:
        s = self.step_seconds
        return statistics.stdev(s) / statistics.mean(s) if len(s) > 1 else 0.0

    def to_dict(self) -> dict:
        return {"name": self.name, "batch_size": self.batch_size, "steps": len(self.step_seconds),
                "img_per_s": self.img_per_s, "median_step_ms": 1e3 * statistics.median(self.step_seconds),
                "cv": self.cv}


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


def _cycle(loader) -> Iterator:
    while True:
        yield from loader


def _time_steps(name: str, batches: Iterator, step, batch_size: int, steps: int, warmup: int,
                device: torch.device) -> StepTiming:
    times = []
    for i in range(warmup + steps):
        synchronize(device)
        t0 = time.perf_counter()
        x, y = next(batches)  # data time counts: it is part of what a training step costs
        step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return StepTiming(name, batch_size, times)


def time_seed_loop(data: ImageSet, *, model: str = "tutorial-cnn", batch_size: int = 64, steps: int = 20,
                   warmup: int = 3, device: str = "cpu", seed: int = 0) -> StepTiming:
    """The tutorial's loop: DataLoader(PIL + ToTensor), default Adam(lr=1e-3), CrossEntropyLoss."""
    dev = torch.device(device)
    torch.manual_seed(seed)
    net = create_model(model).to(dev).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(SeedStyleCIFAR(data), batch_size=batch_size, shuffle=True)

    def step(x, y):
        opt.zero_grad()
        loss = criterion(net(x), y)
        loss.backward()
        opt.step()

    return _time_steps("seed loop", _cycle(loader), step, batch_size, steps, warmup, dev)


def time_toolkit_loop(data: ImageSet, *, model: str = "tutorial-cnn", batch_size: int = 64, steps: int = 20,
                      warmup: int = 3, device: str = "cpu", seed: int = 0, amp: str = "off",
                      channels_last: bool = False, compile: bool = False, name: str | None = None) -> StepTiming:
    """The loop `toolkit train` runs, with the model's recipe optimizer (fused where available)."""
    dev = torch.device(device)
    if dev.type == "cpu":
        tune_cpu_allocator()  # as `toolkit train` does
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

    def step(x, y):
        speed.step(step_model, opt, x, y, cfg.label_smoothing)

    label = name or "toolkit loop" + "".join(
        f" {s}" for s, on in (("amp-" + amp, amp != "off"), ("channels_last", channels_last),
                              ("compiled", speed.compiled)) if on)
    return _time_steps(label, batches(), step, batch_size, steps, warmup, dev)

