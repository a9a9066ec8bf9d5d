"""`toolkit report`: one self-contained HTML page over the files train, reproduce, sweep, export, verify and
bench wrote: nothing re-run, nothing fetched when it is opened (inline styles, one inline script, SVG charts).

Sections appear only where their files exist. A file this version cannot read, or one missing what a
section needs (corrupt, or written by an older version), becomes a note at the top naming it; the rest of
the page is still built.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.core.errors import ConfigError, first_line
from toolkit.core.files import write_text
from toolkit.core.version import __version__
from toolkit.report import deploy, training
from toolkit.report.collect import MARKERS, Collected, collect
from toolkit.report.page import page
from toolkit.run.folder import BENCH, PARITY, REPORT_HTML, REPRODUCE, SWEEP

REPORT = REPORT_HTML
# What an older or hand-edited file lacking a key, or holding the wrong type, raises while a section reads it.
SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


@dataclass
class ReportResult:
    path: Path
    sections: list[str] = field(default_factory=list)  # headings shown, in order
    notes: list[str] = field(default_factory=list)
    runs: int = 0


def _each(items, render: Callable, what: str, notes: list[str]) -> str:
    """Render every item on its own: one that is not in the form this version reads becomes a note."""
    parts = []
    for name, item in items:
        try:
            html = render(item)
        except SHAPE_ERRORS as exc:
            notes.append(f"{name}: its {what} is not in the form this version reads ({type(exc).__name__}: "
                         f"{first_line(exc, 80)}); left out")  # fmt: skip
            continue
        if html:
            parts.append(html)
    return "".join(parts)


def _sections(c: Collected, notes: list[str]) -> list[tuple[str, str, str]]:
    def one(render: Callable, what: str) -> str:
        return _each([(what, c)], render, what, notes)

    with_parity = [(f"{r.folder}/{PARITY}", r) for r in c.runs if r.parity]
    with_bench = [(f"{r.folder}/{BENCH}", r) for r in c.runs if r.bench]
    candidates = [
        ("machine", "Machine and versions", one(training.machine, "machine facts")),
        ("runs", "Runs", one(training.runs_table, "runs table")),
        ("curves", "Training curves", one(training.curves, "training curves")),
        ("reproduce", "Reproductions", _each(
            [(f"{n}/{REPRODUCE}", (n, r)) for n, r in c.reproductions], lambda a: training.reproduction(*a),
            "reproduction", notes)),
        ("sweeps", "Sweeps", _each(
            [(f"{n}/{SWEEP}", (n, s)) for n, s in c.sweeps], lambda a: training.sweep(*a), "sweep", notes)),
        ("parity", "Parity: every file on every runtime", _each(with_parity, deploy.parity, "parity", notes)),
        ("bench", "Speed", _each(with_bench, deploy.bench, "bench", notes)),
        ("ship", "Which file to ship", _each(with_bench, deploy.ship, "bench and parity", notes)),
    ]  # fmt: skip
    return [(sid, heading, html) for sid, heading, html in candidates if html]


def check_out_path(out: Path) -> None:
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; name the file to write, such as {out / REPORT}")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: the folder {out.parent} does not exist; create it or choose another --out")


def build_report(paths: list[str | os.PathLike] | None = None, out: str | os.PathLike | None = None) -> ReportResult:
    """Write the report over `paths` (run folders or folders of runs; default artifacts/) to `out`
    (default: report.html in the first folder given)."""
    if out is not None:
        check_out_path(Path(out))  # before reading anything: a wrong --out fails at once
    c = collect(list(paths or []))
    out = Path(out) if out is not None else c.roots[0] / REPORT
    check_out_path(out)
    if not c and not c.notes:  # only damaged files: a page of notes naming them, not "no runs"
        where = ", ".join(str(r) for r in c.roots)
        raise ConfigError(
            f"no runs under {where} (no {', '.join(MARKERS[:-1])} or {MARKERS[-1]}); "
            "train one with `toolkit train`, or pass the folder that holds your runs"
        )
    notes = c.notes
    sections = _sections(c, notes)
    subtitle = (
        f"toolkit {__version__}, {time.strftime('%Y-%m-%d %H:%M')}, from {', '.join(str(r) for r in c.roots)}: "
        f"{len(c.runs)} run folders, {len(c.reproductions)} reproductions, {len(c.sweeps)} sweeps"
    )
    write_text(out, page("toolkit report", subtitle, sections, notes))
    return ReportResult(out, [heading for _, heading, _ in sections], notes, len(c.runs))
