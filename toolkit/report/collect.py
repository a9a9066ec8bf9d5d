"""What a report shows, read from the files the other commands wrote under the folders it is given.

A folder with metrics.jsonl is a training run (summary.json, manifest.json, parity.json and bench.json may sit
beside it); reproduce.json marks a reproduction, sweep.json a sweep. Nothing is re-run and nothing written.
A file that cannot be read, or that lacks what this version reads, becomes a note on the page naming it; its
section is left out, the rest of the report is still built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.errors import ConfigError, first_line
from toolkit.experiments.runs import MAX_DEPTH, RunRow, run_row
from toolkit.run.folder import BENCH, DEFAULT_ROOT, METRICS, PARITY, REPRODUCE, SWEEP
from toolkit.run.records import (
    Bench,
    Manifest,
    Parity,
    RecordVersionError,
    Reproduce,
    RunFileError,
    Summary,
    Sweep,
    read_metrics,
)

MARKERS = (METRICS, PARITY, BENCH, REPRODUCE, SWEEP)


@dataclass
class RunFiles:
    """One run folder's files, each None where absent or unreadable (a note says which)."""

    name: str  # the folder as the user will recognise it (relative to the folder given)
    folder: Path
    row: RunRow | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None
    bench: dict[str, Any] | None = None


@dataclass
class Collected:
    roots: list[Path]
    runs: list[RunFiles] = field(default_factory=list)
    reproductions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    sweeps: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.runs or self.reproductions or self.sweeps)


def _read(record, folder: Path, notes: list[str]) -> dict[str, Any] | None:
    """The file's object as written, or None with a note where it cannot be read as its record."""
    found = record.read(folder, notes)
    return found.data if found is not None else None


def _read_metrics(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    try:
        lines, problems = read_metrics(path.parent)
    except OSError as exc:
        notes.append(f"{path}: cannot be read ({type(exc).__name__}); its curves are left out")
        return []
    # A run killed mid-write leaves a partial last line; the epochs before it still count.
    notes.extend(f"{path.parent}: {problem}" for problem in problems)
    return lines


def _folders(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        dirnames.sort()
        if len(folder.relative_to(root).parts) >= MAX_DEPTH:
            dirnames.clear()
        if any(name in filenames for name in MARKERS):
            found.append(folder)
    return found


def _display_name(folder: Path, root: Path, several: bool) -> str:
    """Relative to the one folder given (its own name when it is the run); under its root's name when several."""
    relative = folder.relative_to(root)
    if not relative.parts:
        return str(root)
    return str(root / relative) if several else str(relative)


def collect(paths: list[str | os.PathLike]) -> Collected:
    """Every run, reproduction and sweep under `paths` (folders, each a run or a folder of runs)."""
    roots = [Path(p) for p in paths] or [Path(DEFAULT_ROOT)]
    for root in roots:
        if not root.exists():
            raise ConfigError(f"{root} does not exist; pass a run folder or the folder that holds your runs")
        if not root.is_dir():
            raise ConfigError(f"{root} is a file, not a folder; pass the run folder that holds it")
    found = Collected(roots=roots)
    seen: set[Path] = set()
    for root in roots:
        for folder in _folders(root):
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            name = _display_name(folder, root, len(roots) > 1)
            if data := _read(Reproduce, folder, found.notes):
                found.reproductions.append((name, data))
            if data := _read(Sweep, folder, found.notes):
                found.sweeps.append((name, data))
            if any((folder / f).is_file() for f in (METRICS, PARITY, BENCH)):
                found.runs.append(_run(folder, name, found.notes))
    return found


def _run(folder: Path, name: str, notes: list[str]) -> RunFiles:
    run = RunFiles(name=name, folder=folder)
    if (folder / METRICS).is_file():
        run.metrics = _read_metrics(folder / METRICS, notes)
        try:
            run.row = run_row(folder, folder.parent)
            run.row.run = name
        except RecordVersionError:
            raise
        except (OSError, ValueError, AttributeError, TypeError, RunFileError) as exc:
            notes.append(f"{folder}: its training files cannot be read ({first_line(exc, 120)}); not in the runs table")
    for attr, record in (("summary", Summary), ("manifest", Manifest), ("parity", Parity), ("bench", Bench)):
        setattr(run, attr, _read(record, folder, notes))
    return run
