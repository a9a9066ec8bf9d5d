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

import contextlib
import fcntl
import json
import math
import os
import secrets
import signal
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolkit.core.errors import ConfigError, Interrupted, ToolkitError, TrainingDiverged, first_line
from toolkit.core.files import write_text
from toolkit.core.markdown import markdown_table
from toolkit.models import get_spec
from toolkit.run.folder import DEFAULT_ROOT, check_folder_name
from toolkit.train.progress import Reporter

PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random")
DISTRIBUTIONS = ("float", "int", "categorical")
GRACE_SECONDS = 120.0  # a trial silent this long lost its worker: it is failed and its configuration retried
HEARTBEATS_PER_GRACE = 4  # a live worker beats this often within the grace period, so one late beat is no death
STUDY_LOCK_KEY = 0x746F6F6C6B6974  # "toolkit": the PostgreSQL advisory lock that serializes study creation
MAX_RETRIES = 2  # a configuration that loses its worker this many times is left failed
# Set by the sweep itself, or not hyperparameters: a space may not search them.
NOT_SEARCHABLE = (
    "model", "dataset", "data_dir", "download", "device", "limit_train", "limit_test", "val_size",
    "test_eval", "seed", "out", "run_name", "stop_at_accuracy", "eval_batch_size",
)  # fmt: skip


def default_space(model: str) -> dict[str, dict[str, Any]]:
    """A decade of lr around the recipe's, weight decay, label smoothing, augmentation, batch size, the lr
    schedule (and SGD momentum): the knobs a recipe has. Schedules scale with a run's length, so a short trial's
    cosine is the same shape as the retrain's."""
    r = get_spec(model).recipe
    space: dict[str, dict[str, Any]] = {
        "lr": {"type": "float", "low": r.lr / math.sqrt(10), "high": r.lr * math.sqrt(10), "log": True},
        "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
        "augment": {"type": "categorical", "choices": [True, False]},
        "batch_size": {
            "type": "categorical",
            "choices": sorted({max(8, r.batch_size // 2), r.batch_size, r.batch_size * 2}),
        },
        # warmup-linear is left out: it needs three more parameters to mean anything
        "schedule": {"type": "categorical", "choices": list(dict.fromkeys([r.schedule, "cosine", "onecycle"]))},
    }
    if r.optimizer == "sgd":
        space["momentum"] = {"type": "float", "low": 0.8, "high": 0.95}
    return space


ENTRY_KEYS = {
    "float": {"type", "low", "high", "log"},
    "int": {"type", "low", "high", "log"},
    "categorical": {"type", "choices"},
}


def load_space(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """A search space from TOML/JSON: `[lr] type = "float", low, high, log` per TrainConfig field. Its form is
    checked here; its values against a model and the command line's options by `check_space`."""
    from dataclasses import fields

    from toolkit.train.config import TrainConfig, read_table

    data = read_table(Path(path), what="search space")
    names = {f.name for f in fields(TrainConfig)}
    for key, dist in data.items():
        where = f"search space {path}: {key!r}"
        if key not in names:
            raise ConfigError(f"{where} is not a TrainConfig field")
        if key in NOT_SEARCHABLE:
            raise ConfigError(f"{where} is set by the sweep or the command line, not searched; remove it")
        if not isinstance(dist, dict) or dist.get("type") not in DISTRIBUTIONS:
            raise ConfigError(f"{where} needs type = one of {', '.join(DISTRIBUTIONS)}")
        unknown = sorted(set(dist) - ENTRY_KEYS[dist["type"]])
        if unknown:  # e.g. `step`: silently ignored, it would search another space than the one written
            raise ConfigError(
                f"{where}: unknown key {unknown[0]!r} for a {dist['type']} entry; "
                f"it takes {', '.join(sorted(ENTRY_KEYS[dist['type']]))}"
            )
        if dist["type"] == "categorical":
            if not isinstance(dist.get("choices"), list) or not dist["choices"]:
                raise ConfigError(f"{where}: choices must be a non-empty list")
            continue
        low, high = dist.get("low"), dist.get("high")
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
        if not numbers or not low < high:
            raise ConfigError(f"{where}: needs finite numbers low < high, got low={low!r}, high={high!r}")
        if dist["type"] == "int" and not all(float(v).is_integer() for v in (low, high)):
            raise ConfigError(f"{where}: an int range needs whole numbers, got low={low!r}, high={high!r}")
        if dist.get("log") and not (low >= 1 if dist["type"] == "int" else low > 0):
            raise ConfigError(f"{where}: a log range needs low {'>= 1' if dist['type'] == 'int' else '> 0'}, got {low}")
        if not isinstance(dist.get("log", False), bool):
            raise ConfigError(f"{where}: log must be true or false, got {dist['log']!r}")
    if not data:
        raise ConfigError(f"search space {path} is empty")
    return data


def check_space(
    space: dict[str, dict[str, Any]], model: str, fixed: dict[str, Any], where: str = "search space"
) -> None:
    """Refuse, before the first trial, a space that no trial could train as written: a key the command line
    also sets (the trial would train with the option, and the study record the sampled value), a value of the
    wrong type for its field, or one that training refuses (optimizer "bogus", a batch size below 1). Every
    choice and both ends of every range are checked, with the command line's options beside them."""
    from dataclasses import fields, replace

    from toolkit.train.config import TrainConfig, typed_value

    clash = sorted(set(space) & set(fixed))
    if clash:
        key = clash[0]
        raise ConfigError(
            f"{where}: {key!r} is also set on the command line (--{key.replace('_', '-')} {fixed[key]}); "
            "a trial would train with the option, not the sampled value: remove one of them"
        )
    types = {f.name: str(f.type) for f in fields(TrainConfig)}
    try:
        base = TrainConfig(model=model, **fixed).resolved()
    except TypeError as exc:
        raise ConfigError(f"unknown training option: {first_line(exc)}") from None
    for key, dist in space.items():
        base_type = types[key].removesuffix(" | None")
        if dist["type"] == "float" and base_type == "int":
            raise ConfigError(f'{where}: {key!r} is a whole number: use type = "int" or "categorical"')
        if dist["type"] in ("float", "int") and base_type not in ("int", "float"):
            raise ConfigError(f'{where}: {key!r} is not a number: use type = "categorical"')
        for value in dist["choices"] if dist["type"] == "categorical" else (dist["low"], dist["high"]):
            typed = typed_value(where, key, value, types[key])
            try:
                replace(base, **{key: typed}).validate()
            except ConfigError as exc:
                raise ConfigError(f"{where}: {key} = {value!r} cannot be trained: {first_line(exc)}") from None


def _suggest(trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    params = {}
    for name, d in space.items():
        if d["type"] == "float":
            params[name] = trial.suggest_float(name, d["low"], d["high"], log=bool(d.get("log")))
        elif d["type"] == "int":
            params[name] = trial.suggest_int(name, int(d["low"]), int(d["high"]), log=bool(d.get("log")))
        else:
            params[name] = trial.suggest_categorical(name, d["choices"])
    return params


def _storage(url: str, grace: float = GRACE_SECONDS):
    import optuna

    # Heartbeats and retries are marked experimental in Optuna; their warnings are not the user's business.
    # Optuna 4.9 renamed the retry callback and its argument; older 4.x has only the first names.
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            callback = (
                {"heartbeat_stale_trial_callback": retry(max_retry=MAX_RETRIES)}
                if retry
                else {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=MAX_RETRIES)}
            )
            return _claiming_storage_class()(
                url,
                heartbeat_interval=_heartbeat_seconds(grace),
                grace_period=max(2, math.ceil(grace)),
                **callback,
            )
    except Exception as exc:  # a malformed URL, a missing driver, an unreachable server
        raise ConfigError(f"cannot open the study database {url!r}: {first_line(exc)}") from None


def _heartbeat_seconds(grace: float) -> int:
    return max(1, round(grace / HEARTBEATS_PER_GRACE))


def _claiming_storage_class():
    """RDBStorage whose claim of a queued trial is one conditional UPDATE: atomic on SQLite too."""
    from datetime import datetime

    import optuna
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    class _ClaimingStorage(optuna.storages.RDBStorage):
        def set_trial_state_values(self, trial_id, state, values=None) -> bool:
            if state != TrialState.RUNNING or values is not None:
                return super().set_trial_state_values(trial_id, state, values)
            session = self.scoped_session()
            try:
                claimed = (
                    session.query(models.TrialModel)
                    .filter(models.TrialModel.trial_id == trial_id, models.TrialModel.state == TrialState.WAITING)
                    .update({models.TrialModel.state: TrialState.RUNNING}, synchronize_session=False)
                )
                if claimed == 1:  # the row is ours now; the start time as Optuna records it
                    session.get(models.TrialModel, trial_id).datetime_start = datetime.now()
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
            if claimed == 1:
                return True
            # Optuna's contract: False when another worker runs it, UpdateFinishedTrialError when it has finished.
            self.check_trial_is_updatable(trial_id, self.get_trial(trial_id).state)
            return False

    return _ClaimingStorage


@contextlib.contextmanager
def _creation_lock(url: str, folder: Path):
    """Held while a worker creates (or joins) the study. Creating Optuna's schema is a read-then-write: workers
    started together (a job array) all find no tables, all create them, and all but one die on a duplicate key
    (SQLite: alembic_version; PostgreSQL: pg_type, Optuna issue #1092). The lock lives where the study does:
    a file lock in the study folder for SQLite, a session-level advisory lock in a PostgreSQL database (released
    when the connection closes, so a worker killed while holding it frees it). Other servers go unlocked."""
    if url.startswith("sqlite"):
        with open(folder / ".study.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield
        return
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        connection = engine.connect()
    except Exception as exc:  # a malformed URL, a missing driver, an unreachable server
        raise ConfigError(f"cannot open the study database {url!r}: {first_line(exc)}") from None
    try:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": STUDY_LOCK_KEY})
        yield
    finally:
        connection.close()  # ends the session and with it the advisory lock
        engine.dispose()


def _open_study(url: str, name: str, grace: float, sampler: str, seed: int, pruner):
    """(study, the seed of this worker's sampler): --seed for the worker that creates the study, a fresh one for
    every later worker or re-run, since equal seeds would propose the configurations already tried."""
    import optuna

    def make_sampler(k: int):
        return optuna.samplers.TPESampler(seed=k) if sampler == "tpe" else optuna.samplers.RandomSampler(seed=k)

    storage = _storage(url, grace)
    options = dict(study_name=name, storage=storage, pruner=pruner, direction="maximize")
    try:
        return optuna.create_study(sampler=make_sampler(seed), **options), seed
    except optuna.exceptions.DuplicatedStudyError:
        joined = secrets.randbelow(2**31)
        return optuna.create_study(sampler=make_sampler(joined), load_if_exists=True, **options), joined


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
    from optuna.trial import TrialState

    from toolkit.train.loop import StopFlag, stop_on_signals, train

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
    folder = Path(out) / "sweeps" / study_name
    folder.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    # Optuna logs each failed trial with its traceback; the progress lines below say what happened in one line
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with _creation_lock(url, folder):
        st, sampler_seed = _open_study(
            url, study_name, grace, sampler, seed, _pruner(pruner, epochs or spec.recipe.epochs)
        )
    if sampler_seed != seed:
        progress(
            f"study {study_name!r} exists: this worker's sampler is seeded {sampler_seed} (trials keep --seed {seed})"
        )

    stop = StopFlag()  # shared with every trial's train(): one signal stops whichever trials are running

    def objective(trial) -> float:
        if _surplus(trial.study, trial._trial_id, trials):
            trial.set_user_attr("surplus", True)
            progress(f"trial {trial.number}: not run: another worker started the study's last trial at the same moment")
            raise _Surplus()
        params = _suggest(trial, search)
        options = {**train_options, **params}
        if epochs is not None:
            options["epochs"] = epochs
        trial.set_user_attr("run_dir", str(folder / f"trial-{trial.number}"))
        trial.set_user_attr("sampler_seed", sampler_seed)
        started = time.perf_counter()
        try:
            result = train(
                model=model,
                out=str(folder),
                run_name=f"trial-{trial.number}",
                val_size=val_size,
                test_eval=False,
                seed=seed,
                reporter=_PruningReporter(trial),
                stop=stop,
                **options,
            )
        except Interrupted:
            trial.set_user_attr("interrupted", signal.Signals(stop.signum).name)  # train() set the shared flag
            trial.study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
            progress(f"trial {trial.number}: interrupted; its configuration runs again when the sweep continues")
            raise  # recorded as failed; _MaxTrials sees the flag and stops the study
        except optuna.TrialPruned as exc:
            progress(f"trial {trial.number}: pruned {exc} with {_short(params)}")
            raise
        except TrainingDiverged as exc:
            trial.set_user_attr("diverged", first_line(exc))
            progress(f"trial {trial.number}: diverged ({first_line(exc)})")
            return float("nan")  # Optuna records the trial as failed; the sweep goes on
        except ToolkitError as exc:
            trial.set_user_attr("error", first_line(exc))
            progress(f"trial {trial.number}: failed ({first_line(exc)})")
            raise  # recorded as failed (catch= below); the sweep goes on
        finally:
            trial.set_user_attr("seconds", time.perf_counter() - started)
        value = result.summary["final_val_acc"]
        again = _retry_of(trial.storage.get_trial(trial._trial_id))
        rerun = "" if again is None else f" (trial {again}'s configuration, run again)"
        progress(f"trial {trial.number}: val acc {value:.2f}% with {_short(params)}{rerun}")
        return value

    started = time.perf_counter()
    with stop_on_signals(stop, enabled=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # failing stale trials
        waited_for: set[int] = set()
        while stop.signum is None:
            # A dead worker's trial would count as running forever: fail it (its configuration is queued again).
            was_running = {t.number for t in st.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            optuna.storages.fail_stale_trials(st)
            for t in st.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
                if t.number in was_running:
                    progress(f"trial {t.number}: its worker was silent for {grace:g} s; marked lost, queued again")
            left = None if timeout is None else timeout - (time.perf_counter() - started)
            if left is not None and left <= 0:
                break
            if _count(st) < trials:
                st.optimize(
                    objective,
                    n_trials=trials,
                    timeout=left,
                    n_jobs=n_jobs,
                    callbacks=[_MaxTrials(trials, stop)],
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
                    progress(
                        f"trial {t.number}: running in another worker; waiting for it to finish "
                        f"(taken over if its worker is silent for {grace:g} s)"
                    )
            _sleep_unless_stopped(stop, _heartbeat_seconds(grace))
    summary = _summarize(st, folder, model, search, time.perf_counter() - started)
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
            f"no best.toml written; see {folder / 'sweep.md'} for each trial's fate"
        )
    return summary


class _PruningReporter(Reporter):
    """A training Reporter that hands each epoch's val accuracy to Optuna and stops a trial it prunes."""

    def __init__(self, trial):
        self.trial = trial

    def epoch_end(self, metrics) -> None:
        import optuna

        self.trial.report(metrics["val_acc"], metrics["epoch"])
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"after epoch {metrics['epoch']} at val acc {metrics['val_acc']:.2f}%")


def _retry_of(t) -> int | None:
    """The trial whose configuration `t` runs again: interrupted (our retry_of) or lost (the retry callback's)."""
    return t.user_attrs.get("retry_of", t.system_attrs.get("failed_trial"))


def _retried(trials) -> set[int]:
    """Numbers of the trials whose configuration was queued again (interrupted, or their worker lost)."""
    return {n for n in map(_retry_of, trials) if n is not None}


def _counted(trials) -> list:
    """The trials that count towards --trials: running or finished, except the failed ones whose configuration
    runs again. Queued (waiting) ones do not count until a worker takes them, or no worker would."""
    from optuna.trial import TrialState

    retried = _retried(trials)
    return [
        t
        for t in trials
        if t.state != TrialState.WAITING
        and not (t.state == TrialState.FAIL and t.number in retried)
        and not t.user_attrs.get("surplus")
    ]


class _Surplus(ToolkitError):
    """A trial started beyond --trials (recorded failed and marked surplus; it counts nowhere)."""


def _surplus(study, trial_id: int, n: int) -> bool:
    """Whether this just-started trial is one too many. Each worker checks the count before starting a trial, but
    two workers finishing together both see room for one more; ordering the counted trials by creation (the
    database's trial id) lets each decide alone, and identically, which of them is the (n+1)-th."""
    counted = sorted(t._trial_id for t in _counted(study.get_trials(deepcopy=False)))
    return trial_id in counted and counted.index(trial_id) >= n


def _count(study) -> int:
    return len(_counted(study.get_trials(deepcopy=False)))


class _MaxTrials:
    """Stop this process once the study holds `n` counted trials in any state, whichever process ran them,
    or once a signal set the sweep's stop flag."""

    def __init__(self, n: int, stop):
        self.n = n
        self.stop = stop

    def __call__(self, study, trial) -> None:
        if self.stop.signum is not None or _count(study) >= self.n:
            study.stop()


def _short(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _summarize(study, folder: Path, model: str, space: dict, seconds: float) -> dict[str, Any]:
    """sweep.json, sweep.md, best.toml and the plots; the best trial's test accuracy, measured only here."""
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]  # never trained
    retried = _retried(trials)
    rows = []
    for t in trials:
        state = t.state.name.lower()
        if state == "fail" and "diverged" in t.user_attrs:
            state = "diverged"
        elif state == "fail" and t.number in retried:
            state = "interrupted" if "interrupted" in t.user_attrs else "lost"  # lost: its worker went silent
        rows.append(
            {
                "number": t.number,
                "state": state,
                "value": t.value,
                "params": t.params,
                "epochs": max(t.intermediate_values, default=0),
                "seconds": t.user_attrs.get("seconds"),
                "run_dir": t.user_attrs.get("run_dir"),
            }
        )
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    summary: dict[str, Any] = {
        "study": study.study_name,
        "model": model,
        "space": space,
        "trials": len(_counted(trials)),
        "complete": len(done),
        "pruned": sum(r["state"] == "pruned" for r in rows),
        "failed": sum(r["state"] in ("fail", "diverged") for r in rows),
        "retried": len(retried),  # interrupted or lost trials, each replaced by a later one: not in `trials`
        "seconds_this_call": seconds,
        "rows": sorted(rows, key=lambda r: (r["value"] is None, -(r["value"] or 0))),
        "best": None,
    }
    if done:
        best = study.best_trial
        test_acc = _test_once(Path(best.user_attrs["run_dir"]))
        summary["best"] = {"number": best.number, "val_acc": best.value, "params": best.params, "test_acc": test_acc}
        write_text(folder / "best.toml", _toml({"model": model, **best.params}))
    from toolkit.run.folder import SWEEP_MD
    from toolkit.run.records import Sweep

    summary["importances"], summary["importances_note"] = _importances(study) if len(done) >= 2 else (None, None)
    Sweep.write(folder, summary)
    write_text(folder / SWEEP_MD, _markdown(summary))
    summary["plots"] = _plots(study, folder) if len(done) >= 2 else []
    return summary


def _importance_evaluator():
    # PED-ANOVA needs numpy only; Optuna's default (fANOVA) needs scikit-learn, which the toolkit does not install.
    from optuna.importance import PedAnovaImportanceEvaluator

    return PedAnovaImportanceEvaluator()


def _importances(study) -> tuple[dict[str, float] | None, str | None]:
    """Each parameter's share of the variation in val accuracy (Optuna, PED-ANOVA), or why there is none."""
    from optuna.importance import get_param_importances

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few trials: Optuna warns, the figures are still what it measured
            return dict(get_param_importances(study, evaluator=_importance_evaluator())), None
    except Exception as exc:  # needs complete trials whose parameters vary
        return None, first_line(exc)


def _test_once(run_dir: Path) -> float:
    """The best trial's test accuracy: the only time a sweep reads the test set."""
    from toolkit.data import TensorLoader, load_dataset
    from toolkit.run.checkpoint import load_checkpoint, model_from_checkpoint
    from toolkit.train.evaluation import evaluate

    ckpt = load_checkpoint(run_dir)
    cfg = ckpt["train_config"]
    test = load_dataset(
        cfg["dataset"],
        False,
        cfg.get("data_dir"),
        limit=cfg.get("limit_test"),
        download=cfg.get("download", True),
        seed=cfg["seed"],
    )
    loader = TensorLoader(test, 1000, mean=tuple(ckpt["input"]["mean"]), std=tuple(ckpt["input"]["std"]))
    return evaluate(model_from_checkpoint(ckpt), loader, "off")[0]


def _toml(values: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        return repr(v)

    return "# the best trial's configuration: toolkit train --config best.toml\n" + "".join(
        f"{k} = {fmt(v)}\n" for k, v in values.items()
    )


def _markdown(s: dict[str, Any]) -> str:
    head = (
        f"# Sweep {s['study']} ({s['model']})\n\n{s['trials']} trials: {s['complete']} complete, {s['pruned']} "
        f"pruned, {s['failed']} failed or diverged"
        + (f" (and {s['retried']} interrupted or lost, each run again as a later trial)" if s["retried"] else "")
        + ". Scored on validation accuracy; test accuracy only for the best.\n\n"
    )
    if s["best"]:
        b = s["best"]
        head += f"Best: trial {b['number']}, val {b['val_acc']:.2f} %, test {b['test_acc']:.2f} %, {_short(b['params'])}\n\n"
    table = markdown_table(
        ("trial", "state", "val acc %", "epochs", "seconds", "params"),
        [
            [
                str(r["number"]),
                r["state"],
                "-" if r["value"] is None or r["value"] != r["value"] else f"{r['value']:.2f}",
                str(r["epochs"]),
                "-" if r["seconds"] is None else f"{r['seconds']:.1f}",
                _short(r["params"]),
            ]
            for r in s["rows"]
        ],
    )
    return head + table


def _plots(study, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    from toolkit.core.files import atomic_path

    written = []
    for name, plot in (("history", ovm.plot_optimization_history), ("importances", ovm.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                ax = plot(study, evaluator=_importance_evaluator()) if name == "importances" else plot(study)
        except Exception as exc:  # importances need enough complete trials with varied params
            write_text(folder / f"{name}.txt", f"not plotted: {first_line(exc)}\n")
            continue
        path = folder / f"{name}.png"
        with atomic_path(path) as tmp:
            ax.figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(ax.figure)
        written.append(str(path))
    return written
