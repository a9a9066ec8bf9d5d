"""`toolkit export` and `toolkit verify` through the CLI, including a verify that must fail."""

import json
import shutil
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import copy_run, exported_tiny_run, tiny_run
from tests.test_cli_train import assert_one_line_error
from toolkit.cli import app
from toolkit.core.device import native_half_precisions
from toolkit.core.files import sha256
from toolkit.targets.runtimes import runtime_class

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    return exported_tiny_run(tmp_path_factory.mktemp("runs"), "resnet20")


@pytest.fixture
def run_copy(exported_run, tmp_path):
    return copy_run(exported_run, tmp_path)


def test_export_writes_checked_files_and_manifest(exported_run):
    assert {p.name for p in exported_run.iterdir()} >= {"model.ts", "model.onnx", "manifest.json"}
    assert not list(exported_run.glob(".*.tmp"))
    m = json.loads((exported_run / "manifest.json").read_text())
    assert m["model"] == "resnet20" and m["input"]["layout"] == "NCHW" and len(m["classes"]) == 10
    assert m["source_checkpoint"]["sha256"] == sha256(exported_run / "checkpoint.pt")
    onnx_entry = m["files"]["model.onnx"]
    assert onnx_entry["sha256"] == sha256(exported_run / "model.onnx")
    assert onnx_entry["exporter"] == "dynamo" and onnx_entry["opset"] == 20
    assert onnx_entry["batch_sizes"] == [1, 7, 256] and onnx_entry["max_abs_diff"] < 1e-4
    assert {"torch", "onnx", "onnxruntime"} <= set(m["versions"])
    proto = onnx.load(str(exported_run / "model.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["toolkit.model"] == "resnet20" and meta["toolkit.source_sha256"] == m["source_checkpoint"]["sha256"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a symbolic batch axis
    onnx.checker.check_model(proto, full_check=True)


def test_verify_passes_and_writes_reports(run_copy):
    r = run("verify", run_copy, "--device", "cpu")
    assert r.exit_code == 0, r.output
    parity = json.loads((run_copy / "parity.json").read_text())
    assert parity["passed"] and parity["samples"] == 1024 and parity["reference"]["tf32"] is False
    labels = {(e["runtime"], e["format"]) for e in parity["entries"]}
    consumers = {(r, "onnx") for r in ("openvino", "opencv") if runtime_class(r).unavailable_reason("cpu") is None}
    # Where the CPU has AMX or AVX-512-bf16, the checkpoint and model.ts also run under bf16 autocast.
    half = (
        {("eager", "checkpoint-bf16"), ("torchscript", "torchscript-bf16")} if native_half_precisions("cpu") else set()
    )
    assert labels == {("torchscript", "torchscript"), ("onnxruntime", "onnx")} | consumers | half
    for e in parity["entries"]:
        if e["precision"] == "bf16":
            assert e["agreement"] >= 97 and e["max_abs"] > 1e-4  # gated by agreement and accuracy, not logits
            continue
        assert e["agreement"] == 100.0 and e["max_abs"] < 1e-4 and e["file_matches_manifest"] is True
        assert e["precision"] == "fp32" and e["format"] in ("torchscript", "onnx")
    md = (run_copy / "parity.md").read_text()
    assert "| onnxruntime | onnx (fp32) | exporter dynamo, opset 20 | cpu | CPUExecutionProvider" in md


def test_verify_fails_on_a_perturbed_onnx_weight(run_copy):
    path = run_copy / "model.onnx"
    proto = onnx.load(str(path))
    init = max(proto.graph.initializer, key=lambda t: len(t.raw_data) or len(t.float_data))
    w = numpy_helper.to_array(init).copy()
    w.flat[0] += 0.5
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(proto, str(path))
    r = run("verify", run_copy)
    assert r.exit_code == 1
    assert "onnxruntime/cpu: max |diff|" in r.stderr and "allowed on batch" in r.stderr
    assert "torchscript" not in r.stderr
    parity = json.loads((run_copy / "parity.json").read_text())
    assert not parity["passed"]
    assert any("model.onnx is not the file export checked" in f for e in parity["entries"] for f in e["failures"])


def test_an_interrupted_export_keeps_what_it_finished_and_says_so(tmp_path, monkeypatch):
    # Ctrl-C during `export --format all` exited 130 in silence, leaving files with no manifest entry.
    import toolkit.export as export_mod
    from toolkit.core.files import TEMP_SUFFIX

    run_dir = tiny_run(tmp_path, "resnet20")
    real = export_mod.writer

    def writer(spec):
        if spec.name != "onnx":
            return real(spec)

        def ctrl_c(*args, **kwargs):
            raise KeyboardInterrupt

        return ctrl_c

    monkeypatch.setattr(export_mod, "writer", writer)
    r = run("export", run_dir, "--format", "torchscript,onnx")
    assert_one_line_error(r, "export interrupted: kept model.ts", "not written: model.onnx", "--format onnx", code=130)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert list(manifest["files"]) == ["model.ts"] and not (run_dir / "model.onnx").exists()
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(TEMP_SUFFIX)]
    # A file on disk that manifest.json does not record was never checked: no later command uses it.
    manifest["files"] = {}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(run("verify", run_dir, "--format", "torchscript"), "model.ts has no entry in manifest.json")
    assert_one_line_error(run("verify", run_dir), "nothing to verify")
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(png)
    assert_one_line_error(run("predict", png, "--run", run_dir, "--runtime", "torchscript"), "model.ts has no entry")


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs (root only; skipped where it cannot be mounted)."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_export_onto_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, small_disk):
    # TorchScript's writer aborted in C++ (`terminate called`, exit 134, a temp file left); ONNX's suggested
    # another exporter. A file that cannot fit is refused before it is written, in one line naming the disk.
    run_dir = tiny_run(tmp_path, "resnet20")
    shutil.copytree(run_dir, small_disk / "run")
    run_dir = small_disk / "run"
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    filler.write_bytes(b"\0" * (free - 64 * 1024))  # 64 KiB left: less than either file
    before = sorted(p.name for p in run_dir.iterdir())
    for fmt in ("torchscript", "onnx"):
        r = run("export", run_dir, "--format", fmt)
        assert_one_line_error(r, f"no space left on {run_dir}", "free some space")
        assert "--exporter" not in r.stderr
        assert sorted(p.name for p in run_dir.iterdir()) == before  # no temp file, no half file, no manifest


def test_export_newest_run_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(run("export"), "no trained run under artifacts/", "toolkit train")
    tiny_run(tmp_path / "artifacts", "resnet20", "only")
    r = run("export", "--format", "torchscript")
    assert r.exit_code == 0, r.output
    assert (
        "using the newest trained run: artifacts/only" in r.stdout and (tmp_path / "artifacts/only/model.ts").exists()
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (
            ["--format", "tflite"],
            "unknown format 'tflite'; choose one of: torchscript, pt2, aoti, onnx, onnx-int8, onnx-int8-dynamic, "
            "onnx-fp16, pte, pte-int8, or default, fp32, all",
        ),
        (["--exporter", "fx"], "unknown ONNX exporter 'fx'"),
        (["--opset", "9"], "--opset 9 is out of range for the dynamo exporter; use 18 to"),
        (
            ["--opset", "12", "--exporter", "torchscript"],
            "--opset 12 is out of range for the torchscript exporter; use 13 to",
        ),
        (["--opset", "99"], "--opset 99 is out of range"),
    ],
)
def test_export_bad_options(exported_run, args, fragment):
    assert_one_line_error(run("export", exported_run, *args), fragment)


def test_bad_files_and_runs(run_copy, tmp_path):
    onnx_bytes = (run_copy / "model.onnx").read_bytes()
    # A file a runtime cannot load is that runtime's failure line; the others still report.
    for broken in (onnx_bytes[: len(onnx_bytes) // 3], b"this is not onnx"):
        (run_copy / "model.onnx").write_bytes(broken)
        r = run("verify", run_copy, "--format", "onnx", "--format", "torchscript")
        assert r.exit_code == 1 and "Traceback" not in r.output
        assert r.stderr.startswith("onnxruntime/cpu: ") and "model.onnx: onnxruntime cannot load it" in r.stderr
        entries = json.loads((run_copy / "parity.json").read_text())["entries"]
        verdicts = {e["runtime"]: (e["passed"], e["accuracy"] is None) for e in entries}
        assert verdicts.pop("torchscript") == (True, False)  # model.ts is fine
        assert verdicts and set(verdicts.values()) == {(False, True)}  # every reader of model.onnx failed
    (run_copy / "model.onnx").write_bytes(onnx_bytes)
    (run_copy / "model.ts").write_bytes(b"PK\x03\x04 not torchscript")
    r = run("verify", run_copy, "--format", "torchscript")
    assert r.exit_code == 1 and "model.ts: not a loadable TorchScript file" in r.stderr
    assert_one_line_error(run("verify", tmp_path), "has no checkpoint.pt")
    assert_one_line_error(run("export", tmp_path), "holds no checkpoint.pt")
    assert_one_line_error(run("verify", run_copy, "--device", "mps"), "device 'mps' is not available")
    assert_one_line_error(run("verify", run_copy, "--runtime", "tensorrt"), "unknown runtime 'tensorrt'")


def test_onnx_from_another_model_is_refused(run_copy, tmp_path):
    other = tiny_run(tmp_path / "other", "fast-cnn")
    assert run("export", other, "--format", "onnx").exit_code == 0
    shutil.copy(other / "model.onnx", run_copy / "model.onnx")
    assert_one_line_error(run("verify", run_copy), "was exported from model 'fast-cnn'", "re-run toolkit export")


def test_verify_needs_exports_when_a_runtime_is_named(tmp_path):
    bare = tiny_run(tmp_path, "resnet20")
    assert_one_line_error(run("verify", bare, "--runtime", "onnxruntime"), "has no model.onnx", "toolkit export")


def _poison_onnx(path, value):
    proto = onnx.load(str(path))
    init = max(proto.graph.initializer, key=lambda t: len(t.raw_data) or len(t.float_data))
    w = numpy_helper.to_array(init).copy()
    w.flat[:] = value
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(proto, str(path))


def test_nan_logits_fail_verify_by_name(run_copy):
    """max() over NaN differences used to return 0.0: a file answering NaN passed with max |diff| 0.0e+00."""
    _poison_onnx(run_copy / "model.onnx", float("nan"))
    r = run("verify", run_copy, "--runtime", "onnxruntime")
    assert r.exit_code == 1
    assert "onnxruntime/cpu: 10240 NaN/inf logits (first on batch 0)" in r.stderr
    parity = json.loads((run_copy / "parity.json").read_text())
    assert parity["entries"][0]["non_finite"] == 10240 and not parity["passed"]


def test_export_refuses_a_checkpoint_whose_logits_are_nan(run_copy):
    import torch

    ckpt = torch.load(run_copy / "checkpoint.pt", weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point() and v.dim() == 4)
    ckpt["state_dict"][name].fill_(float("nan"))
    torch.save(ckpt, run_copy / "checkpoint.pt")
    before = (run_copy / "model.onnx").read_bytes()
    assert_one_line_error(run("export", run_copy, "--format", "onnx"), "NaN/inf logits", "nothing was exported")
    assert (run_copy / "model.onnx").read_bytes() == before
    assert not list(run_copy.glob(".*.tmp"))


def test_verify_with_nothing_to_compare_is_not_a_pass(tmp_path):
    bare = tiny_run(tmp_path, "resnet20")
    # On cpu only: where CUDA is present, eager/cuda against eager/cpu is a real comparison even without exports.
    assert_one_line_error(
        run("verify", bare, "--device", "cpu"), "nothing to verify", "toolkit export", "no comparison is not a pass"
    )
    assert not (bare / "parity.json").exists()


def test_manifest_records_the_opset_the_file_has(exported_run):
    m = json.loads((exported_run / "manifest.json").read_text())["files"]["model.onnx"]
    proto = onnx.load(str(exported_run / "model.onnx"))
    real = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    assert m["opset"] == real and m["opset_requested"] == 20


def test_a_corrupt_manifest_is_reported_not_ignored(run_copy):
    (run_copy / "manifest.json").write_text("{not json")
    r = run("verify", run_copy)
    assert r.exit_code == 0, r.output
    assert "note: manifest.json is unreadable (JSONDecodeError); file hashes are not checked" in r.stdout
    r = run("export", run_copy, "--format", "torchscript")
    assert r.exit_code == 0 and "note: manifest.json was unreadable; it was written anew" in r.stdout
    assert json.loads((run_copy / "manifest.json").read_text())["files"]["model.ts"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--threads", "-1"], "--threads must be a positive integer, got -1"),
        (["--threads", "0"], "--threads must be a positive integer, got 0"),
        (["--atol", "-1"], "--atol must be a finite number >= 0"),
        (["--min-agreement", "101"], "--min-agreement must be a percentage"),
        (["--batch-size", "0"], "--batch-size must be a positive integer"),
    ],
)
def test_verify_bad_numbers(exported_run, args, fragment):
    assert_one_line_error(run("verify", exported_run, *args), fragment)


def test_verify_validates_in_the_library_too(exported_run):
    import toolkit
    from toolkit.core.errors import ConfigError

    with pytest.raises(ConfigError, match="--batch-size must be a positive integer, got 0"):
        toolkit.verify(exported_run, batch_size=0)
    with pytest.raises(ConfigError, match="--atol"):
        toolkit.Thresholds(atol=float("nan"))


def test_unwritable_run_folder_fails_first_with_one_line(run_copy):
    from tests.helpers import unwritable

    with unwritable(run_copy):
        for command in ("verify", "export"):  # neither has --out: the line names what does work
            r = run(command, run_copy)
            assert_one_line_error(r, "cannot write to", str(run_copy), "copy the run to a writable folder")
            assert "--out" not in r.stderr
        assert_one_line_error(run("bench", run_copy, "--no-train", "--rounds", "1"), "cannot write to")


def test_torchscript_file_does_not_pin_tf32_convolutions(exported_run):
    """Tracing bakes cuDNN's TF32 switch into each aten::_convolution; traced with it on (the default),
    model.ts missed eager fp32 by 6.9e-3 on an H200 whatever the loading process set."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        module = torch.jit.load(str(exported_run / "model.ts"))
    convs = [n for n in module.graph.nodes() if n.kind() == "aten::_convolution"]
    assert convs, "resnet20 has convolutions"
    for node in convs:
        allow_tf32 = list(node.inputs())[-1]  # _convolution(..., cudnn_enabled, allow_tf32)
        assert allow_tf32.toIValue() is False, node
