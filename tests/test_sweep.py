"""toolkit sweep on Optuna: pruning, the test set read once at the end, continuing a study, two workers."""

import importlib
import json
import signal
import subprocess
import sys
import time
import warnings

import optuna
import pytest
from typer.testing import CliRunner

from tests.test_cli_train import assert_one_line_error
from toolkit.cli import app
from toolkit.experiments import sweep
from toolkit.run.checkpoint import load_checkpoint

sweep_module = importlib.import_module("toolkit.experiments.sweep")  # the package's `sweep` is the function
sweep_storage = importlib.import_module("toolkit.experiments.sweep_storage")

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
    monkeypatch.setattr("toolkit.train.setup.load_dataset", recording)
    lines = []
    s = sweep("tutorial-cnn", trials=4, out=tmp_path, seed=0, progress=lines.append, **SYNTH)
    assert s["trials"] == 4 and s["pruned"] >= 1 and s["complete"] + s["pruned"] + s["failed"] == 4
    assert len(lines) == 4 and sum(": pruned after epoch " in line for line in lines) == s["pruned"]  # one per trial
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
    sweep("resnet20", trials=2, out=tmp_path, pruner="none", **SYNTH)
    s = sweep("resnet20", trials=3, out=tmp_path, pruner="none", **SYNTH)
    assert s["trials"] == 3 and [r["number"] for r in sorted(s["rows"], key=lambda r: r["number"])] == [0, 1, 2]
    again = sweep("resnet20", trials=3, out=tmp_path, pruner="none", **SYNTH)  # already there: no new trial
    assert again["trials"] == 3


def _load(tmp_path, name):
    db = tmp_path / "sweeps" / name / "study.db"
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}").trials


def _sweep_command(tmp_path, study, *, trials, epochs, limit_train, extra=()):
    """`toolkit sweep` on the synthetic set as its own process, as a user (or a second worker) starts it.
    The tutorial CNN: its 295 MB checkpoints keep a trial running long enough to be killed mid-way."""
    args = [sys.executable, "-m", "toolkit", "sweep", "tutorial-cnn", "--trials", str(trials), "--epochs", str(epochs)]
    args += ["--val-size", "64", "--dataset", "synthetic", "--limit-train", str(limit_train), "--device", "cpu"]
    return [*args, "--pruner", "none", "--study", study, "--out", str(tmp_path), *extra]


def test_killing_a_sweep_and_rerunning_it_continues_the_study(tmp_path):
    args = _sweep_command(tmp_path, "killed", trials=2, epochs=3, limit_train=448)
    worker = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = tmp_path / "sweeps" / "killed" / "trial-1"
    deadline = time.monotonic() + 300
    while not (second / "metrics.jsonl").exists() and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the second trial has finished an epoch: it is mid-run
    worker.send_signal(signal.SIGINT)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 130, (out, err)
    assert err.count("\n") == 1 and "re-run the same command to continue" in err, err
    trials = _load(tmp_path, "killed")
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "FAIL", "WAITING"], states
    assert trials[1].user_attrs["interrupted"] == "SIGINT" and trials[2].user_attrs["retry_of"] == 1
    stopped_at = load_checkpoint(second)["progress"]  # stopped as toolkit train stops: a resumable checkpoint
    assert 1 <= stopped_at["epoch"] < 3 or stopped_at["batch"] > 0  # mid-epoch, or between epochs 1 and 3

    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "2 trials: 2 complete, 0 pruned, 0 failed (1 interrupted or lost, run again)" in done.stdout
    trials = _load(tmp_path, "killed")
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].params == trials[1].params  # the interrupted configuration, run again in full
    summary = json.loads((tmp_path / "sweeps" / "killed" / "sweep.json").read_text())
    assert summary["trials"] == 2 and summary["retried"] == 1
    assert [r["state"] for r in sorted(summary["rows"], key=lambda r: r["number"])] == [
        "complete",
        "interrupted",
        "complete",
    ]


def test_one_signal_stops_every_trial_of_a_threaded_sweep(tmp_path):
    # --n-jobs 2 trains two trials in worker threads of one process; the signal reaches the main thread only,
    # and the shared stop flag must stop both, each queued again, rather than leave one running to its end.
    args = _sweep_command(tmp_path, "threads", trials=2, epochs=4, limit_train=448, extra=["--n-jobs", "2"])
    worker = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "sweeps" / "threads"
    deadline = time.monotonic() + 300
    while worker.poll() is None and time.monotonic() < deadline:
        if all((folder / f"trial-{k}" / "metrics.jsonl").exists() for k in (0, 1)):
            break  # both trials have finished an epoch of four: both are mid-run
        time.sleep(0.05)
    worker.send_signal(signal.SIGINT)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 130, (out, err)
    assert err.count("\n") == 1 and "re-run the same command to continue" in err, err
    trials = _load(tmp_path, "threads")
    assert sorted(t.state.name for t in trials) == ["FAIL", "FAIL", "WAITING", "WAITING"], trials
    stopped = {t.number: t for t in trials if t.state.name == "FAIL"}
    assert all(t.user_attrs["interrupted"] == "SIGINT" for t in stopped.values())
    queued = [t for t in trials if t.state.name == "WAITING"]
    assert sorted(t.user_attrs["retry_of"] for t in queued) == sorted(stopped)
    for k in stopped:  # each stopped as toolkit train stops, with a checkpoint to resume from
        assert load_checkpoint(folder / f"trial-{k}")["progress"]["epoch"] < 4

    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "2 trials: 2 complete, 0 pruned, 0 failed (2 interrupted or lost, run again)" in done.stdout
    trials = _load(tmp_path, "threads")
    rerun = {t.user_attrs["retry_of"]: t for t in trials if t.state.name == "COMPLETE"}
    assert sorted(rerun) == sorted(stopped) and all(rerun[k].params == stopped[k].params for k in stopped)


def test_a_trial_whose_worker_went_silent_is_failed_and_run_again(tmp_path):
    # A worker killed with SIGKILL leaves its trial RUNNING; its heartbeat stops, and after the grace period
    # the next trial any worker starts fails it and queues its configuration again.
    folder = tmp_path / "sweeps" / "lost"
    folder.mkdir(parents=True)
    storage = sweep_storage.open_storage(f"sqlite:///{folder / 'study.db'}", grace=2)
    study = optuna.create_study(study_name="lost", storage=storage, direction="maximize")
    lr = sweep_module.default_space("tutorial-cnn")["lr"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna: heartbeats are meant for optimize(), which the real worker ran
        orphan = study.ask()
    lost_lr = orphan.suggest_float("lr", lr["low"], lr["high"], log=True)
    storage.record_heartbeat(orphan._trial_id)  # what its worker did before it died
    time.sleep(3.5)  # past the 2 s grace, with a second to spare: SQLite's clock has whole seconds
    s = sweep("tutorial-cnn", trials=2, out=tmp_path, study="lost", pruner="none", grace=2, **SYNTH)
    rows = {r["number"]: r for r in s["rows"]}
    assert rows[0]["state"] == "lost" and rows[1]["state"] == "complete" and rows[1]["params"]["lr"] == lost_lr
    assert s["trials"] == 2 and s["complete"] == 2 and s["retried"] == 1


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
        ('[lr]\ntype = "float"\nlow = 0.1\nhigh = 0.1\n', "needs finite numbers low < high"),
        ('[lr]\ntype = "gaussian"\n', "needs type = one of float, int, categorical"),
        ('[augment]\ntype = "categorical"\nchoices = []\n', "choices must be a non-empty list"),
        ('[lr]\ntype = "float"\nlow = 0.0\nhigh = 1.0\nlog = true\n', "a log range needs low > 0"),
        ('[seed]\ntype = "int"\nlow = 0\nhigh = 9\n', "'seed' is set by the sweep or the command line"),
        ('[run_name]\ntype = "categorical"\nchoices = ["a"]\n', "'run_name' is set by the sweep"),
        ('[batch_size]\ntype = "int"\nlow = 0\nhigh = 64\nlog = true\n', "a log range needs low >= 1"),
        ('[lr]\ntype = "float"\nlow = -inf\nhigh = 1.0\n', "needs finite numbers low < high"),
        ('[lr]\ntype = "float"\nlow = 0.1\nhigh = nan\n', "needs finite numbers low < high"),
        ('[batch_size]\ntype = "int"\nlow = 8.5\nhigh = 64\n', "an int range needs whole numbers"),
        # Values no trial could train with are found before the first trial, not by each trial failing.
        ('[optimizer]\ntype = "categorical"\nchoices = ["adam", "bogus"]\n', "optimizer = 'bogus' cannot be trained"),
        ('[batch_size]\ntype = "int"\nlow = -8\nhigh = 64\n', "batch_size = -8 cannot be trained"),
        ('[batch_size]\ntype = "float"\nlow = 8\nhigh = 64\n', "'batch_size' is a whole number"),
        ('[optimizer]\ntype = "categorical"\nchoices = [3]\n', "'optimizer' must be a string, got 3"),
        ('[lr]\ntype = "float"\nlow = 0.1\nhigh = 1.0\nstep = 0.0\n', "unknown key 'step' for a float entry"),
    ],
)
def test_bad_search_spaces(tmp_path, text, fragment):
    space = tmp_path / "space.toml"
    space.write_text(text)
    assert_one_line_error(run("sweep", "tutorial-cnn", "--space", space, "--out", tmp_path), fragment)


def test_a_json_space_with_a_key_given_twice_is_refused(tmp_path):
    space = tmp_path / "space.json"
    space.write_text('{"lr": {"type": "float", "low": 0.1, "high": 1.0}, "lr": {"type": "float", "low": 1, "high": 2}}')
    assert_one_line_error(run("sweep", "tutorial-cnn", "--space", space, "--out", tmp_path), "key 'lr' is given twice")


def test_a_space_key_the_command_line_also_sets_is_refused(tmp_path):
    # Trials would train --epochs 1 while the study (sweep.md, best.toml) recorded the sampled epochs.
    space = tmp_path / "space.toml"
    space.write_text('[epochs]\ntype = "float"\nlow = 1\nhigh = 3\n')
    result = run("sweep", "tutorial-cnn", "--space", space, "--epochs", "1", "--out", tmp_path)
    assert_one_line_error(result, "'epochs' is also set on the command line (--epochs 1.0)")
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize("name", ["median", "hyperband"])
def test_pruners_wait_for_half_the_epochs(name):
    # Augmentation and decaying schedules lag early: a trial far below the others is judged only from epoch 5 of 10.
    study = optuna.create_study(direction="maximize", pruner=sweep_module._pruner(name, 10))
    for _ in range(4):
        good = study.ask()
        for epoch in range(1, 11):
            good.report(80.0, epoch)
            assert not good.should_prune()  # hyperband's rungs record a trial only when it asks
        study.tell(good, 80.0)
    late = study.ask()
    verdicts = []
    for epoch in range(1, 11):
        late.report(10.0, epoch)
        verdicts.append(late.should_prune())
    assert verdicts.index(True) == 4  # epochs 1-4 are never judged; epoch 5 is


def test_two_threads_never_claim_one_queued_trial(tmp_path):
    # Optuna claims a queued trial by reading it WAITING, then writing RUNNING; SQLite does not lock the read,
    # so two --n-jobs threads could both claim it and train it into one folder ("trial-2 is in use").
    import threading

    from optuna.trial import TrialState

    storage = sweep_storage.open_storage(f"sqlite:///{tmp_path / 'race.db'}")
    study = optuna.create_study(study_name="race", storage=storage)
    doubles = 0
    for _ in range(60):
        study.enqueue_trial({"x": 1.0})
        trial_id = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))[0]._trial_id
        barrier, claims = threading.Barrier(2), []

        def claim(trial_id=trial_id, barrier=barrier, claims=claims):
            barrier.wait()
            claims.append(storage.set_trial_state_values(trial_id, TrialState.RUNNING))

        threads = [threading.Thread(target=claim) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert True in claims  # somebody got it
        doubles += claims.count(True) > 1
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    assert doubles == 0
    started = storage.get_trial(trial_id).datetime_start
    assert started is not None  # the claim records the start time as Optuna's own does


def test_kill_9_during_the_last_trial_then_the_same_command_finishes_the_study(tmp_path):
    # SIGKILL leaves the trial RUNNING with nobody to finish it. The same command again waits until the trial's
    # heartbeat is older than --grace, fails it, re-runs its configuration, and ends with --trials finished trials.
    args = _sweep_command(tmp_path, "kill9", trials=2, epochs=3, limit_train=448, extra=["--grace", "3"])
    worker = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "sweeps" / "kill9" / "trial-1"
    deadline = time.monotonic() + 300
    while not (last / "metrics.jsonl").exists() and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.kill()
    worker.communicate(timeout=60)
    assert [t.state.name for t in _load(tmp_path, "kill9")] == ["COMPLETE", "RUNNING"]

    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "2 trials: 2 complete, 0 pruned, 0 failed (1 interrupted or lost, run again)" in done.stdout, done.stdout
    assert "trial 1: its worker was silent for 3 s; marked lost, queued again" in done.stdout
    assert "trial 2: val acc" in done.stdout and "(trial 1's configuration, run again)" in done.stdout
    trials = _load(tmp_path, "kill9")
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].params == trials[1].params and trials[2].system_attrs["failed_trial"] == 1
    rows = json.loads((tmp_path / "sweeps" / "kill9" / "sweep.json").read_text())["rows"]
    assert {r["number"]: r["state"] for r in rows} == {0: "complete", 1: "lost", 2: "complete"}


def test_a_second_worker_samples_with_its_own_seed(tmp_path):
    # Equal sampler seeds would make a second worker (or a re-run) propose the configurations already tried.
    first = sweep("resnet20", trials=1, out=tmp_path, sampler="random", pruner="none", **SYNTH)
    lines = []
    second = sweep("resnet20", trials=2, out=tmp_path, sampler="random", pruner="none", progress=lines.append, **SYNTH)
    assert first["trials"] == 1 and second["trials"] == 2
    trials = _load(tmp_path, "resnet20-sweep")
    seeds = [t.user_attrs["sampler_seed"] for t in trials]
    assert seeds[0] == 0 and seeds[1] != 0 and f"sampler is seeded {seeds[1]}" in lines[0]
    assert trials[0].params != trials[1].params


def test_a_sweep_with_no_complete_trial_fails_and_writes_no_best_file(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text('[lr]\ntype = "float"\nlow = 1e8\nhigh = 1e9\nlog = true\n')  # every trial diverges
    result = run("sweep", "tutorial-cnn", "--trials", "1", "--space", space, "--out", tmp_path, "--pruner", "none",
                 *[a for k, v in SYNTH.items() for a in (f"--{k.replace('_', '-')}", v)])  # fmt: skip
    assert_one_line_error(result, "no trial completed (0 pruned, 1 failed); no best.toml written")
    folder = tmp_path / "sweeps" / "tutorial-cnn-sweep"
    assert (folder / "sweep.md").is_file() and not (folder / "best.toml").exists()


@pytest.mark.parametrize("study", ["../../x", "/tmp/elsewhere", "a/b", ".."])
def test_the_study_name_cannot_leave_the_sweeps_folder(tmp_path, study):
    assert_one_line_error(
        run("sweep", "tutorial-cnn", "--study", study, "--out", tmp_path), "must be a plain folder name"
    )
    assert not (tmp_path / "sweeps").exists() or not any((tmp_path / "sweeps").iterdir())


WORKER_AT_BARRIER = """
import os, sys, time
go = sys.argv[1]
while not os.path.exists(go):  # every worker spins here, then all start in the same millisecond
    time.sleep(0.0005)
sys.argv = ["toolkit", *sys.argv[2:]]
from toolkit.cli import app
app()
"""


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_three_workers_released_together_one_killed_mid_trial_run_each_trial_once(tmp_path, request, engine):
    # A job array: three workers on one fresh study database, released together by a barrier, so all three
    # create Optuna's schema and the study at once (on PostgreSQL the second died on a duplicate key in
    # pg_type) and finish their trials at about the same moment (where two could each start "the last one").
    # One is killed with -9 mid-trial: its trial goes failed once its heartbeat is --grace old and its
    # configuration runs again. The study ends with exactly --trials finished trials, each trained once, in a
    # folder of its own.
    extra = ["--grace", "5"]
    if engine == "postgresql":
        server = request.getfixturevalue("postgres")
        extra += ["--storage", server["url"]]
        print(f"\nserver: {server['version']}")
    args = _sweep_command(tmp_path, "shared-kill", trials=4, epochs=2, limit_train=448, extra=extra)[3:]
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_AT_BARRIER, str(go), *args, "--seed", str(k)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    time.sleep(1.0)  # each is at the barrier
    go.touch()
    folder = tmp_path / "sweeps" / "shared-kill"
    deadline = time.monotonic() + 300
    while not list(folder.glob("trial-*/metrics.jsonl")) and time.monotonic() < deadline:
        assert all(w.poll() is None for w in workers), [w.communicate() for w in workers if w.poll() is not None]
        time.sleep(0.05)  # a trial has finished an epoch of two: all three workers are mid-trial
    victim, *others = workers
    victim.kill()
    outputs = [victim.communicate(timeout=60)] + [w.communicate(timeout=600) for w in others]
    for k, (w, (out, err)) in enumerate(zip(workers, outputs, strict=True)):
        print(f"worker {k} (exit {w.returncode}):\n{out}{err}")
    assert victim.returncode == -9 and [w.returncode for w in others] == [0, 0], outputs

    storage = server["url"] if engine == "postgresql" else f"sqlite:///{folder / 'study.db'}"
    trials = optuna.load_study(study_name="shared-kill", storage=storage).trials
    print("trials: " + ", ".join(f"{t.number} {t.state.name} {t.system_attrs.get('failed_trial', '')}" for t in trials))
    trained = [t for t in trials if not t.user_attrs.get("surplus")]  # one started beyond --trials stops at once
    finished = [t for t in trained if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4 and {t.state.name for t in trained} == {"COMPLETE", "FAIL"}
    (killed,) = [t for t in trained if t.state.name == "FAIL"]  # what the victim was running
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE" and retry[0].params == killed.params
    assert len({t.user_attrs["run_dir"] for t in trained}) == len(trained)  # none trained twice into one folder
    assert sorted(p.name for p in folder.glob("trial-*")) == sorted(f"trial-{t.number}" for t in trained)
    summaries = [out for out, _ in outputs[1:]]
    assert all("4 trials: 4 complete, 0 pruned, 0 failed (1 interrupted or lost, run again)" in o for o in summaries)
