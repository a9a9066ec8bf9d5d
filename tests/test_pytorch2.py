"""The PyTorch 2 files: torch.export (pt2), AOTInductor (aoti), ExecuTorch (pte, pte-int8); what the plan
runs and skips; the refusals (a package for another CPU or device, a tampered file, a bad option).

Every registry model through every one of these formats is in test_runtimes.py (conftest.every_model_exported).
"""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import copy_run
from tests.test_cli_train import assert_one_line_error
from toolkit.cli import app
from toolkit.core.errors import ConfigError, DeviceError
from toolkit.core.machine import isa_extensions
from toolkit.export.quantize import calibration_batches
from toolkit.models import list_models
from toolkit.run.checkpoint import load_checkpoint
from toolkit.targets.formats import DEFAULT_FORMATS, FORMATS, expand_formats
from toolkit.targets.plan import plan
from toolkit.targets.runtimes import open_runtime, runtime_class

runner = CliRunner()
needs_executorch = pytest.mark.skipif(FORMATS["pte"].missing() is not None, reason=str(FORMATS["pte"].missing()))
PYTORCH2 = ["pt2", "aoti", "pte", "pte-int8"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _png(tmp_path):
    img = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(img)
    return img


@needs_executorch
@pytest.mark.parametrize("model", list_models())
def test_every_model_has_an_int8_pte_close_to_its_model(every_model_exported, model):
    """PT2E INT8 through XNNPACK: finite, the right shape, within the INT8 gate's figure of the fp32 model."""
    runs, trained = every_model_exported
    rt = open_runtime("executorch", runs[model] / "model-int8.pte", "cpu", threads=1)
    ckpt = load_checkpoint(runs[model])
    x = torch.cat(calibration_batches(ckpt, 64, None))  # images like those it was calibrated on
    out = rt.run(x)
    with torch.no_grad():
        ref = trained[model](x)
    assert out.shape == (64, 10) and torch.isfinite(out).all()
    # INT8 mean |Δlogit| relative to the logit scale, the figure verify gates (0.2); broken quantization
    # (a wrong scale, an un-calibrated observer) lands orders of magnitude above it.
    assert float((out - ref).abs().mean()) / float(ref.std()) < 0.2
    entry = json.loads((runs[model] / "manifest.json").read_text())["files"]["model-int8.pte"]
    assert entry["precision"] == "int8" and entry["calibration_images"] == 32 and entry["max_batch"] == 256


@needs_executorch
def test_a_batch_larger_than_the_programs_bound_runs_in_slices(every_model_exported):
    runs, trained = every_model_exported
    rt = open_runtime("executorch", runs["resnet20"] / "model.pte", "cpu", threads=1)
    x = torch.randn(300, 3, 32, 32)  # over the 256 the program's memory is planned for
    with torch.no_grad():
        ref = trained["resnet20"](x)
    assert torch.allclose(rt.run(x), ref, atol=1e-4, rtol=1e-4)
    assert rt.describe()["max_batch"] == 256


def test_the_aoti_package_records_what_it_was_compiled_for(every_model_exported):
    runs, _ = every_model_exported
    entry = json.loads((runs["resnet20"] / "manifest.json").read_text())["files"]["model-aoti.pt2"]
    assert entry["compiled_for"]["device"] == "cpu" and entry["compiled_for"]["isa"] == isa_extensions()
    assert entry["compile_seconds"] > 0 and entry["compiler"]


def test_an_aoti_package_for_another_cpu_is_refused_with_one_line(every_model_exported, tmp_path, monkeypatch):
    run_dir = every_model_exported[0]["resnet20"]
    compiled = isa_extensions()
    dropped = "avx512f" if "avx512f" in compiled else compiled[-1]
    monkeypatch.setattr("toolkit.runtimes.aoti.isa_extensions", lambda: [f for f in compiled if f != dropped])
    assert_one_line_error(
        run("predict", _png(tmp_path), "--run", run_dir, "--runtime", "aoti"),
        f"this CPU lacks {dropped}",
        "--format aoti` on this machine",
    )


def test_an_aoti_package_for_another_device_is_refused():
    from toolkit.runtimes.aoti import refusal

    assert refusal({"AOTI_DEVICE_KEY": "cuda"}, "cpu") == "it was compiled for cuda, not cpu"
    assert refusal({"AOTI_DEVICE_KEY": "cpu", "toolkit.isa": " ".join(isa_extensions())}, "cpu") is None


def _resnet20_copy(every_model_exported, tmp_path, fmt):
    """(a private copy of the exported resnet20 run, its `fmt` file); skipped where the format cannot be made."""
    if FORMATS[fmt].missing():
        pytest.skip(FORMATS[fmt].missing())
    run_dir = copy_run(every_model_exported[0]["resnet20"], tmp_path)
    return run_dir, run_dir / FORMATS[fmt].filename


@pytest.mark.parametrize("fmt", PYTORCH2)
def test_a_tampered_pytorch2_file_fails_verify_and_predict_refuses_it(every_model_exported, tmp_path, fmt):
    run_dir, path = _resnet20_copy(every_model_exported, tmp_path, fmt)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one bit pattern of one byte
    path.write_bytes(bytes(data))
    r = run("verify", run_dir, "--format", fmt)
    assert r.exit_code == 1 and f"{path.name} is not the file export checked" in r.stderr, r.output
    runtime = FORMATS[fmt].runtimes[0]
    assert_one_line_error(
        run("predict", _png(tmp_path), "--run", run_dir, "--runtime", runtime, "--format", fmt),
        f"{path.name} differs from the file export checked",
    )


@pytest.mark.parametrize("fmt", PYTORCH2)
def test_a_truncated_pytorch2_file_is_one_line_on_the_terminal(every_model_exported, tmp_path, fmt):
    # torch.export.load logs the failed read's 12-line traceback as a warning before raising: in a process of
    # its own, as a user runs it, so that what torch's loggers print reaches the terminal too.
    import subprocess
    import sys

    run_dir, path = _resnet20_copy(every_model_exported, tmp_path, fmt)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    runtime = FORMATS[fmt].runtimes[0]
    args = ["predict", str(_png(tmp_path)), "--run", str(run_dir), "--runtime", runtime, "--format", fmt]
    r = subprocess.run([sys.executable, "-m", "toolkit", *args, "--allow-modified"], capture_output=True, text=True)
    lines = [line for line in r.stderr.splitlines() if not line.startswith("warning: ")]
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert path.name in lines[0] and "Traceback" not in r.stderr


def test_the_plan_lists_every_pytorch2_target_and_says_what_it_skips(every_model_exported, monkeypatch):
    run_dir = every_model_exported[0]["resnet20"]
    labels = [t.label for t in plan(run_dir).targets]
    assert {"torch-export/cpu", "aoti/cpu"} <= set(labels) and "eager/cpu" not in labels  # the reference
    assert "eager/cpu" in [t.label for t in plan(run_dir, reference=True).targets]
    with pytest.raises(ConfigError, match=r"has no model-int8.onnx; run `toolkit export .* --format onnx-int8` first"):
        plan(run_dir, formats=["onnx-int8"])
    # A runtime that is not installed: skipped with its install line, or an error where it was named.
    monkeypatch.setattr(runtime_class("executorch"), "module", "no_such_package_for_the_test")
    skipped = plan(run_dir).skipped
    assert "skipped executorch/cpu: executorch is not installed (pip install -e '.[executorch]')" in skipped
    assert not any(t.runtime == "executorch" for t in plan(run_dir).targets)
    with pytest.raises(DeviceError, match=r"pip install -e '.\[executorch\]'"):
        plan(run_dir, runtimes=["executorch"], devices=["cpu"])


def test_format_sets_leave_out_what_cannot_be_written_here(monkeypatch):
    assert expand_formats(None) == (DEFAULT_FORMATS, [])
    assert expand_formats(["onnx,pt2", "onnx"])[0] == ("onnx", "pt2")
    absent = dataclasses.replace(FORMATS["pte"], requires="no_such_package_for_the_test")
    monkeypatch.setitem(FORMATS, "pte", absent)
    names, notes = expand_formats("fp32")
    assert "pte" not in names and {"torchscript", "pt2", "aoti", "onnx"} <= set(names)
    assert notes == [
        "skipped pte needs no_such_package_for_the_test (pip install -e '.[no_such_package_for_the_test]')"
    ]
    with pytest.raises(ConfigError, match="pte needs no_such_package_for_the_test"):
        expand_formats("pte")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--format", "nope"], "unknown format 'nope'"),
        (["--format", "pte-int8", "--calibration-images", "0"], "--calibration-images must be a positive integer"),
        (["--format", ""], "no format given"),
    ],
)
def test_bad_export_options_are_one_line_and_write_nothing(every_model_exported, tmp_path, args, fragment):
    run_dir = copy_run(every_model_exported[0]["resnet20"], tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    assert_one_line_error(run("export", run_dir, *args), fragment)
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before


def test_aoti_without_a_compiler_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    from tests.helpers import tiny_run

    run_dir = tiny_run(tmp_path, "resnet20")

    def no_compiler():
        raise RuntimeError("no C++ compiler found: tried g++, clang++")

    monkeypatch.setattr("torch._inductor.cpp_builder.get_cpp_compiler", no_compiler)
    assert_one_line_error(run("export", run_dir, "--format", "aoti"), "aoti needs a C++ compiler", "install g++")
    assert not (run_dir / "model-aoti.pt2").exists() and not list(run_dir.glob(".model-aoti.pt2.*"))
