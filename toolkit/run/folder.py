"""Run folders: their file names (the only place a stage finds them), which one is the newest trained run, and
claiming one for a writer.

A run folder is OUT/<run name>/ holding checkpoint.pt and what later stages add beside it. Training claims
its folder for as long as it runs (an exclusive lock), so two runs never write into one folder; a folder
that a failed start created and left empty is removed again.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from toolkit.core.errors import ConfigError, RunFolderError, first_line
from toolkit.core.files import TEMP_SUFFIX, temp_prefix

DEFAULT_ROOT = "artifacts"  # where runs are written, and looked for, unless --out says otherwise

CHECKPOINT = "checkpoint.pt"  # train
METRICS = "metrics.jsonl"  # train: written by every save; folders of untrained weights have none
SUMMARY = "summary.json"  # train, when the run finished
MANIFEST = "manifest.json"  # export
PARITY, PARITY_MD = "parity.json", "parity.md"  # verify
BENCH, BENCH_MD, BENCH_PNG = "bench.json", "bench.md", "bench.png"  # bench
REPRODUCE, REPRODUCE_MD, REPRODUCE_PNG = "reproduce.json", "reproduce.md", "reproduce.png"  # reproduce
SWEEPS = "sweeps"  # sweep: OUT/sweeps/<study>/ holds the study and its trials' run folders
SWEEP, SWEEP_MD = "sweep.json", "sweep.md"  # sweep: in the study's folder
STUDY_DB, STUDY_LOCK, BEST_TOML = "study.db", ".study.lock", "best.toml"  # sweep: in the study's folder
TIME_TO_ACCURACY = "tta.json"  # bench --time-to-accuracy
REPORT_HTML = "report.html"  # report
TRAINING_FILES = (CHECKPOINT, METRICS, SUMMARY)


def check_folder_name(name: str, option: str) -> None:
    """A name that becomes one folder under --out: no separators, not '.' or '..', so nothing lands outside it."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or Path(name).is_absolute():
        raise ConfigError(f"{option} {name!r} must be a plain folder name (no '/', not '.' or '..')")


def is_trained_run(folder: Path) -> bool:
    """A folder that `toolkit train` wrote (not one of bench's untrained-model folders)."""
    return (folder / CHECKPOINT).is_file() and (folder / METRICS).is_file()


def latest_run(out: str | os.PathLike = DEFAULT_ROOT) -> Path:
    """The trained run under `out` whose checkpoint was written last."""
    runs = [p.parent for p in Path(out).glob(f"*/{CHECKPOINT}") if is_trained_run(p.parent)]
    if not runs:
        raise RunFolderError(f"no trained run under {out}/; run `toolkit train` first or pass a run folder")
    return max(runs, key=lambda p: (p / CHECKPOINT).stat().st_mtime)


def ensure_writable(folder: Path, remedy: str | None = None) -> None:
    """Fail now, with one line, rather than after minutes of work that could not be saved. `remedy` is what
    the caller's user can do about it; by default, copy the run to a folder they can write."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-test."):
            pass
    except OSError as exc:
        raise RunFolderError(
            f"cannot write to {folder} ({exc.strerror or first_line(exc)}); "
            f"{remedy or f'copy the run to a writable folder (cp -r {folder} DEST) and pass that'}"
        ) from None


def remove_stale_temps(folder: Path, names: tuple[str, ...] = TRAINING_FILES) -> list[Path]:
    """Delete temporary files an earlier, killed writer of `names` left behind (a checkpoint's can be GBs)."""
    removed = []
    for name in names:
        for tmp in folder.glob(f"{temp_prefix(name)}*{TEMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def remove_stale_temps_if_idle(folder: Path, names: tuple[str, ...] = TRAINING_FILES) -> list[Path]:
    """remove_stale_temps, but only while no toolkit process holds the folder (a live writer's temp is no litter).
    Called wherever a run folder is opened, so a save killed before its first rename is cleaned up too."""
    if not folder.is_dir():
        return []
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return []
    try:
        try:
            _lock(fd, folder)
        except RunFolderError:
            return []  # in use: its temps may be live
        try:
            return remove_stale_temps(folder, names)
        except OSError:
            return []  # a read-only folder: nothing to clean, and nothing to fail over
    finally:
        os.close(fd)


@contextlib.contextmanager
def claim_run_dir(folder: Path, *, resuming: bool) -> Iterator[Path]:
    """Create (or reopen, when resuming) `folder` and hold an exclusive lock on it for the block.

    A new run refuses a folder that already holds a checkpoint; a second process claiming the same folder
    fails at once. If the block fails before anything was written, the folders this call created are removed.
    """
    created = False
    new = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first: removed on failure
    try:
        if not folder.is_dir():
            folder.mkdir(parents=True)
            created = True
    except FileExistsError:
        pass  # another process created it a moment ago; the lock below decides who may use it
    except OSError as exc:
        raise RunFolderError(
            f"cannot create {folder} ({exc.strerror or first_line(exc)}); pass --out with a writable folder"
        ) from None
    if not folder.is_dir():
        raise RunFolderError(f"cannot create {folder}: a file of that name is in the way; pass --out with a folder")
    fd = os.open(folder, os.O_RDONLY)
    try:
        _lock(fd, folder)
        if not resuming and (folder / CHECKPOINT).exists():
            raise RunFolderError(
                f"{folder} already holds a run; pick another --run-name or continue it with --resume {folder}"
            )
        ensure_writable(folder, "pass --out with a writable folder")
        remove_stale_temps(folder)
        yield folder
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                for made in new:  # the run folder and the parents made for it; only succeeds when empty
                    made.rmdir()
        raise
    finally:
        os.close(fd)  # releases the lock


def _lock(fd: int, folder: Path) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks; the checkpoint check still guards new runs
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunFolderError(
            f"{folder} is in use by another toolkit process; wait for it to finish, or write to another folder"
        ) from None
