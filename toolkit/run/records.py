"""The run folder's JSON files as typed records: one class per file, and one reader and one writer for all.

Each record names the fields a stage decides on, with their types, and keeps the whole object as written
(`data`, in its order) for the pages that render it. Every file carries `schema_version`:

- a file without one was written before versions were recorded, and holds what version 1 holds: read as 1;
- a version this toolkit does not know (newer than it reads, or not a positive integer) is refused by every
  reader, in one line naming the file and what to do (RecordVersionError): a newer file is never half-read;
- a missing, cut or non-object file, or one whose typed field has the wrong type, is a RunFileError to `load`
  and None (with a note) to `read`, which the pages use to show what they can.

metrics.jsonl is a record per line (`read_metrics`, `write_metrics`).
"""

from __future__ import annotations

import json
import math
import os
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Self

from toolkit.core.errors import RunFolderError, first_line
from toolkit.core.files import write_json, write_text
from toolkit.run.folder import BENCH, MANIFEST, METRICS, PARITY, REPRODUCE, SUMMARY, SWEEP

SCHEMA_KEY = "schema_version"
UNVERSIONED = 1  # what a file written before schema_version existed holds


class RunFileError(RunFolderError):
    """A run file that is missing, cut short, not a JSON object, or without a field its stage reads."""


class RecordVersionError(RunFileError):
    """A run file of a schema version this toolkit does not read."""


def schema_version(data: dict[str, Any], where: str | os.PathLike, known: int, writer: str) -> int:
    """The file's version, or RecordVersionError for one this toolkit cannot read."""
    version = data.get(SCHEMA_KEY, UNVERSIONED)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RecordVersionError(
            f"{where}: unknown {SCHEMA_KEY} {json.dumps(version)[:40]} (this toolkit reads 1 to {known}); "
            f"the file is damaged or not the toolkit's: run `{writer}` again to rewrite it"
        )
    if version > known:
        raise RecordVersionError(
            f"{where}: {SCHEMA_KEY} {version} was written by a newer toolkit (this one reads 1 to {known}); "
            f"upgrade toolkit, or run `{writer}` again with this one"
        )
    return version


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value is of a field's declared type (containers: their kind, not their contents)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    kind = origin or hint
    if kind is bool:
        return isinstance(value, bool)
    if kind is float:  # a hand-written 3 is a number all the same; NaN and infinity (Python's JSON) are not figures
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


@dataclass(frozen=True, kw_only=True)
class Record:
    """A run file: `data` is the object as written; the subclass's fields are the typed view of it."""

    FILE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    WRITER: ClassVar[str]  # the command that writes the file: what to run when it is damaged

    data: dict[str, Any]

    @classmethod
    def path(cls, folder: str | os.PathLike) -> Path:
        return Path(folder) / cls.FILE

    @classmethod
    def from_dict(cls, data: Any, where: str | os.PathLike | None = None) -> Self:
        """The record, checked: its version readable and each typed field present (unless it has a default)
        and of its type; RunFileError naming the field otherwise."""
        where = where or cls.FILE
        if not isinstance(data, dict):
            raise RunFileError(f"{where}: not a JSON object; run `{cls.WRITER}` again to rewrite it")
        schema_version(data, where, cls.VERSION, cls.WRITER)
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "data":
                continue
            if f.name not in data:
                if f.default is f.default_factory:  # both MISSING: a required field
                    raise RunFileError(f"{where}: {f.name!r} is missing; run `{cls.WRITER}` again to rewrite it")
                continue
            if not _fits(data[f.name], hints[f.name]):
                raise RunFileError(
                    f"{where}: {f.name!r} is {json.dumps(data[f.name])[:40]}, not {_type_name(hints[f.name])}; "
                    f"run `{cls.WRITER}` again to rewrite it"
                )
            values[f.name] = data[f.name]
        body = {k: v for k, v in data.items() if k != SCHEMA_KEY}
        return cls(data=body, **values)

    def to_dict(self) -> dict[str, Any]:
        """The object to write: the version first, then the fields as they were given."""
        return {SCHEMA_KEY: self.VERSION, **self.data}

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Self:
        """The folder's file as a record; RunFileError when it is missing or cannot be read as one."""
        path = cls.path(folder)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise RunFileError(f"{path}: no such file; run `{cls.WRITER}` first") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise RunFileError(
                f"{path}: cannot be read ({type(exc).__name__}: {first_line(exc, 80)}); run `{cls.WRITER}` again"
            ) from None
        return cls.from_dict(data, path)

    @classmethod
    def read(cls, folder: str | os.PathLike, notes: list[str] | None = None) -> Self | None:
        """The record, or None where the file is missing or damaged (a note says which, when `notes` is given).
        A version this toolkit does not read is raised all the same: a page must not show half of it."""
        if not cls.path(folder).is_file():
            return None
        try:
            return cls.load(folder)
        except RecordVersionError:
            raise
        except RunFileError as exc:
            if notes is not None:
                notes.append(f"{exc}; left out")
            return None

    @classmethod
    def write(cls, folder: str | os.PathLike, data: dict[str, Any]) -> Self:
        """Check `data` as the record it must be, then write it atomically (the old file stays until then)."""
        record = cls.from_dict({SCHEMA_KEY: cls.VERSION, **data}, cls.path(folder))
        write_json(cls.path(folder), record.to_dict())
        return record


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    names = {bool: "true/false", int: "an integer", float: "a finite number", str: "a string", dict: "an object"}
    kind = typing.get_origin(hint) or hint
    return "null" if hint is type(None) else names.get(kind, "a list" if kind is list else str(kind))


@dataclass(frozen=True, kw_only=True)
class Summary(Record):
    """summary.json: a finished training run's figures and the configuration it ran with."""

    FILE, WRITER = SUMMARY, "toolkit train"
    model: str
    dataset: str
    epochs: int
    train_config: dict[str, Any]
    final_test_acc: float | None = None
    final_test_acc_tta: float | None = None
    best_test_acc: float | None = None
    final_val_acc: float | None = None
    delta_vs_reference: float | None = None
    img_per_s: float | None = None
    device: str | None = None


@dataclass(frozen=True, kw_only=True)
class Manifest(Record):
    """manifest.json: each exported file's format, checks and sha256, and the checkpoint they came from
    (run/manifest.py validates its input spec and classes before anything trusts them)."""

    FILE, WRITER = MANIFEST, "toolkit export"
    files: dict[str, Any]
    # Required, with the input spec and the classes, where a file is trusted: run/manifest.py validate_manifest
    # checks them there, naming the key and what it must be.
    source_checkpoint: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class Parity(Record):
    """parity.json: verify's verdict on every file x runtime x device, against eager fp32."""

    FILE, WRITER = PARITY, "toolkit verify"
    entries: list[dict[str, Any]]
    passed: bool | None = None  # verify writes it; a file without it has passed nothing
    reference: dict[str, Any] | None = None
    model: str | None = None


@dataclass(frozen=True, kw_only=True)
class Bench(Record):
    """bench.json: inference and training speed per target and batch, the machine, and the recommendation."""

    FILE, WRITER = BENCH, "toolkit bench"
    inference: list[dict[str, Any]]
    training: list[dict[str, Any]] | None = None
    model: str | None = None
    recommendation: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class Reproduce(Record):
    """reproduce.json: a recipe's seeds against its published figure."""

    FILE, WRITER = REPRODUCE, "toolkit reproduce"
    model: str
    seeds: int
    per_seed: list[dict[str, Any]]
    reference_accuracy: float | None = None


@dataclass(frozen=True, kw_only=True)
class Sweep(Record):
    """sweep.json: a study's trials, its best trial and what mattered."""

    FILE, WRITER = SWEEP, "toolkit sweep"
    best: dict[str, Any] | None = None


RECORDS: tuple[type[Record], ...] = (Summary, Manifest, Parity, Bench, Reproduce, Sweep)

METRICS_VERSION = 1


def read_metrics(folder: str | os.PathLike) -> tuple[list[dict[str, Any]], list[str]]:
    """metrics.jsonl's records (one per epoch) and one problem per line that is not one (a write cut by a crash
    or a full disk): the other lines still describe the run. A line of a version this toolkit does not read is
    RecordVersionError."""
    path = Path(folder) / METRICS
    lines, problems = [], []
    for number, text in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if isinstance(record, dict):
            schema_version(record, f"{path} line {number}", METRICS_VERSION, "toolkit train")
            record.pop(SCHEMA_KEY, None)
            lines.append(record)
        else:
            problems.append(f"{METRICS} line {number} is cut or not a JSON object; read without it")
    return lines, problems


def write_metrics(folder: str | os.PathLike, metrics: list[dict[str, Any]]) -> None:
    """All of a run's epochs, one JSON object per line, replacing the file atomically."""
    text = "".join(json.dumps({SCHEMA_KEY: METRICS_VERSION, **m}) + "\n" for m in metrics)
    write_text(Path(folder) / METRICS, text)
