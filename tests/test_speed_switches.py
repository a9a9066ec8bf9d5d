"""AMP, channels_last and torch.compile in `toolkit train` on CPU, and time-to-accuracy."""

import json

import pytest
import torch

from tests.test_cli_train import assert_one_line_error, run
from toolkit.core.errors import ConfigError
from toolkit.experiments.time_to_accuracy import time_to_accuracy
from toolkit.export import export
from toolkit.train import train

SMALL = dict(dataset="synthetic", limit_train=64, limit_test=64, batch_size=32, eval_batch_size=64, epochs=1)


def test_bf16_channels_last_are_recorded_and_export(tmp_path):
    result = train(model="resnet20", amp="bf16", channels_last=True, out=str(tmp_path), run_name="r", **SMALL)
    assert result.summary["amp"] == "bf16" and result.summary["channels_last"] is True
    ckpt = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert ckpt["train_config"]["amp"] == "bf16" and ckpt["train_config"]["channels_last"] is True
    assert export(tmp_path / "r", ("onnx",), exporter="torchscript").checks["onnx"]["max_abs_diff"] < 1e-4


def test_fp16_uses_a_grad_scaler_that_resumes(tmp_path):
    # resnet20's recipe is SGD: the first fp16 steps overflow at scale 65536 and must be skipped cleanly
    # (fused SGD did not: its BN weights reached 1e21 after two steps).
    # One step an epoch: CPU fp16 is emulated (~2 img/s here), and one overflowing step is what is checked.
    one_step = {**SMALL, "limit_train": 32, "limit_test": 32}
    result = train(model="resnet20", amp="fp16", out=str(tmp_path), run_name="h", **one_step)
    assert result.summary["fused_optimizer"] is False
    ckpt = torch.load(tmp_path / "h" / "checkpoint.pt", weights_only=True)
    assert ckpt["grad_scaler"] and 0 < ckpt["grad_scaler"]["scale"] < 65536  # it backed off
    assert max(float(v.abs().max()) for v in ckpt["state_dict"].values() if v.is_floating_point()) < 100
    assert train(resume=tmp_path / "h", epochs=2).summary["epochs"] == 2


@pytest.mark.slow
def test_compile_really_compiles_or_says_why_not(tmp_path):
    """Dynamo's own counters show whether a graph was compiled; a summary flag alone could lie."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from toolkit.train.precision import compile_unavailable_reason

    torch._dynamo.reset()
    counters.clear()
    result = train(model="resnet20", compile=True, out=str(tmp_path), run_name="c", **{**SMALL, "limit_train": 32})
    s = result.summary
    why = compile_unavailable_reason()
    if why is None:
        assert s["compiled"] is True and s["compile_skipped"] is None
        assert counters["stats"]["unique_graphs"] >= 1, dict(counters["stats"])
    else:
        assert s["compiled"] is False and s["compile_skipped"] == why
        assert counters["stats"]["unique_graphs"] == 0
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["compiled"] == s["compiled"]


def test_bad_amp_is_one_line(tmp_path):
    assert_one_line_error(run("train", "--amp", "int8", "--out", tmp_path), "unknown amp 'int8'")


def test_time_to_accuracy_counts_training_time_only(tmp_path):
    r = time_to_accuracy(
        0.6,
        model="tutorial-cnn",
        dataset="synthetic",
        limit_train=256,
        limit_test=128,
        epochs=4,
        out=str(tmp_path),
        warmup_steps=1,
    )
    assert r["reached"] and r["target_accuracy"] == 60.0
    assert r["time_to_accuracy_s"] == pytest.approx(sum(e["train_seconds"] for e in r["per_epoch"]))
    assert r["per_epoch"][-1]["test_acc"] >= 60.0
    assert all(e["test_acc"] < 60.0 for e in r["per_epoch"][:-1])  # stopped at the first epoch that reached it
    assert r["warmup_seconds"] > 0 and r["eval_seconds"] > 0
    with pytest.raises(ConfigError):
        time_to_accuracy(150, model="tutorial-cnn", dataset="synthetic")
