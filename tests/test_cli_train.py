"""`toolkit train` through Typer's CliRunner: a good run, and every bad input as one line, no traceback."""

import json

import pytest
from typer.testing import CliRunner

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


def test_train_and_resume_from_cli(tmp_path):
    r = run("train", "--model", "resnet20", "--epochs", "1", *SMALL, "--out", tmp_path, "--run-name", "a")
    assert r.exit_code == 0, r.output
    assert "epoch   1/1" in r.stdout and "done: final test acc" in r.stdout
    r = run("train", "--resume", tmp_path / "a", "--epochs", "2")
    assert r.exit_code == 0, r.output
    assert "resumed after epoch 1" in r.stdout
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["epochs"] == 2
    assert summary["reference_accuracy"] is None  # published figures are for CIFAR-10, not the synthetic set


def test_models_lists_registry():
    r = run("models")
    assert r.exit_code == 0 and "resnet56" in r.stdout and "93.03%" in r.stdout


@pytest.mark.parametrize("args, fragments", [
    (["--model", "vgg"], ["unknown model 'vgg'", "choose one of: tutorial-cnn"]),
    (["--epochs", "0"], ["--epochs must be a positive integer, got 0"]),
    (["--batch-size", "-4"], ["--batch-size must be a positive integer"]),
    (["--device", "cuda"], ["device 'cuda' is not available", "--device cpu"]),
    (["--device", "tpu"], ["unknown device 'tpu'"]),
    (["--optimizer", "lion"], ["unknown optimizer 'lion'"]),
    (["--dataset", "mnist"], ["unknown dataset 'mnist'"]),
])
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
    assert run("train", "--model", "resnet20", "--epochs", "1", *SMALL, "--out", tmp_path, "--run-name", "a").exit_code == 0
    before = (tmp_path / "a" / "checkpoint.pt").read_bytes()
    r = run("train", "--model", "resnet20", *SMALL, "--out", tmp_path, "--run-name", "a")
    assert_one_line_error(r, "already holds a run", "--resume")
    assert (tmp_path / "a" / "checkpoint.pt").read_bytes() == before


def test_bad_resume_files(tmp_path):
    assert_one_line_error(run("train", "--resume", tmp_path / "missing.pt"), "does not exist")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    assert_one_line_error(run("train", "--resume", bad), "cannot be read as a checkpoint")
    assert run("train", "--model", "resnet20", "--epochs", "1", *SMALL, "--out", tmp_path, "--run-name", "a").exit_code == 0
    ckpt = tmp_path / "a" / "checkpoint.pt"
    assert_one_line_error(run("train", "--resume", ckpt, "--model", "resnet56"), "is for model 'resnet20', not 'resnet56'")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ckpt.read_bytes()[:5000])
    assert_one_line_error(run("train", "--resume", truncated), "truncated, corrupt")
