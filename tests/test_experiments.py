"""Experiments: the validation split and config files (file < flags)."""

import json

import pytest
import torch
from typer.testing import CliRunner

from tests.helpers import TINY
from tests.test_cli_train import assert_one_line_error
from toolkit.cli import app
from toolkit.core.errors import ConfigError
from toolkit.data import load_dataset, stratified_split
from toolkit.train import train
from toolkit.train.config import load_config_file

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_the_validation_split_is_stratified_disjoint_and_fixed_by_the_seed():
    data = load_dataset("synthetic", True, None, limit=1000)
    train_a, val_a = stratified_split(data, 100, seed=0)
    train_b, val_b = stratified_split(data, 100, seed=0)
    _, val_c = stratified_split(data, 100, seed=1)
    assert len(val_a) == 100 and len(train_a) == 900
    assert torch.equal(val_a.images, val_b.images) and not torch.equal(val_a.images, val_c.images)
    counts, val_counts = torch.bincount(data.labels, minlength=10), torch.bincount(val_a.labels, minlength=10)
    assert ((val_counts.double() - counts.double() / 10).abs() < 1).all()  # each class its share, rounded
    # Disjoint, and together exactly the training set: every image is in one of the two, once.
    flat = lambda s: {bytes(img.numpy()) for img in s.images}  # noqa: E731
    assert not flat(train_a) & flat(val_a) and flat(train_a) | flat(val_a) == flat(data)
    for bad in (0, 1000):
        with pytest.raises(ConfigError, match="--val-size must be between 1 and 999"):
            stratified_split(data, bad, seed=0)


def test_val_accuracy_is_reported_every_epoch(tmp_path):
    cfg = {**TINY, "limit_train": 64, "epochs": 2}
    result = train(model="resnet20", out=str(tmp_path), run_name="v", val_size=16, **cfg)
    lines = [json.loads(x) for x in (tmp_path / "v" / "metrics.jsonl").read_text().splitlines()]
    assert [("val_acc" in m and "val_loss" in m and "test_acc" in m) for m in lines] == [True, True]
    s = json.loads((tmp_path / "v" / "summary.json").read_text())
    assert s["val_size"] == 16 and s["final_val_acc"] == lines[-1]["val_acc"]
    assert s["best_val_acc"] == max(m["val_acc"] for m in lines)
    assert result.summary["final_val_acc"] == s["final_val_acc"]


def _write(path, text):
    path.write_text(text)
    return path


def test_config_file_then_flags(tmp_path):
    cfg = _write(tmp_path / "c.toml", 'model = "resnet20"\nlr = 0.05\nepochs = 1\nlabel_smoothing = 0.1\n')
    small = ["--dataset", "synthetic", "--limit-train", "32", "--limit-test", "32", "--batch-size", "32"]
    r = run(
        "train", "--config", cfg, "--lr", "0.01", *small, "--out", tmp_path, "--run-name", "r", "--progress", "none"
    )
    assert r.exit_code == 0, r.output
    saved = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["train_config"]
    assert saved["model"] == "resnet20" and saved["lr"] == 0.01  # the flag beat the file
    assert saved["label_smoothing"] == 0.1 and saved["epochs"] == 1  # the file beat the recipe
    assert saved["optimizer"] == "sgd" and saved["weight_decay"] == 1e-4  # the recipe filled the rest
    as_json = _write(tmp_path / "c.json", json.dumps({"model": "resnet20", "epochs": 1, "val_size": 8}))
    assert load_config_file(as_json).val_size == 8


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        ("a.toml", "learning_rate = 0.1\n", "unknown key 'learning_rate'"),
        ("a.toml", "epoch = 3\n", "(did you mean 'epochs'?)"),
        ("a.toml", 'lr = "fast"\n', "'lr' must be a number, got 'fast'"),
        ("a.toml", "augment = 1\n", "'augment' must be true or false, got 1"),
        ("a.toml", "batch_size = 6.5\n", "'batch_size' must be an integer, got 6.5"),
        ("a.toml", "lr = [0.1\n", "is not valid TOML"),
        ("a.json", "[1, 2]", "expected a table of TrainConfig fields"),
        ("a.yaml", "lr: 0.1", "use a .toml or .json file"),
        ("a.toml", 'lr_scales = [["norm"]]\n', "'lr_scales' must be a list of [\"name\", number] pairs"),
    ],
)
def test_bad_config_files(tmp_path, name, text, fragment):
    path = _write(tmp_path / name, text)
    assert_one_line_error(run("train", "--config", path, "--out", tmp_path), fragment, str(path))


def test_a_config_folder_is_named_as_a_folder(tmp_path):
    assert_one_line_error(run("train", "--config", tmp_path, "--out", tmp_path), "is a folder; pass a .toml or .json")


def test_a_config_value_out_of_range_is_the_usual_error(tmp_path):
    path = _write(tmp_path / "c.toml", "lr = -1.0\n")
    assert_one_line_error(run("train", "--config", path, "--out", tmp_path), "--lr must be a positive finite number")


def test_runs_lists_every_run_and_skips_unreadable_ones(tmp_path):
    out = tmp_path / "artifacts"
    train(model="resnet20", out=str(out), run_name="a", **TINY)
    train(model="tutorial-cnn", out=str(out / "group"), run_name="b", val_size=8, **{**TINY, "limit_train": 64})
    (out / "broken").mkdir()
    (out / "broken" / "metrics.jsonl").write_text("{not json\n")
    r = run("runs", "--out", out, "--json", "--sort", "model")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["run"], x["model"], x["state"]) for x in rows] == [
        ("a", "resnet20", "finished"),
        ("group/b", "tutorial-cnn", "finished"),
        ("broken", None, "stopped"),  # kept, with a note naming the line: its other files may still say much
    ]
    summary_b = json.loads((out / "group" / "b" / "summary.json").read_text())
    assert rows[1]["val_acc"] == summary_b["final_val_acc"] and rows[0]["val_acc"] is None
    assert rows[1]["test_acc"] == summary_b["final_test_acc"] and rows[0]["exports"] == []
    assert "broken: metrics.jsonl line 1 is cut or not a JSON object" in r.stderr
    # One cut line, a truncated parity.json and a manifest whose files are gone: the run stays, each noted.
    with (out / "a" / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 2, "test_ac')
    (out / "a" / "parity.json").write_text('{"entries": [')
    (out / "a" / "model.onnx").write_bytes(b"onnx")
    files = {name: {"sha256": "0" * 64} for name in ("model.onnx", "model.ts", "model.pt2")}
    (out / "a" / "manifest.json").write_text(json.dumps({"files": files}))
    r = run("runs", "--out", out, "--json", "--sort", "model")
    a = json.loads(r.stdout.splitlines()[0])
    assert (a["run"], a["test_acc"], a["verify"]) == ("a", rows[0]["test_acc"], "unreadable")
    assert a["exports"] == ["model.onnx"]  # what is on disk, not what the manifest once listed
    assert "metrics.jsonl line 2 is cut" in r.stderr and "parity.json is cut" in r.stderr
    (out / "a" / "parity.json").unlink()
    (out / "a" / "manifest.json").unlink()
    (out / "broken").rename(tmp_path / "broken")
    # A run stopped before its summary: its last epoch, marked as such.
    (out / "a" / "summary.json").unlink()
    rows = [json.loads(line) for line in run("runs", "--out", out, "--json").stdout.splitlines()]
    assert {x["run"]: x["state"] for x in rows} == {"a": "stopped", "group/b": "finished"}
    table = run("runs", "--out", out)
    assert table.exit_code == 0 and "group/b" in table.stdout and "2 runs under" in table.stdout
    # A summary with a figure that is not a number: skipped with a note in the table as in --json.
    summary_b["final_test_acc"] = "high"
    (out / "group" / "b" / "summary.json").write_text(json.dumps(summary_b))
    table = run("runs", "--out", out)
    assert table.exit_code == 0 and "Traceback" not in table.output, table.output
    assert "group/b" not in table.stdout and "'final_test_acc' is \"high\", not a finite number" in table.stderr
    assert_one_line_error(run("runs", out / "a", out / "group" / "b", "--out", out), "not a finite number")


def test_runs_bad_options(tmp_path):
    assert_one_line_error(run("runs", "--out", tmp_path / "nowhere"), "is not a folder")
    assert_one_line_error(run("runs", "--out", tmp_path, "--sort", "speed"), "unknown --sort 'speed'")


def test_runs_compares_two_runs(tmp_path):
    out = tmp_path / "artifacts"
    train(model="resnet20", out=str(out), run_name="a", **TINY)
    train(model="resnet20", out=str(out), run_name="b", lr=0.05, val_size=8, **{**TINY, "limit_train": 64})
    r = run("runs", out / "a", out / "b", "--out", out, "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    diff = result["config_differences"]
    assert diff["lr"] == [0.1, 0.05] and diff["val_size"] == [None, 8] and diff["limit_train"] == [32, 64]
    assert "run_name" not in diff and "model" not in diff  # differs by construction / does not differ
    assert result["figures"][str(out / "b")]["val_acc"] is not None
    assert (out / "compare-a-vs-b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_one_line_error(run("runs", out / "a", "--out", out), "compares two run folders, got 1")
    assert_one_line_error(run("runs", out / "a", tmp_path, "--out", out), "is not a training run")
