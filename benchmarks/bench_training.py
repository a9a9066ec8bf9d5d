"""Tracks: one training step (batch 64) of the tutorial CNN, the seed tutorial's loop vs `toolkit train`'s.

Same synthetic images for both; the seed loop goes through PIL + ToTensor in a DataLoader with the
default Adam; ours is the TrainStep `toolkit train` calls (toolkit/train/step.py), in the set-up it runs
(tensor-resident loader, fused Adam). A round is one full step, data included, with the device synchronized
before it returns; img/s goes into extra_info.
"""

import pytest
import torch

from toolkit.bench.train_step import seed_loop, toolkit_loop
from toolkit.data import synthetic

BATCH = 64


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("loop", ["seed", "toolkit"])
def test_train_step(benchmark, loop, device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    build = seed_loop if loop == "seed" else toolkit_loop
    steps = build(synthetic(8 * BATCH), batch_size=BATCH, device=device)
    benchmark.pedantic(steps.step, rounds=8, warmup_rounds=2, iterations=1)
    benchmark.extra_info.update(
        loop=loop,
        device=device,
        batch=BATCH,
        threads=torch.get_num_threads(),
        img_per_s=BATCH / benchmark.stats.stats.mean,
    )
