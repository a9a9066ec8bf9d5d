"""`toolkit train` through Typer's CliRunner: a good run, and every bad input as one line, no traceback."""

import json

import pytest
from typer.testing import CliRunner

from tests.helpers import NO_CUDA_ONLY
from toolkit.cli import app

runner = CliRunner()
SMALL = ["--dataset", "synthetic", "--limit-train", "64", "--limit-test", "32", "--batch-size", "32"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments, code=1):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], lines[0]


def test_train_and_resume_from_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))  # no other test's timings as a prior
    r = run("train", "--model", "resnet20", "--epochs", "1", *SMALL, "--out", tmp_path, "--run-name", "a")
    assert r.exit_code == 0, r.output
    assert "epoch   1/1" in r.stdout and "done: final test acc" in r.stdout
    # Two steps: too short to time the speed candidates; the prior for conv nets, and the first lines say so.
    assert "speed: fp32, channels_last, eager (not timed); a run of 2 steps is too short" in r.stdout
    r = run("train", "--resume", tmp_path / "a", "--epochs", "2")
    assert r.exit_code == 0, r.output
    assert "resumed after epoch 1" in r.stdout and "(as recorded in the checkpoint)" in r.stdout
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["epochs"] == 2
    assert summary["reference_accuracy"] is None  # published figures are for CIFAR-10, not the synthetic set


def test_speed_switches_given_on_the_command_line_are_used_as_given(tmp_path):
    r = run("train", "--model", "resnet20", "--epochs", "1", *SMALL, "--out", tmp_path, "--run-name", "g",
            "--amp", "bf16", "--channels-last", "--no-compile")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "speed: bf16, channels_last, eager (as given)" in r.stdout
    summary = json.loads((tmp_path / "g" / "summary.json").read_text())
    assert summary["speed"]["asked"] == {"amp": "bf16", "channels_last": True, "compile": False}


def test_models_lists_registry():
    r = run("models")
    assert r.exit_code == 0 and "resnet56" in r.stdout and "93.03%" in r.stdout


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--model", "vgg"], ["unknown model 'vgg'", "choose one of: tutorial-cnn"]),
        (["--epochs", "0"], ["--epochs must be a positive number, got 0"]),
        (["--batch-size", "-4"], ["--batch-size must be a positive integer"]),
        pytest.param(["--device", "cuda"], ["device 'cuda' is not available", "--device cpu"], marks=NO_CUDA_ONLY),
        (["--device", "cuda:7"], ["device 'cuda:7' is not available"]),
        (["--device", "tpu"], ["unknown device 'tpu'"]),
        (["--optimizer", "lion"], ["unknown optimizer 'lion'"]),
        (["--dataset", "mnist"], ["unknown dataset 'mnist'"]),
    ],
)
def test_bad_options(tmp_path, args, fragments):
    r = run("train", *SMALL, "--out", tmp_path, "--run-name", "x", *args)
    assert_one_line_error(r, *fragments)
    assert not (tmp_path / "x" / "checkpoint.pt").exists()


def test_missing_data_says_how_to_provide_it(tmp_path):
    r = run("train", "--data-dir", tmp_path / "nothing", "--no-download", "--out", tmp_path)
    assert_one_line_error(r, "cifar10 not found", "--data-dir")


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = run("train", *SMALL, "--out", blocker)
    assert_one_line_error(r, "cannot create", "Not a directory", "--out")
    assert blocker.read_text() == "not a folder"


def test_existing_run_is_not_overwritten(tmp_path):
    assert (
        run("train", "--model", "resnet20", "--epochs", "1", *SMALL, "--out", tmp_path, "--run-name", "a").exit_code
        == 0
    )
    before = (tmp_path / "a" / "checkpoint.pt").read_bytes()
    r = run("train", "--model", "resnet20", *SMALL, "--out", tmp_path, "--run-name", "a")
    assert_one_line_error(r, "already holds a run", "--resume")
    assert (tmp_path / "a" / "checkpoint.pt").read_bytes() == before


def test_bad_resume_files(tmp_path):
    assert_one_line_error(run("train", "--resume", tmp_path / "missing.pt"), "no such file or folder")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    assert_one_line_error(run("train", "--resume", bad), "cannot be read as a checkpoint")
    assert (
        run("train", "--model", "resnet20", "--epochs", "1", *SMALL, "--out", tmp_path, "--run-name", "a").exit_code
        == 0
    )
    ckpt = tmp_path / "a" / "checkpoint.pt"
    assert_one_line_error(
        run("train", "--resume", ckpt, "--model", "resnet56"), "is for model 'resnet20', not 'resnet56'"
    )
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ckpt.read_bytes()[:5000])
    assert_one_line_error(run("train", "--resume", truncated), "truncated, corrupt")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--lr", "inf"], ["--lr must be a positive finite number, got inf"]),
        (["--lr", "nan"], ["--lr must be a positive finite number, got nan"]),
        (["--momentum", "1.5"], ["--momentum must be in [0, 1)"]),
        (["--label-smoothing", "-0.1"], ["--label-smoothing must be in [0, 1)"]),
        (["--device", "cpu:x"], ["bad device 'cpu:x'"]),
    ],
)
def test_bad_numbers_and_devices(tmp_path, args, fragments):
    assert_one_line_error(run("train", *SMALL, "--out", tmp_path, "--run-name", "x", *args), *fragments)
    assert not (tmp_path / "x").exists()


def test_resume_refuses_options_it_would_ignore(tmp_path):
    assert (
        run("train", "--model", "resnet20", "--epochs", "1", *SMALL, "--out", tmp_path, "--run-name", "a").exit_code
        == 0
    )
    r = run("train", "--resume", tmp_path / "a", "--lr", "0.5", "--batch-size", "7")
    assert_one_line_error(r, "cannot change --batch-size, --lr when resuming")
    # Repeating a value the run already has is not a change.
    assert run("train", "--resume", tmp_path / "a", "--batch-size", "32", "--epochs", "2").exit_code == 0


def test_a_failed_start_leaves_no_folder(tmp_path):
    r = run("train", "--data-dir", tmp_path / "nothing", "--no-download", "--out", tmp_path / "out", "--run-name", "x")
    assert_one_line_error(r, "cifar10 not found")
    assert not (tmp_path / "out" / "x").exists()


def test_checkpoint_with_the_marker_but_missing_keys(tmp_path):
    import torch

    path = tmp_path / "damaged.pt"
    torch.save({"format": "toolkit-checkpoint", "format_version": 1, "model": {"name": "resnet20"}}, path)
    assert_one_line_error(run("train", "--resume", path), "damaged checkpoint, 'model.num_classes' is missing")
    assert_one_line_error(run("export", path), "damaged checkpoint")


def test_a_full_disk_during_a_checkpoint_save_is_one_line(tmp_path):
    """A file-size limit below the checkpoint's size fails its save as a full disk would."""
    import resource
    import subprocess
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))  # resnet20 saves ~2.2 MB

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolkit",
            "train",
            "--model",
            "resnet20",
            "--epochs",
            "1",
            *SMALL,
            "--out",
            str(tmp_path),
            "--run-name",
            "full",
            "--progress",
            "none",
        ],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "cannot write checkpoint" in lines[0] and "disk full or a file-size limit" in lines[0], lines[0]
    # The first save failed: no checkpoint to resume is promised (the empty run folder is removed).
    assert "it was the run's first, so there is nothing to resume" in lines[0] and "intact" not in lines[0]
    assert not list((tmp_path / "full").glob(".*.tmp"))


def test_help_does_not_import_torch():
    """The package loads stages lazily: `toolkit --help` must not pay for torch, onnx or onnxruntime."""
    import subprocess
    import sys

    code = (
        "import sys; from typer.testing import CliRunner; from toolkit.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0 and 'verify' in r.output; "
        "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_one_import_api(tmp_path):
    """toolkit.train/export/verify are stage packages and callable as their verbs, in any import order."""
    import toolkit
    import toolkit.train.loop  # importing the package first must not hide the verb  # noqa: F401

    result = toolkit.train(
        model="resnet20",
        dataset="synthetic",
        limit_train=32,
        limit_test=64,
        batch_size=32,
        epochs=1,
        out=str(tmp_path),
        run_name="api",
    )
    assert toolkit.export(result.run_dir, ("onnx",)).files["onnx"].is_file()
    parity = toolkit.verify(result.run_dir, devices=["cpu"])
    assert parity and (result.run_dir / "parity.json").is_file()
    assert isinstance(toolkit.TrainConfig(), toolkit.train.TrainConfig)
    with pytest.raises(AttributeError):
        toolkit.no_such_thing  # noqa: B018
