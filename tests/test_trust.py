"""The verdict cannot be fooled: forged low-precision files fail on their logits, modified files fail unless
allowed, predict refuses them too, and manifest.json is validated before anything trusts a field of it."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import copy_run, tamper_int8_scale, tamper_largest_initializer, tiny_run
from tests.test_cli_train import assert_one_line_error
from toolkit.cli import app
from toolkit.core.files import temp_prefix
from toolkit.data.decode import load_image
from toolkit.verify.parity import Thresholds

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _entries(run_dir):
    return {e["format"]: e for e in json.loads((run_dir / "parity.json").read_text())["entries"]}


def test_honest_low_precision_files_pass_their_logit_gates(deployed, tmp_path):
    r = run("verify", copy_run(deployed, tmp_path), "--format", "onnx-int8", "--format", "onnx-fp16", "--runtime",
            "onnxruntime")  # fmt: skip
    entries = _entries(tmp_path / "run")
    t = Thresholds()
    assert entries["onnx-int8"]["mean_rel"] < t.int8_mean_rel / 2, entries["onnx-int8"]  # with room
    assert entries["onnx-fp16"]["max_rel"] < t.fp16_max_rel / 2, entries["onnx-fp16"]
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    "forge, fmt, fragment",
    [
        (tamper_int8_scale, "onnx-int8", "int8 mean |Δlogit| is"),
        (tamper_largest_initializer, "onnx-fp16", "fp16 max |Δlogit| is"),
    ],
)
def test_a_forged_low_precision_file_fails_on_its_logits(run_copy, forge, fmt, fragment):
    forge(run_copy / f"model-{fmt.removeprefix('onnx-')}.onnx")
    # Judged on its figures alone (the hash check is set aside), it still fails, by its logit gate.
    r = run("verify", run_copy, "--format", fmt, "--runtime", "onnxruntime", "--allow-modified")
    assert r.exit_code == 1 and fragment in r.stderr and "of the logit scale" in r.stderr, r.output
    assert "not the file export checked" not in r.stderr and "judged on its figures (--allow-modified)" in r.stdout
    # Without --allow-modified the changed hash fails it as well.
    r = run("verify", run_copy, "--format", fmt, "--runtime", "onnxruntime")
    assert r.exit_code == 1 and "is not the file export checked" in r.stderr and fragment in r.stderr


def _rewrite_doc_string(path):
    """The same graph and weights, another sha256: a modification verify's figures alone cannot see."""
    import onnx

    model = onnx.load(str(path))
    model.doc_string = "edited after export"
    onnx.save(model, str(path))


def test_a_modified_file_fails_verify_unless_allowed(run_copy):
    _rewrite_doc_string(run_copy / "model.onnx")
    r = run("verify", run_copy, "--format", "onnx", "--runtime", "onnxruntime")
    assert r.exit_code == 1, r.output
    assert "onnxruntime/cpu: model.onnx is not the file export checked" in r.stderr and "--allow-modified" in r.stderr
    r = run("verify", run_copy, "--format", "onnx", "--runtime", "onnxruntime", "--allow-modified")
    assert r.exit_code == 0, r.output
    assert "model.onnx was modified after export; judged on its figures (--allow-modified)" in r.stdout


def _png(tmp_path, name="x.png"):
    img = tmp_path / name
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(img)
    return img


def test_predict_refuses_a_modified_file_unless_allowed(run_copy, tmp_path):
    img = _png(tmp_path)
    tamper_int8_scale(run_copy / "model-int8.onnx")
    assert_one_line_error(
        run("predict", img, "--run", run_copy, "--format", "onnx-int8"),
        "model-int8.onnx differs from the file export checked",
        "--allow-modified",
    )
    r = run("predict", img, "--run", run_copy, "--format", "onnx-int8", "--allow-modified")
    assert r.exit_code == 0 and "warning: model-int8.onnx differs" in r.stderr, r.output


def _edit_manifest(run_dir, edit):
    path = run_dir / "manifest.json"
    m = json.loads(path.read_text())
    edit(m)
    path.write_text(json.dumps(m))


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: m["input"].update(std=[0.2, 0, 0.2]), "'input.std' must be 3 numbers > 0"),
        (lambda m: m["input"].update(mean=[0.5, 0.5]), "'input.mean' must be 3 finite numbers"),
        (lambda m: m["input"].update(shape="abc"), "'input.shape' must be [3, height, width]"),
        (lambda m: m["input"].update(shape=[3, 100000, 100000]), "'input.shape' must be [3, height, width]"),
        (lambda m: m["input"].update(layout="NHWC"), "'input.layout' must be one of NCHW"),
        (lambda m: m.pop("input"), "'input' must be an object"),
        (lambda m: m.update(classes=["a", "b", "c"]), "'classes' must be a list of 10 class names"),
        (lambda m: m.update(num_classes="ten"), "'num_classes' must be a positive integer"),
    ],
)
def test_a_bad_manifest_is_one_line_naming_the_key(run_copy, tmp_path, edit, fragment):
    _edit_manifest(run_copy, edit)
    assert_one_line_error(run("predict", _png(tmp_path), "--run", run_copy), "manifest.json", fragment)
    assert_one_line_error(run("verify", run_copy, "--format", "onnx", "--runtime", "onnxruntime"), fragment)
    assert_one_line_error(run("bench", run_copy, "--no-train", "--batch-sizes", "1", "--rounds", "2"), fragment)


def test_classes_must_match_the_model_outputs(run_copy, tmp_path):
    _edit_manifest(run_copy, lambda m: m.update(num_classes=3, classes=["a", "b", "c"]))
    r = run("predict", _png(tmp_path), "--run", run_copy)
    assert_one_line_error(r, "'classes' is", "but the checkpoint every file was exported from says")
    (run_copy / "checkpoint.pt").unlink()  # shipped without it: the file's own outputs still give it away
    assert_one_line_error(run("predict", _png(tmp_path), "--run", run_copy), "names 3 classes but model.onnx gives")


@pytest.mark.parametrize("runtime", ["torchscript", "onnxruntime"])
def test_an_input_spec_the_files_were_not_exported_for_is_refused(run_copy, tmp_path, runtime):
    # An input of 64x64 made TorchScript answer other probabilities (exit 0) and onnxruntime print a traceback;
    # 4096x4096 decoded every image at that size first. The checkpoint every file came from says what is right.
    for shape in ([3, 64, 64], [3, 4096, 4096]):
        _edit_manifest(run_copy, lambda m, shape=shape: m["input"].update(shape=shape))
        r = run("predict", _png(tmp_path), "--run", run_copy, "--runtime", runtime)
        assert_one_line_error(r, "'input.shape' is", "but the checkpoint every file was exported from says [3, 32, 32]")
    _edit_manifest(run_copy, lambda m: m["input"].update(shape=[3, 32, 32], mean=[0.5, 0.5, 0.5]))
    assert_one_line_error(run("verify", run_copy, "--runtime", runtime), "'input.mean' is [0.5, 0.5, 0.5]")
    (run_copy / "checkpoint.pt").unlink()  # no checkpoint to hold it to: the runtime's refusal, in one line
    _edit_manifest(run_copy, lambda m: m["input"].update(shape=[3, 64, 64]))
    r = run("predict", _png(tmp_path), "--run", run_copy, "--runtime", runtime)
    assert_one_line_error(r, f"failed on {runtime} for a batch of 1 images of [3, 64, 64]")


def test_predict_decodes_images_a_batch_at_a_time(deployed, tmp_path, monkeypatch):
    import toolkit.predict as predict_mod

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(5):
        _png(folder, f"{i}.png")
    decoded, at_first_batch = [], []
    load = predict_mod.load_image
    monkeypatch.setattr(predict_mod, "BATCH", 2)
    monkeypatch.setattr(predict_mod, "load_image", lambda *a: decoded.append(1) or load(*a))
    norm = predict_mod.normalise
    monkeypatch.setattr(predict_mod, "normalise", lambda *a: at_first_batch.append(len(decoded)) or norm(*a))
    result = predict_mod.predict([folder], run_dir=deployed, runtime="onnxruntime")
    assert len(result.predictions) == 5 and at_first_batch == [2, 4, 5]


def test_predict_names_a_missing_run_folder(tmp_path):
    assert_one_line_error(run("predict", _png(tmp_path), "--run", tmp_path / "nonexistent"), "no such run folder")


@pytest.mark.parametrize("mode", ["I;16", "RGBA", "P", "CMYK", "LA"])
def test_images_of_every_mode_become_the_rgb_they_show(tmp_path, mode):
    grey = np.tile(np.linspace(0, 255, 32).round().astype(np.uint8), (32, 1))  # a left-to-right ramp
    rgb = Image.fromarray(np.stack([grey] * 3, axis=-1))
    if mode == "I;16":
        img = Image.fromarray(grey.astype(np.uint16) * 257)  # the same ramp at 16 bits: 255 -> 65535
        assert img.mode == "I;16"
    elif mode == "P":
        img = rgb.convert("P", palette=Image.Palette.ADAPTIVE)  # 32 greys fit a palette exactly
    else:
        img = rgb.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    x = load_image(path, (32, 32)).numpy().astype(int)
    expected = np.stack([grey] * 3).astype(int)
    assert np.abs(x - expected).max() <= 1, (mode, x[0, 0, :8], expected[0, 0, :8])  # not all white, not all black


def test_resume_of_a_run_killed_in_its_first_save_cleans_up_and_says_so(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    stale = folder / f"{temp_prefix('checkpoint.pt')}abc123.tmp"
    stale.write_bytes(b"\0" * 4096)  # what kill -9 during the first torch.save leaves
    assert_one_line_error(
        run("train", "--resume", folder), "holds no checkpoint.pt, only 1 unfinished save", "without --resume"
    )
    assert not stale.exists()
    assert_one_line_error(run("train", "--resume", tmp_path / "elsewhere"), "no such file or folder")


def test_export_removes_what_a_killed_export_left(tmp_path):
    run_dir = tiny_run(tmp_path, "tutorial-cnn")
    stale = run_dir / f"{temp_prefix('model.onnx')}dead.tmp"
    stale.write_bytes(b"half an onnx file")
    assert run("export", run_dir, "--format", "onnx").exit_code == 0
    assert not stale.exists()


def test_quantizing_prints_no_raw_library_warnings(tmp_path):
    # onnxruntime's quantizer logs "WARNING:root:Please consider to run pre-processing ..." (export already does).
    import subprocess
    import sys

    run_dir = tiny_run(tmp_path, "resnet20")
    args = ["export", str(run_dir), "--format", "onnx,onnx-int8", "--calibration-images", "32"]
    done = subprocess.run([sys.executable, "-m", "toolkit", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "WARNING:root" not in done.stderr and not done.stderr.strip(), done.stderr


def test_an_accuracy_interval_is_clipped_to_0_100_and_says_so():
    from toolkit.core.stats import describe
    from toolkit.experiments.reproduce_files import reproduce_markdown

    stats = describe([10.0, 90.0, 5.0], bounds=(0.0, 100.0))  # unclipped: about [-58, 128]
    assert stats["ci95"] == [0.0, 100.0] and stats["ci95_clipped"]
    assert describe([90.0, 91.0], bounds=(0.0, 100.0))["ci95_clipped"] is False
    report = {"stats": stats, "compared": "final_test_acc", "reference_accuracy": None, "verdict": None}
    report.update(model="m", seeds=3, per_seed=[], delta=None, reference_source=None)
    assert "(clipped to 0-100 %)" in reproduce_markdown(report)


def test_an_image_past_pillows_bomb_limit_is_one_line_not_a_raw_warning(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from toolkit.core.errors import DataError

    img = _png(tmp_path)  # 1,024 pixels
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above this, fails above twice it
    with pytest.raises(DataError, match="too many pixels to decode safely"):
        load_image(img, (32, 32))
