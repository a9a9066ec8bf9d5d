"""`toolkit sweep`: hyperparameter search on Optuna, each trial a normal training run scored on validation.

Each trial trains in OUT/sweeps/<study>/trial-<k>/ with a validation split and *without* test evaluation
(the test set is not even loaded), reports val accuracy after every epoch so the pruner can stop it, and
returns its final val accuracy. Pruned and diverged trials are recorded as such and the sweep goes on.
Test accuracy is measured once, at the end, for the best trial only.

The study lives in a database: SQLite in the study folder by default, so re-running the command continues
it; any URL Optuna accepts (PostgreSQL, MySQL) lets processes on many machines work on one study. Each
process starts trials until the study holds `trials` finished or live running ones, then waits for the
live ones of other workers to finish, so it can take over any whose worker dies. Two workers that start
their last trials in the same instant would overshoot; the later-created of the two sees it is one too many
and stops before training (_surplus). Each worker's sampler gets its own seed
(the study's creator uses --seed; later workers and re-runs draw one, recorded in their trials), so two
workers do not propose the same configurations.

Stopping and continuing: SIGINT or SIGTERM stops the running trial at its next step (a checkpoint is written,
as `toolkit train` does), records it as interrupted, queues its configuration to run again first, and ends
the process with exit code 128 + signal; re-running the command continues the study. A worker that dies
without a word (SIGKILL, a lost machine) stops sending its heartbeat; after GRACE_SECONDS the next trial any
worker starts (or a worker waiting for the study to finish, or the same command run again) marks that trial
failed and queues its configuration again. A retried trial is not counted towards `trials`: the one that
replaces it is.

Optuna claims a queued trial with a read-then-write that SQLite does not lock, so two threads (--n-jobs) or
two processes could both take one queued trial and train it into one folder; _ClaimingStorage claims it with
one conditional UPDATE instead.
"""

from __future__ import annotations

import math
import os
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.core.errors import ConfigError, Interrupted, ToolkitError, TrainingDiverged, first_line
from toolkit.experiments.sweep_results import short, summarize
from toolkit.experiments.sweep_space import check_space, default_space, load_space, suggest
from toolkit.experiments.sweep_storage import (
    GRACE_SECONDS,
    SAMPLERS,
    MaxTrials,
    Surplus,
    count_trials,
    creation_lock,
    heartbeat_seconds,
    is_surplus,
    open_study,
    retry_of,
)
from toolkit.models import get_spec
from toolkit.run.folder import BEST_TOML, DEFAULT_ROOT, STUDY_DB, SWEEP_MD, SWEEPS, check_folder_name
from toolkit.train.progress import Reporter

__all__ = ["check_space", "default_space", "load_space", "sweep"]


PRUNERS = ("median", "hyperband", "none")


def _sleep_unless_stopped(stop, seconds: float) -> None:
    end = time.monotonic() + seconds
    while stop.signum is None and time.monotonic() < end:
        time.sleep(0.2)


def _pruner(name: str, epochs: float):
    """Pruners judge a trial only from the middle of its epochs: augmentation, regularisation and decaying
    schedules cost accuracy early and pay late, so judging at epoch 1 would prune exactly what helps."""
    import optuna

    halfway = max(1, math.ceil(epochs / 2))
    return {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=halfway),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=halfway, max_resource=math.ceil(epochs)),
        "none": optuna.pruners.NopPruner,
    }[name]()


def sweep(
    model: str,
    *,
    trials: int,
    space: str | os.PathLike | None = None,
    epochs: float | None = None,
    val_size: int = 5000,
    study: str | None = None,
    storage: str | None = None,
    pruner: str = "median",
    sampler: str = "tpe",
    timeout: float | None = None,
    n_jobs: int = 1,
    seed: int = 0,
    grace: float = GRACE_SECONDS,
    out: str | os.PathLike = DEFAULT_ROOT,
    progress: Callable[[str], None] = lambda line: None,
    **train_options: Any,
) -> dict[str, Any]:
    """Run (or continue) a study of `trials` trials; returns its summary (also sweep.json/.md, best.toml)."""
    import optuna

    from toolkit.train.loop import StopFlag, stop_on_signals

    spec = get_spec(model)
    if trials < 1 or n_jobs < 1 or val_size < 1:
        raise ConfigError("--trials, --n-jobs and --val-size must be positive integers")
    if not 2 <= grace < math.inf:
        raise ConfigError(f"--grace must be a number of seconds >= 2, got {grace}")
    if pruner not in PRUNERS:
        raise ConfigError(f"unknown --pruner {pruner!r}; choose {', '.join(PRUNERS)}")
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown --sampler {sampler!r}; choose {', '.join(SAMPLERS)}")
    search = load_space(space) if space is not None else default_space(model)
    fixed = {**train_options, **({"epochs": epochs} if epochs is not None else {})}
    check_space(search, model, fixed, where=f"search space {space}" if space is not None else "the default space")
    study_name = study or f"{model}-sweep"
    check_folder_name(study_name, "--study")  # it names a folder under OUT/sweeps/
    folder = Path(out) / SWEEPS / study_name
    folder.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(folder / STUDY_DB).resolve()}"
    # Optuna logs each failed trial with its traceback; the progress lines below say what happened in one line
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with creation_lock(url, folder):
        st, sampler_seed = open_study(
            url, study_name, grace, sampler, seed, _pruner(pruner, epochs or spec.recipe.epochs)
        )
    if sampler_seed != seed:
        progress(
            f"study {study_name!r} exists: this worker's sampler is seeded {sampler_seed} (trials keep --seed {seed})"
        )

    stop = StopFlag()  # shared with every trial's train(): one signal stops whichever trials are running
    trial_plan = _Trials(
        model, trials, search, train_options, epochs, val_size, seed, sampler_seed, folder, progress, stop
    )
    started = time.perf_counter()
    with stop_on_signals(stop, enabled=True):
        _work(st, trial_plan, stop, grace=grace, timeout=timeout, n_jobs=n_jobs)
    summary = summarize(st, folder, model, search, time.perf_counter() - started)
    if stop.signum is not None:
        raise Interrupted(
            f"sweep {study_name!r} stopped by {signal.Signals(stop.signum).name} with "
            f"{summary['complete'] + summary['pruned'] + summary['failed']} of {trials} trials finished; "
            "re-run the same command to continue the study",
            stop.signum,
        )
    if summary["best"] is None:
        raise ToolkitError(
            f"sweep {study_name!r}: no trial completed ({summary['pruned']} pruned, {summary['failed']} failed); "
            f"no {BEST_TOML} written; see {folder / SWEEP_MD} for each trial's fate"
        )
    return summary


@dataclass
class _Trials:
    """What every trial of this worker trains: the model, the space it samples, the options the command line fixed.
    Called by Optuna with a trial, it trains it (the objective) and returns its final val accuracy."""

    model: str
    trials: int
    search: dict[str, dict[str, Any]]
    train_options: dict[str, Any]
    epochs: float | None
    val_size: int
    seed: int
    sampler_seed: int
    folder: Path
    progress: Callable[[str], None]
    stop: Any  # the sweep's StopFlag, shared with every trial's train()

    def __call__(self, trial) -> float:
        """Optuna's objective: train one trial (its own folder, validation only) and return its final val acc."""
        import optuna

        from toolkit.train.loop import train

        if is_surplus(trial.study, trial._trial_id, self.trials):
            trial.set_user_attr("surplus", True)
            self.progress(
                f"trial {trial.number}: not run: another worker started the study's last trial at the same moment"
            )
            raise Surplus()
        params = suggest(trial, self.search)
        options = {**self.train_options, **params}
        if self.epochs is not None:
            options["epochs"] = self.epochs
        trial.set_user_attr("run_dir", str(self.folder / f"trial-{trial.number}"))
        trial.set_user_attr("sampler_seed", self.sampler_seed)
        started = time.perf_counter()
        try:
            result = train(
                model=self.model,
                out=str(self.folder),
                run_name=f"trial-{trial.number}",
                val_size=self.val_size,
                test_eval=False,
                seed=self.seed,
                reporter=_PruningReporter(trial),
                stop=self.stop,
                **options,
            )
        except Interrupted:
            trial.set_user_attr("interrupted", signal.Signals(self.stop.signum).name)  # train() set the shared flag
            trial.study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
            self.progress(f"trial {trial.number}: interrupted; its configuration runs again when the sweep continues")
            raise  # recorded as failed; MaxTrials sees the flag and stops the study
        except optuna.TrialPruned as exc:
            self.progress(f"trial {trial.number}: pruned {exc} with {short(params)}")
            raise
        except TrainingDiverged as exc:
            trial.set_user_attr("diverged", first_line(exc))
            self.progress(f"trial {trial.number}: diverged ({first_line(exc)})")
            return float("nan")  # Optuna records the trial as failed; the sweep goes on
        except ToolkitError as exc:
            trial.set_user_attr("error", first_line(exc))
            self.progress(f"trial {trial.number}: failed ({first_line(exc)})")
            raise  # recorded as failed (catch= in _work); the sweep goes on
        finally:
            trial.set_user_attr("seconds", time.perf_counter() - started)
        value = result.summary["final_val_acc"]
        again = retry_of(trial.storage.get_trial(trial._trial_id))
        rerun = "" if again is None else f" (trial {again}'s configuration, run again)"
        self.progress(f"trial {trial.number}: val acc {value:.2f}% with {short(params)}{rerun}")
        return value


def _work(st, plan: _Trials, stop, *, grace: float, timeout: float | None, n_jobs: int) -> None:
    """Start trials until the study holds `plan.trials` counted ones, then wait for other workers' running trials
    (failing and re-queuing those whose worker went silent), until done, out of time, or stopped by a signal."""
    import optuna
    from optuna.trial import TrialState

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # failing stale trials
        waited_for: set[int] = set()
        while stop.signum is None:
            # A dead worker's trial would count as running forever: fail it (its configuration is queued again).
            was_running = {t.number for t in st.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            optuna.storages.fail_stale_trials(st)
            for t in st.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
                if t.number in was_running:
                    plan.progress(f"trial {t.number}: its worker was silent for {grace:g} s; marked lost, queued again")
            left = None if timeout is None else timeout - (time.perf_counter() - started)
            if left is not None and left <= 0:
                break
            if count_trials(st) < plan.trials:
                st.optimize(
                    plan,
                    n_trials=plan.trials,
                    timeout=left,
                    n_jobs=n_jobs,
                    callbacks=[MaxTrials(plan.trials, stop)],
                    catch=(ToolkitError,),
                    gc_after_trial=True,
                )
                continue
            running = st.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not running:
                break
            # Other workers' trials: wait for them to finish, or to go silent and be taken over here.
            for t in running:
                if t.number not in waited_for:
                    waited_for.add(t.number)
                    plan.progress(
                        f"trial {t.number}: running in another worker; waiting for it to finish "
                        f"(taken over if its worker is silent for {grace:g} s)"
                    )
            _sleep_unless_stopped(stop, heartbeat_seconds(grace))


class _PruningReporter(Reporter):
    """A training Reporter that hands each epoch's val accuracy to Optuna and stops a trial it prunes."""

    def __init__(self, trial):
        self.trial = trial

    def epoch_end(self, metrics) -> None:
        import optuna

        self.trial.report(metrics["val_acc"], metrics["epoch"])
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"after epoch {metrics['epoch']} at val acc {metrics['val_acc']:.2f}%")
