"""A tensor-resident batch loader: the whole uint8 set lives on the training device.

Per-image PIL decoding + ToTensor in a DataLoader costs about a third of a CPU training step for the
tutorial CNN; slicing one resident tensor and converting/augmenting the whole batch at once costs almost
nothing, on CPU and GPU alike. Randomness is drawn from a generator seeded by (seed, epoch, batch), so a
run resumed mid-epoch sees exactly the batches it would have seen, and DDP ranks agree on the permutation.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from toolkit.data.imageset import ImageSet


def _generator(*keys: int) -> torch.Generator:
    # A cheap, collision-free mix of the keys; the CPU generator keeps results identical on every device.
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


def draw_crop_flip(n: int, padding: int, g: torch.Generator) -> torch.Tensor:
    """(n, 3) int64 of per-image (dy, dx, flip) for `random_crop_flip`, drawn on the CPU generator."""
    shifts = torch.randint(0, 2 * padding + 1, (n, 2), generator=g)
    flips = (torch.rand(n, generator=g) < 0.5).long()[:, None]
    return torch.cat([shifts, flips], dim=1)


def random_crop_flip(x: torch.Tensor, padding: int, params: torch.Tensor, pad_mode: str = "zeros") -> torch.Tensor:
    """Batch-wise RandomCrop(size, padding) then RandomHorizontalFlip, on x's device (any dtype).

    pad_mode "zeros" fills the border with 0 (torchvision's RandomCrop); "reflect" mirrors the image at its
    edge without repeating it (F.pad's reflect), computed as source indices so uint8 images need no copy.
    """
    b, c, h, w = x.shape
    dev = x.device
    params = params.to(dev)
    if padding > 0:
        rows = params[:, 0:1] + torch.arange(h, device=dev) - padding  # source rows, may fall outside
        cols = params[:, 1:2] + torch.arange(w, device=dev) - padding
        batch = torch.arange(b, device=dev)[:, None, None, None]
        chan = torch.arange(c, device=dev)[None, :, None, None]
        if pad_mode == "reflect":
            rows, cols = _reflect(rows, h), _reflect(cols, w)
            x = x[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
        else:
            padded = F.pad(x, (padding, padding, padding, padding))
            x = padded[batch, chan, (rows + padding)[:, None, :, None], (cols + padding)[:, None, None, :]]
    flip = params[:, 2].bool()[:, None, None, None]
    return torch.where(flip, x.flip(3), x)


def _reflect(i: torch.Tensor, size: int) -> torch.Tensor:
    i = torch.where(i < 0, -i, i)
    return torch.where(i > size - 1, 2 * (size - 1) - i, i)


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 images (N, C, H, W) to the network's float input: pixel / 255, then (x - mean) / std per channel.

    The one definition of the input for training, evaluation, export checks and predict. Divide (not multiply
    by 1/255) so the values match torchvision's ToTensor bit for bit. `mean`, `std`: per-channel sequences,
    or tensors already shaped (1, C, 1, 1).
    """
    mean = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255 - mean) / std


class TensorLoader:
    """Yields normalised float batches (x, y) from an ImageSet copied once to `device`.

    With `world_size > 1` every rank walks the same global permutation and takes its contiguous share of
    each global batch, so the ranks together see exactly the batches one process would see.
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        augment: bool = False,
        crop_padding: int = 4,
        crop_pad_mode: str = "zeros",
        flip: str = "random",
        mean: tuple[float, ...] = (0.0, 0.0, 0.0),
        std: tuple[float, ...] = (1.0, 1.0, 1.0),
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by world size {world_size}")
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle, self.augment, self.crop_padding = shuffle, augment, crop_padding
        self.crop_pad_mode = crop_pad_mode
        # "alternate" (airbench): every image gets one random orientation, then all flip every other epoch.
        self.base_flips = (
            (torch.rand(len(data), generator=_generator(seed, 7919)) < 0.5) if flip == "alternate" else None
        )
        self.seed, self.drop_last, self.channels_last = seed, drop_last, channels_last
        self.rank, self.world_size = rank, world_size
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1)

    def pixels(self, x) -> torch.Tensor:
        """uint8 pixels on the device: a streamed set's rows (imagefolder.FileImages) are decoded here."""
        return x if isinstance(x, torch.Tensor) else x.decode().to(self.device)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        x = normalise(self.pixels(x), self.mean, self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def epoch(self, epoch: int = 0, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of `epoch`, starting at batch index `start_batch` (for resuming mid-epoch)."""
        n = self.num_samples
        order_cpu = torch.randperm(n, generator=_generator(self.seed, epoch)) if self.shuffle else torch.arange(n)
        order = order_cpu.to(self.device)
        local = self.batch_size // self.world_size
        for i in range(start_batch, len(self)):
            batch = slice(i * self.batch_size, (i + 1) * self.batch_size)
            mine = slice(self.rank * local, (self.rank + 1) * local) if self.world_size > 1 else slice(None)
            idx = order[batch][mine]
            x = self.pixels(self.images[idx])
            if self.augment:
                # Drawn for the whole global batch, then sliced: every rank count gives the same crops.
                params = draw_crop_flip(
                    min(self.batch_size, n - i * self.batch_size), self.crop_padding, _generator(self.seed, epoch, i)
                )
                if self.base_flips is not None:
                    params[:, 2] = (self.base_flips[order_cpu[batch]] ^ bool(epoch % 2)).long()
                x = random_crop_flip(x, self.crop_padding, params[mine], self.crop_pad_mode)
            yield self.to_float(x), self.labels[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)
