"""toolkit sweep on Optuna: pruning, the test set read once at the end, continuing a study, two workers."""

import subprocess
import sys

import optuna
import pytest
from typer.testing import CliRunner

from tests.test_cli_train import assert_one_line_error
from toolkit.cli import app
from toolkit.experiments import sweep

runner = CliRunner()
SYNTH = dict(dataset="synthetic", limit_train=256, val_size=64, epochs=2, device="cpu")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_a_sweep_prunes_and_reads_the_test_set_once_at_the_end(tmp_path, monkeypatch):
    import toolkit.data as data_mod

    loads = []
    real = data_mod.load_dataset

    def recording(name, train, *args, **kwargs):
        loads.append("train" if train else "test")
        return real(name, train, *args, **kwargs)

    monkeypatch.setattr(data_mod, "load_dataset", recording)
    monkeypatch.setattr("toolkit.train.loop.load_dataset", recording)
    s = sweep("tutorial-cnn", trials=4, out=tmp_path, seed=0, **SYNTH)
    assert s["trials"] == 4 and s["pruned"] >= 1 and s["complete"] + s["pruned"] + s["failed"] == 4
    # Every trial loads training images only; the one test-set read is the best trial's, after all of them.
    assert loads.count("test") == 1 and loads[-1] == "test" and loads.count("train") == 4
    folder = tmp_path / "sweeps" / "tutorial-cnn-sweep"
    assert {p.name for p in folder.iterdir()} >= {"study.db", "sweep.md", "sweep.json", "best.toml"}
    assert sorted(p.name for p in folder.glob("trial-*")) == [f"trial-{k}" for k in range(4)]
    best = s["best"]
    assert best["val_acc"] == max(r["value"] for r in s["rows"] if r["state"] == "complete")
    assert 0 <= best["test_acc"] <= 100
    # best.toml feeds back into toolkit train
    from toolkit.train.config import load_config_file

    cfg = load_config_file(folder / "best.toml")
    assert cfg.model == "tutorial-cnn" and cfg.lr == pytest.approx(best["params"]["lr"])


def test_rerunning_continues_the_study(tmp_path):
    sweep("tutorial-cnn", trials=2, out=tmp_path, pruner="none", **SYNTH)
    s = sweep("tutorial-cnn", trials=3, out=tmp_path, pruner="none", **SYNTH)
    assert s["trials"] == 3 and [r["number"] for r in sorted(s["rows"], key=lambda r: r["number"])] == [0, 1, 2]
    again = sweep("tutorial-cnn", trials=3, out=tmp_path, pruner="none", **SYNTH)  # already there: no new trial
    assert again["trials"] == 3


def test_two_processes_share_one_sqlite_study(tmp_path):
    args = [
        sys.executable,
        "-m",
        "toolkit",
        "sweep",
        "tutorial-cnn",
        "--trials",
        "4",
        "--epochs",
        "1",
        "--val-size",
        "64",
        "--dataset",
        "synthetic",
        "--limit-train",
        "256",
        "--device",
        "cpu",
        "--pruner",
        "none",
        "--study",
        "shared",
        "--out",
        str(tmp_path),
    ]
    workers = [
        subprocess.Popen([*args, "--seed", str(k)], stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in (0, 1)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    db = tmp_path / "sweeps" / "shared" / "study.db"
    trials = optuna.load_study(study_name="shared", storage=f"sqlite:///{db}").trials
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(numbers))) and 4 <= len(numbers) <= 5  # see sweep.py on overshoot
    dirs = {t.user_attrs["run_dir"] for t in trials}
    assert len(dirs) == len(trials)  # no trial trained twice into one folder


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--storage", "notadb://x"], "cannot open the study database 'notadb://x'"),
        (["--pruner", "asha"], "unknown --pruner 'asha'"),
        (["--trials", "0"], "must be positive integers"),
    ],
)
def test_bad_sweep_options(tmp_path, args, fragment):
    assert_one_line_error(run("sweep", "tutorial-cnn", "--out", tmp_path, *args), fragment)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('[learning_rate]\ntype = "float"\nlow = 0.1\nhigh = 1.0\n', "'learning_rate' is not a TrainConfig field"),
        ('[lr]\ntype = "float"\nlow = 0.1\nhigh = 0.1\n', "needs numbers low < high"),
        ('[lr]\ntype = "gaussian"\n', "needs type = one of float, int, categorical"),
        ('[augment]\ntype = "categorical"\nchoices = []\n', "choices must be a non-empty list"),
        ('[lr]\ntype = "float"\nlow = 0.0\nhigh = 1.0\nlog = true\n', "a log range needs low > 0"),
    ],
)
def test_bad_search_spaces(tmp_path, text, fragment):
    space = tmp_path / "space.toml"
    space.write_text(text)
    assert_one_line_error(run("sweep", "tutorial-cnn", "--space", space, "--out", tmp_path), fragment)
