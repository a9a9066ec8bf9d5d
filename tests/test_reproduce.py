"""toolkit reproduce: seeds as run folders, statistics against numpy, resuming, verdicts, bad input."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.test_cli_train import assert_one_line_error
from toolkit.cli import app
from toolkit.core.stats import describe, t975
from toolkit.experiments.reproduce import reproduce, summarize_seeds

runner = CliRunner()
QUICK = dict(dataset="synthetic", limit_train=128, limit_test=64, epochs=1, device="cpu")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_statistics_match_numpy():
    values = [93.1, 93.9, 94.3, 92.8]
    d = describe(values)
    assert d["mean"] == pytest.approx(np.mean(values)) and d["std"] == pytest.approx(np.std(values, ddof=1))
    half = 3.182 * np.std(values, ddof=1) / math.sqrt(4)  # t(0.975, 3 df)
    assert d["ci95"] == pytest.approx([np.mean(values) - half, np.mean(values) + half])
    assert describe([94.0])["ci95"] is None
    assert t975(40) == pytest.approx(2.021, abs=1e-3) and t975(1000) == pytest.approx(1.962, abs=1e-3)


def test_verdicts(monkeypatch):
    def fake(acc, seed):
        return {
            "final_test_acc": acc,
            "final_test_acc_tta": None,
            "train_config": {"seed": seed},
            "dataset": "cifar10",
            "total_seconds": 1.0,
            "img_per_s": 1.0,
            "epochs": 1,
            "run_dir": "x",
        }

    summarize = lambda accs, ref: summarize_seeds("m", [fake(a, i) for i, a in enumerate(accs)], ref, "src")  # noqa: E731
    import toolkit.experiments.reproduce as r

    monkeypatch.setattr(r, "_per_epoch", lambda run_dir: [])
    assert summarize([93.8, 94.1], 94.01)["verdict"] == "reproduced"
    assert summarize([92.0, 92.2], 94.01)["verdict"] == "gap -1.91 pt"
    assert summarize([93.6], 94.01)["verdict"] == "reproduced"  # within 0.5 pt
    assert summarize([93.0, 93.1], None)["verdict"] is None


def test_two_seeds_then_a_third_reuses_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))  # no other test's timings as a prior
    result = reproduce("resnet20", seeds=2, out=tmp_path, **QUICK)
    folder = tmp_path / "reproduce-resnet20"
    accs = [s["final_test_acc"] for s in result["per_seed"]]
    assert [s["seed"] for s in result["per_seed"]] == [0, 1]
    assert result["stats"]["mean"] == pytest.approx(np.mean(accs))
    assert result["stats"]["std"] == pytest.approx(np.std(accs, ddof=1))
    assert result["verdict"] is None  # synthetic data: no published figure applies
    saved = json.loads((folder / "reproduce.json").read_text())
    assert saved["stats"] == result["stats"] and (folder / "reproduce.png").read_bytes()[:4] == b"\x89PNG"
    assert "| 0 |" in (folder / "reproduce.md").read_text()
    # Each seed says what it trained in (a short run: the policy's prior for conv nets, which the table names).
    assert {(s["amp"], s["channels_last"], s["compiled"]) for s in result["per_seed"]} == {("off", True, False)}
    assert "| fp32, channels_last |" in (folder / "reproduce.md").read_text()
    before = (folder / "seed-0" / "checkpoint.pt").stat().st_mtime_ns
    lines = []
    again = reproduce("resnet20", seeds=3, out=tmp_path, progress=lines.append, **QUICK)
    assert (folder / "seed-0" / "checkpoint.pt").stat().st_mtime_ns == before  # not trained again
    assert lines[0].startswith("seed 0: finished earlier, reused") and lines[2].startswith("seed 2: training")
    assert [s["final_test_acc"] for s in again["per_seed"][:2]] == accs


def test_an_interrupted_seed_resumes(tmp_path):
    import os
    import signal

    from toolkit.core.errors import Interrupted
    from toolkit.train import train

    folder = tmp_path / "reproduce-resnet20"
    press = lambda epoch, i: os.kill(os.getpid(), signal.SIGINT) if (epoch, i) == (0, 0) else None  # noqa: E731
    with pytest.raises(Interrupted):
        reproduce("resnet20", seeds=1, out=tmp_path, **{**QUICK, "epochs": 2}, step_hook=press)
    assert not (folder / "seed-0" / "summary.json").exists()
    lines = []
    result = reproduce("resnet20", seeds=1, out=tmp_path, progress=lines.append, **{**QUICK, "epochs": 2})
    assert lines == [f"seed 0: resuming {folder / 'seed-0'}"] and result["per_seed"][0]["epochs"] == 2
    straight = train(model="resnet20", **{**QUICK, "epochs": 2}, seed=0, out=str(tmp_path), run_name="straight")
    assert result["per_seed"][0]["final_test_acc"] == straight.summary["final_test_acc"]


def test_bad_input(tmp_path):
    assert_one_line_error(run("reproduce", "resnet20", "--seeds", "0", "--out", tmp_path), "--seeds must be a positive")
    assert_one_line_error(run("reproduce", "vgg", "--out", tmp_path), "unknown model 'vgg'")
    from tests.helpers import tiny_run

    tiny_run(tmp_path / "reproduce-resnet20", "fast-cnn", "seed-0")  # another model's run in the seed folder
    assert_one_line_error(
        run("reproduce", "resnet20", "--seeds", "1", "--out", tmp_path, "--dataset", "synthetic"),
        "holds a fast-cnn run, not resnet20",
    )
    tiny_run(tmp_path / "other" / "reproduce-resnet20", "resnet20", "seed-0")
    r = run(
        "reproduce",
        "resnet20",
        "--seeds",
        "1",
        "--out",
        tmp_path / "other",
        "--dataset",
        "synthetic",
        "--limit-train",
        "64",
        "--epochs",
        "1",
    )
    assert_one_line_error(r, "was trained with other settings", "batch_size")


def test_cli_without_a_published_figure_reports_no_verdict(tmp_path):
    r = run(
        "reproduce",
        "tutorial-cnn",
        "--seeds",
        "1",
        "--out",
        tmp_path,
        "--dataset",
        "synthetic",
        "--limit-train",
        "64",
        "--limit-test",
        "32",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--progress",
        "none",
    )
    assert r.exit_code == 0, r.output
    assert "tutorial-cnn: 1 seed(s), test accuracy" in r.stdout and "no published figure" in r.stdout
