"""DDP under torchrun: detect its environment, start the process group, wrap the model.

`torchrun --nproc-per-node N -m toolkit train ...` sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR; nothing
else is needed. nccl on CUDA, gloo on CPU. The batch size in the config is the global batch: each rank
trains on batch_size / world_size images per step, so results do not depend on the process count.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from toolkit.core.device import pick_device


@dataclass
class DistContext:
    enabled: bool = False
    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids)

    def all_reduce_sums(self, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> tuple[float, int, int]:
        """Training-set sums over all ranks, as Python numbers."""
        t = torch.stack(
            [
                loss_sum.double(),
                correct.double(),
                torch.tensor(float(seen), device=loss_sum.device, dtype=torch.float64),
            ]
        )
        if self.enabled:
            backend_dev = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
            t = t.to(backend_dev)
            dist.all_reduce(t)
        loss, corr, n = t.tolist()
        return loss, int(corr), int(n)

    def broadcast_object(self, obj):
        """Rank 0's `obj` on every rank (a picklable value); `obj` itself in a plain process."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @contextlib.contextmanager
    def guard(self):
        try:
            yield
        finally:
            if self.enabled and dist.is_initialized():
                dist.destroy_process_group()


def setup(device_name: str = "auto") -> DistContext:
    """A DistContext from torchrun's environment; a disabled one in a plain process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(True, rank, world, device)
