"""Your own images: an ImageFolder tree (made here from real CIFAR test images, and a synthetic 3-class set of
odd sizes) trains, exports and predicts; bad files and bad layouts are one line naming them."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.test_cli_train import assert_one_line_error
from toolkit.cli import app
from toolkit.data import imagefolder, load_dataset
from toolkit.data.decode import load_image
from toolkit.data.imagefolder import channel_stats, read_split, write_split

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
TINY = "tests.own_models:tiny"
FAST = ("--model", TINY, "--batch-size", "32", "--epochs", "1", "--progress", "none")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(autouse=True)
def children_import_tests(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


@pytest.fixture(scope="module")
def cifar_pngs(real_cifar_dir, tmp_path_factory):
    """400 train and 200 test CIFAR-10 test-set images written as PNGs in class folders, and their source."""
    data = load_dataset("cifar10", False, real_cifar_dir, limit=600)
    root = tmp_path_factory.mktemp("cifar-pngs")
    train = type(data)(data.name, data.images[:400], data.labels[:400], data.classes)
    test = type(data)(data.name, data.images[400:], data.labels[400:], data.classes)
    write_split(train, root, "train")
    write_split(test, root, "test")
    return root, train, test


def test_cifar_as_pngs_reads_back_bit_exact_with_its_classes_and_statistics(cifar_pngs):
    root, train, _ = cifar_pngs
    got = read_split(root, "train", None)
    assert got.classes == train.classes and got.image_size == 32
    order = torch.argsort(train.labels, stable=True)  # files are read class by class, in index order
    assert torch.equal(got.images, train.images[order]) and torch.equal(got.labels, train.labels[order])
    mean, std = channel_stats(got.images)
    x = train.images.double() / 255
    assert np.allclose(mean, x.mean(dim=(0, 2, 3)).numpy(), atol=1e-6)
    assert np.allclose(std, x.std(dim=(0, 2, 3), unbiased=False).numpy(), atol=1e-6)
    assert got.info["files"] == 400 and got.info["skipped"] == [] and got.info["resize"] == "center-crop"


def test_parallel_decoding_gives_the_same_tensor(cifar_pngs, monkeypatch):
    root, _, _ = cifar_pngs
    serial = read_split(root, "train", None)
    monkeypatch.setattr(imagefolder, "PARALLEL_FROM", 1)
    monkeypatch.setattr(imagefolder, "CHUNK", 64)
    assert torch.equal(read_split(root, "train", None).images, serial.images)


def test_a_model_trained_on_an_image_folder_predicts_its_pngs_as_eager_does(cifar_pngs, tmp_path):
    root, _, test = cifar_pngs
    r = run("train", *FAST, "--dataset", "imagefolder", "--data-dir", root, "--out", tmp_path, "--run-name", "f")
    assert r.exit_code == 0, r.output
    run_dir = tmp_path / "f"
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["classes"] == list(test.classes) and ckpt["input"]["resize"] == "center-crop"
    assert ckpt["input"]["mean"] == list(channel_stats(read_split(root, "train", None).images)[0])  # not CIFAR's
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["data_provenance"]["images"] == 400 and summary["dataset"] == "imagefolder"
    assert run("export", run_dir, "--format", "onnx", "--model", TINY).exit_code == 0
    r = run("verify", run_dir, "--runtime", "onnxruntime", "--model", TINY)  # on the folder's test/ split
    assert r.exit_code == 0, r.output
    assert json.loads((run_dir / "parity.json").read_text())["samples"] == 200
    r = run("predict", root / "test", "--run", run_dir, "--runtime", "onnxruntime", "--json", "--top-k", "1")
    assert r.exit_code == 0, r.output
    answers = {Path(p["file"]).name: p["top"][0]["class"] for p in map(json.loads, r.stdout.splitlines())}
    from toolkit.data import normalise
    from toolkit.run.checkpoint import model_from_checkpoint

    net = model_from_checkpoint(ckpt, model=TINY)
    with torch.no_grad():
        logits = net(normalise(test.images, ckpt["input"]["mean"], ckpt["input"]["std"]))
    top2 = logits.topk(2, dim=1)
    clear = (top2.values[:, 0] - top2.values[:, 1]) > 1e-4  # a near-tie may flip between runtimes, not a bug
    assert int(clear.sum()) >= 150
    for i in torch.nonzero(clear).flatten().tolist():
        name = f"{i:05d}.png"
        assert answers[name] == test.classes[int(top2.indices[i, 0])], name


def make_shapes_set(root: Path, sizes=((48, 48),), per_class: int = 12, splits=("train", "test")) -> Path:
    """A synthetic 3-class set: a red, green or blue square on grey, at the given (w, h) sizes."""
    rng = np.random.default_rng(0)
    for split in splits:
        for c, name in enumerate(("red", "green", "blue")):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                w, h = sizes[i % len(sizes)]
                pixels = rng.integers(90, 140, (h, w, 3), dtype=np.uint8)
                pixels[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4, c] = 250
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def test_images_of_any_size_are_centre_cropped_to_image_size_and_predict_does_the_same(tmp_path):
    root = make_shapes_set(tmp_path / "shapes", sizes=((60, 48), (48, 90), (100, 100), (48, 48)),
                           splits=("train", "val", "test"))  # fmt: skip
    r = run("train", *FAST, "--dataset", "imagefolder", "--data-dir", root, "--out", tmp_path)
    assert_one_line_error(r, "the images differ in size", "--image-size")
    r = run("train", *FAST, "--dataset", "imagefolder", "--data-dir", root, "--image-size", "48", "--out", tmp_path,
            "--run-name", "s")  # fmt: skip
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "s" / "metrics.jsonl").read_text().splitlines()[0])
    assert "val_acc" in metrics  # val/ is the validation set
    # The decoder's centre crop: the shorter side to 48, then the middle 48x48 (Pillow bicubic).
    img = Image.open(root / "train" / "red" / "1.png").convert("RGB")  # 48x90
    ref = np.asarray(img.resize((48, 90), Image.Resampling.BICUBIC).crop((0, 21, 48, 69)))
    assert torch.equal(load_image(root / "train" / "red" / "1.png", (48, 48), "center-crop"),
                       torch.from_numpy(ref.copy()).permute(2, 0, 1))  # fmt: skip
    assert run("export", tmp_path / "s", "--format", "onnx", "--model", TINY).exit_code == 0
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["classes"] == ["blue", "green", "red"] and manifest["input"]["shape"] == [3, 48, 48]
    assert manifest["input"]["resize"] == "center-crop"


def bad_files(folder: Path) -> dict[str, bytes]:
    png = folder / "red" / "0.png"
    good = png.read_bytes()
    files = {
        "empty.png": b"",
        "corrupt.png": bytes(range(256)) * 4,
        "truncated.png": good[: len(good) // 2],
        "notes.txt": b"not an image\n",
    }
    for name, data in files.items():
        (folder / "green" / name).write_bytes(data)
    return files


def test_unreadable_files_fail_by_name_or_are_skipped_and_recorded(tmp_path):
    root = make_shapes_set(tmp_path / "shapes")
    bad = bad_files(root / "train")
    grey16 = (np.arange(48 * 48, dtype=np.uint16).reshape(48, 48) * 28).astype(np.uint16)
    Image.fromarray(grey16).save(root / "train" / "blue" / "grey16.png")
    Image.new("CMYK", (48, 48), (0, 255, 255, 0)).save(root / "train" / "red" / "cmyk.jpg")
    r = run("train", *FAST, "--dataset", "imagefolder", "--data-dir", root, "--out", tmp_path / "out")
    assert_one_line_error(r, "4 of 42 files", "--on-bad-image skip", "empty.png")
    assert not (tmp_path / "out").exists()
    r = run("train", *FAST, "--dataset", "imagefolder", "--data-dir", root, "--on-bad-image", "skip",
            "--out", tmp_path / "out", "--run-name", "k")  # fmt: skip
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "out" / "k" / "summary.json").read_text())["data_provenance"]
    assert info["files"] == 42 and info["images"] == 38
    assert sorted(Path(line.split(":")[0]).name for line in info["skipped"]) == sorted(bad)
    converted = " ".join(info["converted"])
    assert "grey16.png: 16-bit grey" in converted and "cmyk.jpg: CMYK" in converted


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (lambda r: _only(r / "train", ()), "no class folders"),
        (lambda r: _only(r / "train", ("red",)), "only one class (red)"),
        (
            lambda r: (r / "test" / "purple").mkdir() or (r / "test" / "purple" / "0.png").write_bytes(b""),
            "not in train/: purple",
        ),
        (lambda r: _only(r / "test", ("red", "green")), "missing: blue"),
        (lambda r: [f.unlink() for f in (r / "train" / "blue").iterdir()], "blue: no files"),
        (lambda r: _only(r, ()), "no train/ folder"),
    ],
    ids=["no-classes", "one-class", "extra-test-class", "missing-test-class", "empty-class", "no-train"],
)
def test_a_folder_that_cannot_train_is_one_line(tmp_path, damage, fragment):
    root = make_shapes_set(tmp_path / "shapes")
    damage(root)
    r = run("train", *FAST, "--dataset", "imagefolder", "--data-dir", root, "--out", tmp_path / "out")
    assert_one_line_error(r, fragment)
    assert not (tmp_path / "out").exists()


def _only(folder: Path, keep: tuple[str, ...]) -> None:
    import shutil

    for p in folder.iterdir():
        if p.name not in keep:
            shutil.rmtree(p)


def test_image_size_the_model_cannot_take_is_one_line(tmp_path):
    root = make_shapes_set(tmp_path / "shapes")
    r = run("train", "--model", "tests.own_models:only_32", "--epochs", "1", "--progress", "none", "--dataset",
            "imagefolder", "--data-dir", root, "--out", tmp_path / "out")  # fmt: skip
    assert_one_line_error(r, "cannot take 3x48x48 input", "--image-size")
    assert not (tmp_path / "out").exists()


def test_a_set_too_large_for_memory_is_streamed_and_trains_exactly_as_in_memory(tmp_path, monkeypatch):
    root = make_shapes_set(tmp_path / "shapes", per_class=30)
    args = ("--dataset", "imagefolder", "--data-dir", root, "--val-size", "9", "--seed", "3", "--amp", "off",
            "--no-channels-last", "--no-compile", "--out", tmp_path)  # fmt: skip
    assert run("train", *FAST, *args, "--run-name", "memory").exit_code == 0
    in_memory = read_split(root, "train", None)
    monkeypatch.setattr(imagefolder, "available_memory", lambda: 100_000)  # 90 images at 48x48 take 622 kB
    monkeypatch.setattr(imagefolder, "PARALLEL_FROM", 1)  # the checking pass and each batch in forked workers
    streamed = read_split(root, "train", None)
    assert isinstance(streamed.images, imagefolder.FileImages) and streamed.info["streamed"]
    assert torch.equal(streamed.images[torch.tensor([5, 0, 77])].decode(), in_memory.images[[5, 0, 77]])
    assert np.allclose(channel_stats(streamed.images), channel_stats(in_memory.images), atol=2e-6)
    r = run("train", *FAST, *args, "--run-name", "streamed")
    assert r.exit_code == 0, r.output
    a, b = (torch.load(tmp_path / n / "checkpoint.pt", weights_only=True) for n in ("memory", "streamed"))
    assert a["input"]["mean"] == pytest.approx(b["input"]["mean"], abs=2e-6)
    for k, v in a["state_dict"].items():  # the same batches, crops and flips: the same weights
        assert torch.allclose(v.float(), b["state_dict"][k].float(), atol=1e-5), k
    assert json.loads((tmp_path / "streamed" / "summary.json").read_text())["data_provenance"]["streamed"] is True
