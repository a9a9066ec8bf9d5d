import os
import pickle

import numpy as np
import pytest
import torch

from tests.conftest import make_batch, write_pickle
from toolkit.core.errors import DataError
from toolkit.data import cifar as data_mod
from toolkit.data import find_or_download, load_dataset, read_cifar, synthetic


def test_reader_reads_planes_in_rgb_order(fake_cifar):
    batch = make_batch(10_000, seed=3)
    batch["data"][5, :1024] = 200  # red plane of image 5
    batch["data"][5, 1024:2048] = 100  # green
    batch["data"][5, 2048:] = 7  # blue
    write_pickle(fake_cifar / "test_batch", batch)
    s = read_cifar(fake_cifar, train=False)
    assert s.images.shape == (10_000, 3, 32, 32) and s.images.dtype == torch.uint8
    assert s.labels.dtype == torch.int64 and s.labels.tolist() == batch["labels"]
    assert s.images[5, 0].unique().tolist() == [200]
    assert s.images[5, 1].unique().tolist() == [100]
    assert s.images[5, 2].unique().tolist() == [7]
    assert s.classes == tuple(f"c{i}" for i in range(10))


def test_data_dir_may_be_the_folder_itself(fake_cifar):
    assert find_or_download("cifar10", fake_cifar.parent, download=False) == fake_cifar
    assert find_or_download("cifar10", fake_cifar, download=False) == fake_cifar


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b.pop("data"), "key 'data' is missing"),
        (lambda b: b.update(data=b["data"][:, :3000]), "rows of 3072"),
        (lambda b: b.update(data=b["data"].astype(np.float32)), "uint8"),
        (lambda b: b.update(labels=[11] * 10_000), "labels must lie in 0..9"),
        (lambda b: b.update(labels=b["labels"][:-1]), "integer labels"),
        (lambda b: b.update(data=b["data"][:9000], labels=b["labels"][:9000]), "expected 10000 rows"),
    ],
)
def test_reader_names_file_and_problem(fake_cifar, mutate, message):
    batch = make_batch(10_000)
    mutate(batch)
    write_pickle(fake_cifar / "test_batch", batch)
    with pytest.raises(DataError, match=message) as err:
        read_cifar(fake_cifar, train=False)
    assert "test_batch" in str(err.value)


def test_truncated_and_foreign_files(fake_cifar):
    raw = (fake_cifar / "test_batch").read_bytes()
    (fake_cifar / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="test_batch: not a readable CIFAR pickle"):
        read_cifar(fake_cifar, train=False)
    write_pickle(fake_cifar / "test_batch", [1, 2, 3])
    with pytest.raises(DataError, match="expected a dict"):
        read_cifar(fake_cifar, train=False)


def test_missing_batch_file(fake_cifar):
    with pytest.raises(DataError, match="data_batch_1: file is missing"):
        read_cifar(fake_cifar, train=True)


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_unpickler_refuses_code(fake_cifar):
    with open(fake_cifar / "test_batch", "wb") as f:
        pickle.dump({"data": _Boom()}, f)
    with pytest.raises(DataError, match="is not allowed in a CIFAR pickle"):
        read_cifar(fake_cifar, train=False)


def test_missing_set_offline_says_what_to_do(tmp_path, monkeypatch):
    """torchvision's own download fails as it does offline; our wrapper turns that into advice."""
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(
        DataError,
        match=r"cifar10 is not in .* and could not be downloaded \(URLError: .*name "
        r"resolution.*copy the official cifar-10-batches-py/ folder there",
    ):
        load_dataset("cifar10", True, tmp_path)
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("cifar10", True, tmp_path, download=False)


def test_synthetic_is_deterministic_and_shares_templates():
    a, b = synthetic(64, seed=1), synthetic(64, seed=1)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    test = synthetic(64, train=False, seed=1)
    assert not torch.equal(a.images, test.images)
    # Same class, different splits: closer to each other than to other classes' images.
    mean_of = lambda s, c: s.images[s.labels == c].float().mean(0)  # noqa: E731
    same = (mean_of(a, 0) - mean_of(test, 0)).abs().mean()
    other = (mean_of(a, 0) - mean_of(test, 1)).abs().mean()
    assert same < other / 2


@pytest.mark.real_data
def test_real_cifar10_structure(real_cifar_dir):
    train = load_dataset("cifar10", True, real_cifar_dir, download=False)
    test = load_dataset("cifar10", False, real_cifar_dir, download=False)
    assert len(train) == 50_000 and len(test) == 10_000
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.classes[:3] == ("airplane", "automobile", "bird")
    mean = train.images[:5000].float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor(data_mod.CIFAR10_MEAN), atol=0.01)
