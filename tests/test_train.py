import json
import os
import signal

import pytest
import torch

from toolkit.core.errors import Interrupted, TrainingDiverged
from toolkit.run.checkpoint import load_checkpoint, model_from_checkpoint
from toolkit.train import loop, train

# Bit-exact resume is checked on the CPU: on an H200, cuDNN's default (nondeterministic) kernels made even the
# resumed run differ from the straight one, so these comparisons pin the device; the rest runs on cuda there.
SMALL = dict(dataset="synthetic", limit_train=96, limit_test=64, batch_size=32, eval_batch_size=64, device="cpu")


def _weights(run_dir):
    ckpt = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"], ckpt


def test_train_writes_self_describing_run(tmp_path):
    torch.set_flush_denormal(False)
    result = train(model="tutorial-cnn", epochs=2, out=str(tmp_path), run_name="r", **SMALL)
    assert (torch.tensor([1e-39]) * 1.0).item() == 0.0  # CPU training flushes denormals (slow on x86) to zero
    run = tmp_path / "r"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "metrics.jsonl", "summary.json"]
    state, ckpt = _weights(run)  # weights_only=True: plain containers and tensors only
    assert ckpt["model"]["name"] == "tutorial-cnn" and ckpt["epoch"] == 2
    assert ckpt["train_config"]["lr"] == 1e-3 and ckpt["train_config"]["optimizer"] == "adam"
    assert ckpt["input"]["mean"] == [0.0, 0.0, 0.0] and len(ckpt["classes"]) == 10
    assert {"torch", "toolkit", "python"} <= set(ckpt["versions"]) and ckpt["optimizer"]["state"]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert {"train_loss", "train_acc", "test_acc", "img_per_s", "epoch_seconds"} <= set(lines[0])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_test_acc"] == lines[-1]["test_acc"] == result.summary["final_test_acc"]
    assert summary["reference_accuracy"] is None and summary["device"] == "cpu"
    model = model_from_checkpoint(load_checkpoint(run))
    for k, v in model.state_dict().items():
        assert torch.equal(v, result.model.state_dict()[k])


def test_resume_continues_exactly(tmp_path, monkeypatch):
    """With the speed policy on: the straight run times the candidates (a short run is made to), the split
    run takes the cached choice, its resume the recorded one; the weights still match bit for bit, so the
    probe's steps leave nothing behind (the weights, the RNG) that the run would see."""
    from toolkit.train import speed

    monkeypatch.setattr(speed, "DECIDE_MIN_RATIO", 0)
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    # A constant schedule: with a decaying one, the lr depends on the total epochs, which resume extends.
    cfg = dict(model="resnet20", out=str(tmp_path), augment=True, schedule="constant", **SMALL)
    straight = train(epochs=3, run_name="straight", **cfg).summary["speed"]
    split = train(epochs=1, run_name="split", **cfg).summary["speed"]
    resumed = train(resume=tmp_path / "split", epochs=3).summary["speed"]
    assert (straight["how"], split["how"], resumed["how"]) == ("timed", "cached", "resumed")
    assert straight["choice"] == split["choice"] == resumed["choice"]
    a, ca = _weights(tmp_path / "straight")
    b, cb = _weights(tmp_path / "split")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [m["test_acc"] for m in ca["metrics"]] == [m["test_acc"] for m in cb["metrics"]]


def test_ctrl_c_writes_resumable_checkpoint(tmp_path):
    cfg = dict(model="resnet20", out=str(tmp_path), epochs=2, **SMALL)
    train(run_name="straight", **cfg)

    def press_ctrl_c(epoch, i):
        if (epoch, i) == (0, 1):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(
        Interrupted, match=r"stopped by SIGINT in epoch 1 at step 2; .*resume with: toolkit train --resume \S+/cut$"
    ):
        train(run_name="cut", step_hook=press_ctrl_c, **cfg)
    _, cut = _weights(tmp_path / "cut")
    assert cut["progress"]["batch"] == 2 and cut["epoch"] == 0
    train(resume=tmp_path / "cut" / "checkpoint.pt")
    a, ca = _weights(tmp_path / "straight")
    b, cb = _weights(tmp_path / "cut")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert ca["metrics"][-1]["train_loss"] == pytest.approx(cb["metrics"][-1]["train_loss"], rel=1e-9)


@pytest.fixture
def models(monkeypatch):
    """The models that train() builds, as it builds them, so a step hook can break their weights."""
    built = []
    original = loop.prepare

    def prepare_and_grab(*args, **kwargs):
        t = original(*args, **kwargs)
        built.append(t.model)
        return t

    monkeypatch.setattr(loop, "prepare", prepare_and_grab)
    return built


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path, models):
    cfg = dict(model="resnet20", out=str(tmp_path), run_name="nan", **SMALL)
    train(epochs=1, **cfg)
    before, _ = _weights(tmp_path / "nan")

    def poison(epoch, i):  # a weight turns NaN mid-run, as after an overflow
        if epoch == 1:
            with torch.no_grad():
                next(models[-1].parameters()).fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match="NaN/inf in epoch 2.*last good checkpoint is kept"):
        train(resume=tmp_path / "nan", epochs=2, step_hook=poison)
    after, ckpt = _weights(tmp_path / "nan")
    assert ckpt["epoch"] == 1
    for k in before:
        assert torch.equal(before[k], after[k])


def _press(signum, at):
    def hook(epoch, i):
        if (epoch, i) == at:
            os.kill(os.getpid(), signum)

    return hook


def test_ctrl_c_on_the_last_step_of_an_epoch_resumes(tmp_path):
    """It used to save batch == len(loader); every resume then died with UnboundLocalError."""
    cfg = dict(model="resnet20", out=str(tmp_path), epochs=2, **SMALL)  # 96 images / 32 = 3 steps an epoch
    train(run_name="straight", **cfg)
    with pytest.raises(Interrupted, match="stopped by SIGINT after epoch 1;"):
        train(run_name="cut", step_hook=_press(signal.SIGINT, (0, 2)), **cfg)
    _, cut = _weights(tmp_path / "cut")
    assert cut["epoch"] == 1 and cut["progress"]["batch"] == 0 and len(cut["metrics"]) == 1
    train(resume=tmp_path / "cut")
    a, _ = _weights(tmp_path / "straight")
    b, _ = _weights(tmp_path / "cut")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_sigterm_leaves_a_resumable_checkpoint(tmp_path):
    cfg = dict(model="resnet20", out=str(tmp_path), epochs=1, **SMALL)
    with pytest.raises(Interrupted, match="stopped by SIGTERM in epoch 1 at step 1") as err:
        train(run_name="t", step_hook=_press(signal.SIGTERM, (0, 0)), **cfg)
    assert err.value.exit_code == 128 + signal.SIGTERM
    _, ckpt = _weights(tmp_path / "t")
    assert ckpt["progress"]["batch"] == 1
    assert train(resume=tmp_path / "t").summary["epochs"] == 1
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is gone after the run


def test_the_resume_command_is_shell_quoted(tmp_path):
    cfg = dict(model="resnet20", out=str(tmp_path / "my runs"), epochs=1, **SMALL)
    with pytest.raises(Interrupted) as err:
        train(run_name="a b", step_hook=_press(signal.SIGINT, (0, 0)), **cfg)
    assert str(err.value).endswith(f"--resume '{tmp_path}/my runs/a b'")


def test_weights_that_overflow_on_the_last_update_are_caught(tmp_path, models):
    """The loss is checked before each update, so only a look at the weights sees the last one go bad."""

    def poison_last(epoch, i):
        if i == 2:
            with torch.no_grad():
                next(models[-1].parameters()).fill_(float("inf"))

    with pytest.raises(
        TrainingDiverged, match=r"NaN/inf in epoch 1 by step 3 \(lr 0.01 at that step\).*no checkpoint was written"
    ):
        train(model="resnet20", out=str(tmp_path), run_name="w", epochs=1, step_hook=poison_last, **SMALL)
    assert not (tmp_path / "w").exists()  # nothing was written, so no empty folder is left either


def test_stale_temp_files_of_a_killed_save_are_removed(tmp_path):
    train(model="resnet20", out=str(tmp_path), run_name="r", epochs=1, **SMALL)
    stale = tmp_path / "r" / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"\0" * 1000)  # what kill -9 during torch.save leaves
    train(resume=tmp_path / "r", epochs=2)
    assert not stale.exists()
