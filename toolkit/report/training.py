"""Sections about training: the machine, the runs table, training curves, reproductions and sweeps."""

from __future__ import annotations

import math
from collections import defaultdict

from toolkit.report.charts import PALETTE, Series, bar_chart, line_chart
from toolkit.report.collect import Collected
from toolkit.report.page import Cell, esc, num, table
from toolkit.run.folder import BENCH, BEST_TOML, PARITY, SUMMARY, SWEEP

MAX_CURVES = 12  # runs overlaid in one chart; more stop being readable


def machine(c: Collected) -> str | None:
    """What the files say about the machines and versions they were made with (they may differ)."""
    facts: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for run in c.runs:
        m = (run.bench or {}).get("machine")
        if isinstance(m, dict):
            flags = m.get("cpu_flags") or {}
            simd = ", ".join(k for k, v in flags.items() if v) if isinstance(flags, dict) else ""
            for key, value in (
                ("CPU", m.get("cpu_model")),
                ("logical CPUs", m.get("logical_cpus")),
                ("CPU extensions", simd or None),
                ("threads timed with", m.get("torch_threads")),
                ("GPU", m.get("gpu")),
                ("platform", m.get("platform")),
                ("onnxruntime", m.get("onnxruntime")),
            ):
                if value not in (None, ""):
                    facts[key][str(value)].append(run.name)
        versions = (run.summary or {}).get("versions")
        if isinstance(versions, dict):
            for key, value in versions.items():
                facts[key][str(value)].append(run.name)
        if run.summary and run.summary.get("device"):
            facts["trained on"][f"{run.summary['device']}, {run.summary.get('threads', '?')} threads"].append(run.name)
        ref = (run.parity or {}).get("reference")
        if isinstance(ref, dict) and ref.get("provider"):
            facts["verify reference"][f"eager on {ref.get('device')}, {ref['provider']}"].append(run.name)
    if not facts:
        return None
    rows = []
    for key, values in facts.items():
        for value, sources in values.items():
            where = sources[0] if len(sources) == 1 else f"{len(sources)} runs ({sources[0]}, ...)"
            rows.append([key, value, where])
    return (
        f'<p class="muted">As recorded in the runs\' {SUMMARY}, {BENCH} and {PARITY}: compare figures only '
        "between runs made on the same machine.</p>" + table(("fact", "value", "recorded by"), rows)
    )


def runs_table(c: Collected) -> str | None:
    rows = [r.row for r in c.runs if r.row is not None]
    if not rows:
        return None
    columns = ("run", "state", "model", "data", "epochs", "test %", "best %", "val %", "Δ ref pt", "device",
               "precision", "img/s", "date", "exports", "verify")  # fmt: skip
    body = []
    for r in rows:
        verdict = Cell(r.verify or "-", cls={"pass": "pass", "FAIL": "fail"}.get(r.verify or ""))
        body.append(
            [
                Cell(r.run),
                r.state,
                r.model or "-",
                r.dataset or "-",
                num(r.epochs, "g"),
                num(r.test_acc, ".2f"),
                num(r.best_test_acc, ".2f"),
                num(r.val_acc, ".2f"),
                num(r.delta_vs_reference, "+.2f"),
                r.device or "-",
                r.precision or "-",
                num(r.img_per_s, ",.0f"),
                Cell(r.date or "-", sort=r.date or ""),
                num(len(r.exports), "d"),
                verdict,
            ]  # fmt: skip
        )
    return (
        '<p class="muted">Click a column to sort. test %: final test accuracy (with test-time augmentation where '
        "the recipe has it); Δ ref: against the published figure.</p>" + table(columns, body, sortable=True)
    )


def curves(c: Collected) -> str | None:
    runs = [r for r in c.runs if r.metrics][:MAX_CURVES]
    if not runs:
        return None
    charts = []
    for title, keys in (
        ("accuracy %", (("test_acc", "test", False), ("val_acc", "val", True))),
        ("loss", (("train_loss", "train", False), ("test_loss", "test", True), ("val_loss", "val", True))),
        ("training img/s", (("img_per_s", "", False),)),
    ):
        series = []
        for k, run in enumerate(runs):
            color = PALETTE[k % len(PALETTE)]  # one colour per run: its test and val curves share it, val dashed
            for key, label, dashed in keys:
                pts = [(m.get("epoch"), m.get(key)) for m in run.metrics]
                pts = [(x, y) for x, y in pts if x is not None and y is not None]
                if pts:
                    series.append(Series(f"{run.name} {label}".strip(), pts, dashed=dashed, color=color))
        chart = line_chart(series, "epoch", title, y_from_zero=title == "training img/s")
        if chart:
            charts.append(chart)
    more = len([r for r in c.runs if r.metrics]) - len(runs)
    note = f'<p class="muted">{more} more runs are not drawn; pass fewer folders to see them.</p>' if more > 0 else ""
    return f'<div class="charts">{"".join(charts)}</div>{note}' if charts else None


def _switches(seed: dict) -> str:
    """What a seed trained in, as reproduce.md names it: fp32 unless autocast, plus layout and compilation."""
    amp = seed.get("amp")
    parts = [f"amp {amp}"] if amp not in (None, "off") else ["fp32"]
    return ", ".join(parts + [k for k in ("channels_last", "compiled") if seed.get(k)])


def reproduction(name: str, r: dict) -> str:
    stats = r.get("stats") or {}
    ref = r.get("reference_accuracy")
    compared = r.get("compared", "final_test_acc")
    series = []
    for seed in r.get("per_seed") or []:
        pts = [(e["epoch"], e["test_acc"]) for e in seed.get("per_epoch") or [] if e.get("test_acc") is not None]
        series.append(Series(f"seed {seed.get('seed')}", pts))
    mean, ci = stats.get("mean"), stats.get("ci95")
    band = None
    if isinstance(ci, list) and len(ci) == 2:
        band = (ci[0], ci[1], f"95 % interval of {compared}: {ci[0]:.2f} to {ci[1]:.2f} %")
    # No verdict: the published figure does not apply (other data, other length), so it is not drawn either.
    hlines = ((ref, f"published {ref:g} %"),) if isinstance(ref, (int, float)) and r.get("verdict") else ()
    chart = line_chart(series, "epoch", "test accuracy %", hlines=hlines, band=band)
    verdict = r.get("verdict") or "no published reference"
    style = {"reproduced": "verdict-pass"}.get(verdict, "verdict-fail" if verdict.startswith("gap") else "muted")
    interval = (
        f'<span class="interval" data-lo="{ci[0]!r}" data-hi="{ci[1]!r}">{ci[0]:.2f} to {ci[1]:.2f} %</span>'
        if band
        else "one seed: no interval"
    )
    facts = (
        f"<p>{esc(stats.get('n', len(series)))} seeds, {esc(compared)}: mean "
        f'<span class="mean" data-value="{mean!r}">{mean:.2f} %</span>, 95 % interval {interval}; '
        + (f"published {ref:g} % ({esc(r.get('reference_source', ''))}); " if hlines else "")
        + f'verdict: <span class="verdict {style}">{esc(verdict)}</span></p>'
        if isinstance(mean, (int, float))
        else "<p>no finished seeds yet</p>"
    )
    rows = [
        [str(s.get("seed")), num(s.get("final_test_acc"), ".2f"), num(s.get("final_test_acc_tta"), ".2f"),
         num(s.get("img_per_s"), ",.0f"), num(s.get("total_seconds"), ",.0f"), _switches(s)]
        for s in r.get("per_seed") or []
    ]  # fmt: skip
    seeds = table(("seed", "final test %", "final TTA %", "img/s", "seconds", "speed switches"), rows)
    prov = (r.get("data_provenance") or {}).get("note")
    return (
        f"<h3>{esc(r.get('model', '?'))}: {esc(name)}</h3>{facts}"
        + (f'<p class="muted">data: {esc(prov)}</p>' if prov else "")
        + f'<div class="charts">{chart}</div>{seeds}'
    )


def sweep(name: str, s: dict) -> str:
    rows = s.get("rows") or []
    done = sorted((r for r in rows if r.get("state") == "complete" and r.get("value") is not None),
                  key=lambda r: r["number"])  # fmt: skip
    history = Series("trial val accuracy", [(r["number"], r["value"]) for r in done], line=False, fmt=".2f",
                     extra=[", ".join(f"{k}={v}" for k, v in r.get("params", {}).items()) for r in done])  # fmt: skip
    running, best = [], -math.inf
    for r in done:
        best = max(best, r["value"])
        running.append((r["number"], best))
    charts = line_chart([history, Series("best so far", running, color="#d62728")], "trial", "val accuracy %")
    importances = s.get("importances")
    if isinstance(importances, dict) and importances:
        charts += bar_chart(list(importances.items()), "importance (Optuna PED-ANOVA, share of variation)")
    elif done:
        why = s.get("importances_note") or f"this {SWEEP} predates them; re-run `toolkit sweep` to add them"
        charts += f'<p class="muted">No parameter importances: {esc(why)}.</p>'
    best_html = "<p>no complete trial yet</p>"
    b = s.get("best")
    if isinstance(b, dict):
        params = [[k, f"{v:.4g}" if isinstance(v, float) else str(v)] for k, v in (b.get("params") or {}).items()]
        best_html = (
            f"<p>Best: trial {esc(b.get('number'))}, val {b['val_acc']:.2f} %, test {b['test_acc']:.2f} % "
            f"(measured once). <code>toolkit train --config {esc(name)}/{BEST_TOML}</code></p>"
            + table(("parameter", "value"), params)
        )
    counts = ", ".join(f"{s.get(k, 0)} {k}" for k in ("complete", "pruned", "failed"))
    return (
        f"<h3>{esc(s.get('study', name))} ({esc(s.get('model', '?'))}): {esc(name)}</h3>"
        f'<p>{esc(s.get("trials", len(rows)))} trials: {esc(counts)}.</p>{best_html}<div class="charts">{charts}</div>'
    )
