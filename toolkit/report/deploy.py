"""Sections about deployment: parity as a matrix, bench figures, and which file to ship.

The parity cell shows the figure the file's gate judged (fp32: max |Δlogit|; fp16: max |Δ| over the logit
scale; bf16 and INT8: mean |Δ| over the scale) beside the verdict, and every figure on hover.
"""

from __future__ import annotations

from dataclasses import asdict

from toolkit.report.charts import Series, line_chart
from toolkit.report.collect import RunFiles
from toolkit.report.page import Cell, esc, num, table
from toolkit.run.verdicts import batch_sizes, fastest_verified, verdicts
from toolkit.targets.formats import FORMATS
from toolkit.targets.gates import GATES, Thresholds, gated_figure


def _file_of(fmt: str) -> str:
    """The file a format is written to (the format registry knows it); a name it does not know, as given."""
    return FORMATS[fmt].filename if fmt in FORMATS else fmt


def _why(e: dict, precision: str, thresholds: dict) -> str:
    """A failed cell's reason when it is not the gated figure itself (agreement, accuracy, the file's hash)."""
    t = {**asdict(Thresholds()), **thresholds}
    fp32 = (GATES.get(precision) or GATES["fp32"]).relative is None
    if e.get("file_matches_manifest") is False:
        return "not the file export checked"
    if e.get("accuracy") is None:
        return "no answer"
    if e.get("non_finite"):
        return f"{e['non_finite']} NaN/inf"
    agreement, delta = e.get("agreement", 100.0), e.get("acc_delta", 0.0)
    if agreement < (t["fp32_min_agreement"] if fp32 else t["min_agreement"]):
        return f"agreement {agreement:.2f} %"
    if (abs(delta) > t["fp32_max_acc_delta"]) if fp32 else (-delta > t["max_acc_drop"]):
        return f"accuracy {delta:+.2f} pt"
    return ""


def _tip(e: dict, what: str, value, limit) -> str:
    lines = [f"{e.get('format')} on {e.get('runtime')}/{e.get('device')} ({e.get('precision')})"]
    if e.get("accuracy") is None:
        lines.append("no answer")
    else:
        lines += [
            f"{what}: {value:.3g} (gate {limit:g})" if value is not None else what,
            f"accuracy {e['accuracy']:.2f} % ({e.get('acc_delta', 0):+.2f} pt), top-1 agreement {e.get('agreement'):.2f} %",
            f"max |Δ| {e.get('max_abs'):.3g}, mean |Δ| {e.get('mean_abs'):.3g}",
        ]
    if e.get("file_matches_manifest") is False:
        lines.append("the file is not the one export checked (sha256 differs)")
    return "\n".join(lines + list(e.get("failures") or []))


def parity(run: RunFiles) -> str:
    p = run.parity
    entries = p["entries"]
    thresholds = p.get("thresholds") or {}
    columns = list(dict.fromkeys((e["runtime"], e["device"]) for e in entries))
    formats = list(dict.fromkeys((e["format"], e["precision"]) for e in entries))
    by_key = {(e["format"], e["runtime"], e["device"]): e for e in entries}
    rows = []
    for fmt, precision in formats:
        what, _, limit = gated_figure(precision, {}, thresholds)
        row = [Cell(html=f"{esc(_file_of(fmt))}<br><span class=\"muted\">{esc(fmt)} ({esc(precision)}), "
                         f"{esc(what)} ≤ {limit:g}</span>")]  # fmt: skip
        for runtime, device in columns:
            e = by_key.get((fmt, runtime, device))
            if e is None:
                row.append(Cell("", cls="absent", title="not run"))
                continue
            what, value, limit = gated_figure(precision, e, thresholds)
            passed = bool(e.get("passed"))
            verdict = "pass" if passed else "FAIL"
            shown = "-" if e.get("accuracy") is None or value is None else f"{value:.3g}"
            why = "" if passed else _why(e, precision, thresholds)
            why = f'<br><span class="why">{esc(why)}</span>' if why else ""
            row.append(
                Cell(
                    html=f'<span class="verdict">{verdict}</span><br><span class="figure">{esc(shown)}</span>{why}',
                    cls="pass" if passed else "fail",
                    title=_tip(e, what, value, limit),
                    data={
                        "format": fmt,
                        "runtime": runtime,
                        "device": device,
                        "verdict": verdict,
                        "figure": repr(value) if value is not None else "",
                    },  # fmt: skip
                )
            )
        rows.append(row)
    ref = p.get("reference") or {}
    head = (
        f"<p>{esc(p.get('samples'))} {esc(p.get('dataset'))} test images against eager fp32 on "
        f"{esc(ref.get('device'))} (accuracy {esc(ref.get('accuracy'))} %, logit scale "
        f"{ref.get('logit_scale', float('nan')):.3g}). Verdict: "
        f'<span class="{"verdict-pass" if p.get("passed") else "verdict-fail"}">'
        f"{'pass' if p.get('passed') else 'FAIL'}</span>. Each cell: the verdict and the figure the gate "
        "judged; hover for every figure.</p>"
    )
    classes = (run.manifest or {}).get("classes")
    if isinstance(classes, list) and classes:
        shown = ", ".join(map(str, classes[:20])) + (f" and {len(classes) - 20} more" if len(classes) > 20 else "")
        head += f'<p class="muted classes">{len(classes)} classes: {esc(shown)}</p>'

    matrix = table(["file"] + [f"{r} / {d}" for r, d in columns], rows, cls="parity")
    failures = [line for e in entries for line in e.get("failures") or []] + list(p.get("notes") or [])
    full_cols = ("runtime", "file", "precision", "device", "accuracy %", "Δacc pt", "agree %", "max |Δ|",
                 "mean |Δ|", "max |Δ|/scale", "mean |Δ|/scale", "verdict")  # fmt: skip
    full = [
        [e["runtime"], e["format"], e["precision"], e["device"], num(e.get("accuracy"), ".2f"),
         num(e.get("acc_delta"), "+.2f"), num(e.get("agreement"), ".2f"), num(e.get("max_abs"), ".2e"),
         num(e.get("mean_abs"), ".2e"), num(e.get("max_rel"), ".2e"), num(e.get("mean_rel"), ".2e"),
         Cell("pass" if e.get("passed") else "FAIL", cls="pass" if e.get("passed") else "fail")]
        for e in entries
    ]  # fmt: skip
    lines = "".join(f"<li>{esc(f)}</li>" for f in failures)
    return (
        f"<h3>{esc(p.get('model', '?'))}: {esc(run.name)}</h3>{head}{matrix}"
        + (f'<ul class="failures">{lines}</ul>' if lines else "")
        + f"<details><summary>Every figure</summary>{table(full_cols, full, sortable=True)}</details>"
    )


def bench(run: RunFiles) -> str:
    b = run.bench
    cases = b["inference"]
    rec = b.get("recommendation") or {}
    passed = verdicts(run.parity)
    series = [
        Series(c["label"] + (" (recommended)" if c["label"] == rec.get("target") else ""),
               [(r["batch_size"], r["img_per_s"]) for r in c["results"]], fmt=",.0f")
        for c in cases
    ]  # fmt: skip
    chart = line_chart(series, "batch size", "img/s", log2_x=True, y_from_zero=True)
    batches = sorted({r["batch_size"] for c in cases for r in c["results"]})
    rows, classes = [], []
    for c in cases:
        e = passed.get((c["format"], c["runtime"], c["device"]))
        verdict = "-" if e is None else ("pass" if e.get("passed") else "FAIL")
        row = [
            Cell(c["label"]),
            _file_of(c["format"]),
            Cell(verdict, cls={"pass": "pass", "FAIL": "fail"}.get(verdict)),
        ]
        by_batch = {r["batch_size"]: r for r in c["results"]}
        for batch in batches:
            r = by_batch.get(batch)
            if r is None:
                row += [Cell("-", cls="num"), Cell("-", cls="num")]
                continue
            lat = r.get("latency_ms") or {}
            hit = c["label"] == rec.get("target") and batch == rec.get("batch_size")
            row.append(Cell(f"{r['img_per_s']:,.0f}", sort=repr(r["img_per_s"]), cls="num img-per-s" + (" best" if hit else ""),
                            data={"target": c["label"], "batch": str(batch), "value": repr(r["img_per_s"])}))  # fmt: skip
            row.append(Cell(f"{lat.get('p50', float('nan')):.3g} / {lat.get('p99', float('nan')):.3g}",
                            sort=repr(lat.get("p50")), cls="num"))  # fmt: skip
        rows.append(row)
        classes.append("recommended" if c["label"] == rec.get("target") else "")
    m = b.get("machine") or {}
    disturbed = b.get("disturbed") or []
    head = (
        f"<p>{esc(m.get('cpu_model', '?'))}, {esc(b.get('threads'))} threads; "
        f"{esc((b.get('config') or {}).get('rounds'))} rounds after "
        f"{esc((b.get('config') or {}).get('warmup'))} warm-up; "
        + ("<strong>disturbed: " + esc("; ".join(map(str, disturbed))) + "</strong>" if disturbed else "nothing flagged disturbed")
        + ".</p>"
    )  # fmt: skip
    rec_html = f'<p class="recommendation"><strong>{esc(rec["text"])}</strong></p>' if rec.get("text") else ""
    cols = ["target", "file", "verify"] + [
        h for batch in batches for h in (f"img/s @{batch}", f"p50 / p99 ms @{batch}")
    ]
    body = table(cols, rows, sortable=True, row_classes=classes, cls="bench")
    notes = "".join(f"<li>{esc(n)}</li>" for n in b.get("notes") or [])
    train = ""
    if b.get("training"):
        from toolkit.bench.bench_files import TRAIN_COLUMNS, training_rows

        train = "<h4>Training steps</h4>" + table(TRAIN_COLUMNS, training_rows(b))
    return (
        f'<h3>{esc(b.get("model", "?"))}: {esc(run.name)}</h3>{head}{rec_html}<div class="charts">{chart}</div>'
        f"{body}" + (f"<ul>{notes}</ul>" if notes else "") + train
    )


def ship(run: RunFiles) -> str | None:
    """The fastest verified file for throughput and for one image at a time, from bench and verify."""
    b = run.bench
    if not b or not run.parity:
        return None
    picks = []
    batches = batch_sizes(b)
    for purpose, batch in (("one image at a time", batches[0]), (f"throughput (batch {batches[-1]})", batches[-1])):
        best = fastest_verified(b, run.parity, batch)
        if best:
            c, r, e = best.case, best.result, best.verdict
            size = ((run.manifest or {}).get("files") or {}).get(_file_of(c["format"]), {}).get("bytes")
            picks.append(
                [purpose, Cell(_file_of(c["format"])), c["label"], num(r["img_per_s"], ",.0f"),
                 num((r.get("latency_ms") or {}).get("p99"), ".3g"), num(e.get("acc_delta"), "+.2f"),
                 num(size / 1e6 if size else None, ".2f")]
            )  # fmt: skip
    if not picks:
        return f"<h3>{esc(run.name)}</h3><p>No timed target passed verify.</p>"
    cols = ("for", "ship", "runtime / device", "img/s", "p99 ms", "Δacc pt (verify)", "MB")
    return (
        f'<h3>{esc(b.get("model", "?"))}: {esc(run.name)}</h3><p class="muted">Only files that passed '
        "`toolkit verify`, timed by `toolkit bench` on the machine above.</p>" + table(cols, picks)
    )
