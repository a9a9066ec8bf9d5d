"""DDP through torchrun with 2 CPU processes (gloo) against one process with the same global batch.

2 ranks x batch 32 must give the weights of 1 process x batch 64 after a few steps: each rank takes its
half of the same global batch, DDP averages the two half-batch mean gradients, which is the full-batch mean.
Only float summation order differs (two partial sums added, instead of one 64-term sum), so weights agree
to float32 rounding. We allow 1e-6 absolute after 3 plain-SGD steps: observed 1.7e-7 (a few ulps of
weights ~0.5), while a real fault (a rank on the wrong shard, gradients summed not averaged) moves weights
by the size of an update, lr 0.01 x gradients ~1e-2 = ~1e-4. SGD, not Adam: Adam divides by sqrt(v), which
turns rounding noise in near-zero gradients into full-size steps.
"""

import os
import subprocess
import sys

import pytest
import torch

from toolkit.train import train

ARGS = [
    "--model",
    "tutorial-cnn",
    "--dataset",
    "synthetic",
    "--limit-train",
    "192",
    "--limit-test",
    "64",
    "--batch-size",
    "64",
    "--epochs",
    "1",
    "--optimizer",
    "sgd",
    "--lr",
    "0.01",
    "--progress",
    "plain",
]


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_ddp_two_ranks_match_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "toolkit",
        "train",
        *ARGS,
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
        "--run-name",
        "ddp",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.count("epoch   1/1") == 1  # only rank 0 prints
    train(
        model="tutorial-cnn",
        dataset="synthetic",
        limit_train=192,
        limit_test=64,
        batch_size=64,
        epochs=1,
        optimizer="sgd",
        lr=0.01,
        device="cpu",
        out=str(tmp_path),
        run_name="single",
    )
    ddp, single = _weights(tmp_path / "ddp" / "checkpoint.pt"), _weights(tmp_path / "single" / "checkpoint.pt")
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["progress"]["global_step"] == single["progress"]["global_step"] == 3
    worst = max(float((ddp["state_dict"][k] - single["state_dict"][k]).abs().max()) for k in single["state_dict"])
    print(f"max |ddp - single| = {worst:.2e}")
    assert worst < 1e-6, worst
    assert ddp["metrics"][0]["train_loss"] == pytest.approx(single["metrics"][0]["train_loss"], rel=1e-5)
    # A DDP checkpoint resumes in one process (the state counts global batches, not per-rank ones).
    result = train(resume=tmp_path / "ddp", epochs=2)
    assert result.summary["epochs"] == 2 and result.summary["world_size"] == 1
