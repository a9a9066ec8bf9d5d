import pytest
import torch
from torchvision.transforms import functional as TF

from toolkit.data import synthetic
from toolkit.data.loader import TensorLoader, draw_crop_flip, random_crop_flip


@pytest.fixture(scope="module")
def data():
    return synthetic(100, seed=0)


def test_epoch_visits_every_sample_once_and_is_deterministic(data):
    loader = TensorLoader(data, 32, shuffle=True, seed=5)
    assert len(loader) == 4
    ys = torch.cat([y for _, y in loader.epoch(0)])
    assert ys.shape == (100,) and torch.equal(ys.sort().values, data.labels.sort().values)
    again = torch.cat([y for _, y in loader.epoch(0)])
    other = torch.cat([y for _, y in loader.epoch(1)])
    assert torch.equal(ys, again) and not torch.equal(ys, other)
    assert len(TensorLoader(data, 32, drop_last=True)) == 3


def test_to_float_matches_torchvision_to_tensor_bit_for_bit(data):
    x, _ = next(TensorLoader(data, 8).epoch(0))
    ref = torch.stack([TF.to_tensor(TF.to_pil_image(img)) for img in data.images[:8]])
    assert torch.equal(x, ref)


def test_normalisation_and_channels_last(data):
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    x, _ = next(TensorLoader(data, 8, mean=mean, std=std, channels_last=True).epoch(0))
    ref = TF.normalize(data.images[:8].float() / 255, mean, std)
    assert torch.allclose(x, ref, atol=1e-6)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_start_batch_resumes_the_same_epoch(data):
    loader = TensorLoader(data, 16, shuffle=True, augment=True, seed=2)
    full = list(loader.epoch(3))
    tail = list(loader.epoch(3, start_batch=4))
    assert len(tail) == len(full) - 4
    for (xa, ya), (xb, yb) in zip(full[4:], tail, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_crop_is_a_shift_with_zero_border_and_flip_mirrors():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8) + 1
    params = torch.tensor([[0, 4, 0], [2, 2, 1]])  # image 0: shift down 2 px... see below; image 1: centred, flipped
    out = random_crop_flip(x, 2, params)
    # Image 0: dy=0, dx=4 -> rows shifted down by 2 (zeros on top), columns shifted left by 2 (zeros right).
    assert (out[0, :, :2] == 0).all() and (out[0, :, :, 6:] == 0).all()
    assert torch.equal(out[0, :, 2:, :6], x[0, :, :6, 2:])
    assert torch.equal(out[1], x[1].flip(2))
    drawn = draw_crop_flip(1000, 4, torch.Generator().manual_seed(0))
    assert drawn[:, :2].min() == 0 and drawn[:, :2].max() == 8 and 400 < drawn[:, 2].sum() < 600


def test_ranks_split_each_global_batch_exactly(data):
    single = list(TensorLoader(data, 32, shuffle=True, augment=True, seed=1, drop_last=True).epoch(2))
    ranks = [
        list(TensorLoader(data, 32, shuffle=True, augment=True, seed=1, drop_last=True, rank=r, world_size=2).epoch(2))
        for r in range(2)
    ]
    for i, (x, y) in enumerate(single):
        assert torch.equal(torch.cat([ranks[0][i][0], ranks[1][i][0]]), x)
        assert torch.equal(torch.cat([ranks[0][i][1], ranks[1][i][1]]), y)
