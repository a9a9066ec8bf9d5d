"""Where a study lives and how workers share it: the database (SQLite, PostgreSQL), its creation lock, the
heartbeat that finds a dead worker's trial, the atomic claim of a queued trial, retries, and which trials
count towards --trials.

Optuna claims a queued trial with a read-then-write that SQLite does not lock, so two threads (--n-jobs) or
two processes could both take one queued trial and train it into one folder; the claiming storage claims it
with one conditional UPDATE instead. Two workers that start their last trials in the same instant would
overshoot; the later-created of the two sees it is one too many and stops before training (is_surplus).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import secrets
import warnings
from pathlib import Path

from toolkit.core.errors import ConfigError, ToolkitError, first_line
from toolkit.run.folder import STUDY_LOCK

SAMPLERS = ("tpe", "random")


GRACE_SECONDS = 120.0  # a trial silent this long lost its worker: it is failed and its configuration retried


HEARTBEATS_PER_GRACE = 4  # a live worker beats this often within the grace period, so one late beat is no death


STUDY_LOCK_KEY = 0x746F6F6C6B6974  # "toolkit": the PostgreSQL advisory lock that serializes study creation


MAX_RETRIES = 2  # a configuration that loses its worker this many times is left failed


def open_storage(url: str, grace: float = GRACE_SECONDS):
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
            return claiming_storage_class()(
                url,
                heartbeat_interval=heartbeat_seconds(grace),
                grace_period=max(2, math.ceil(grace)),
                **callback,
            )
    except Exception as exc:  # a malformed URL, a missing driver, an unreachable server
        raise ConfigError(f"cannot open the study database {url!r}: {first_line(exc)}") from None


def heartbeat_seconds(grace: float) -> int:
    return max(1, round(grace / HEARTBEATS_PER_GRACE))


def claiming_storage_class():
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
def creation_lock(url: str, folder: Path):
    """Held while a worker creates (or joins) the study. Creating Optuna's schema is a read-then-write: workers
    started together (a job array) all find no tables, all create them, and all but one die on a duplicate key
    (SQLite: alembic_version; PostgreSQL: pg_type, Optuna issue #1092). The lock lives where the study does:
    a file lock in the study folder for SQLite, a session-level advisory lock in a PostgreSQL database (released
    when the connection closes, so a worker killed while holding it frees it). Other servers go unlocked."""
    if url.startswith("sqlite"):
        with open(folder / STUDY_LOCK, "w") as f:
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


def open_study(url: str, name: str, grace: float, sampler: str, seed: int, pruner):
    """(study, the seed of this worker's sampler): --seed for the worker that creates the study, a fresh one for
    every later worker or re-run, since equal seeds would propose the configurations already tried."""
    import optuna

    def make_sampler(k: int):
        return optuna.samplers.TPESampler(seed=k) if sampler == "tpe" else optuna.samplers.RandomSampler(seed=k)

    storage = open_storage(url, grace)
    options = dict(study_name=name, storage=storage, pruner=pruner, direction="maximize")
    try:
        return optuna.create_study(sampler=make_sampler(seed), **options), seed
    except optuna.exceptions.DuplicatedStudyError:
        joined = secrets.randbelow(2**31)
        return optuna.create_study(sampler=make_sampler(joined), load_if_exists=True, **options), joined


def retry_of(t) -> int | None:
    """The trial whose configuration `t` runs again: interrupted (our retry_of) or lost (the retry callback's)."""
    return t.user_attrs.get("retry_of", t.system_attrs.get("failed_trial"))


def retried_numbers(trials) -> set[int]:
    """Numbers of the trials whose configuration was queued again (interrupted, or their worker lost)."""
    return {n for n in map(retry_of, trials) if n is not None}


def counted_trials(trials) -> list:
    """The trials that count towards --trials: running or finished, except the failed ones whose configuration
    runs again. Queued (waiting) ones do not count until a worker takes them, or no worker would."""
    from optuna.trial import TrialState

    retried = retried_numbers(trials)
    return [
        t
        for t in trials
        if t.state != TrialState.WAITING
        and not (t.state == TrialState.FAIL and t.number in retried)
        and not t.user_attrs.get("surplus")
    ]


class Surplus(ToolkitError):
    """A trial started beyond --trials (recorded failed and marked surplus; it counts nowhere)."""


def is_surplus(study, trial_id: int, n: int) -> bool:
    """Whether this just-started trial is one too many. Each worker checks the count before starting a trial, but
    two workers finishing together both see room for one more; ordering the counted trials by creation (the
    database's trial id) lets each decide alone, and identically, which of them is the (n+1)-th."""
    counted = sorted(t._trial_id for t in counted_trials(study.get_trials(deepcopy=False)))
    return trial_id in counted and counted.index(trial_id) >= n


def count_trials(study) -> int:
    return len(counted_trials(study.get_trials(deepcopy=False)))


class MaxTrials:
    """Stop this process once the study holds `n` counted trials in any state, whichever process ran them,
    or once a signal set the sweep's stop flag."""

    def __init__(self, n: int, stop):
        self.n = n
        self.stop = stop

    def __call__(self, study, trial) -> None:
        if self.stop.signum is not None or count_trials(study) >= self.n:
            study.stop()
