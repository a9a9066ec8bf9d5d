"""parity.json and parity.md: a verify result rendered; no computation happens here."""

from __future__ import annotations

import os
from pathlib import Path

from toolkit.core.files import write_text
from toolkit.core.markdown import markdown_table
from toolkit.run.folder import MANIFEST, PARITY_MD
from toolkit.run.records import Parity

PARITY_COLUMNS = (
    "runtime",
    "file",
    "exported with",
    "device",
    "provider",
    "threads",
    "accuracy %",
    "Δacc pt",
    "top-1 agree %",
    "max |Δ|",
    "mean |Δ|",
    "p99 |Δ|",
    "max |Δ|/scale",
    "mean |Δ|/scale",
    "NaN/inf",
    "worst batch",
    "verdict",
)


def parity_rows(result) -> list[list[str]]:
    ref = result.reference
    rows = [
        [
            "eager (reference)",
            "checkpoint (fp32)",
            "-",
            ref["device"],
            ref["provider"],
            str(ref["threads"]),
            f"{ref['accuracy']:.2f}",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            f"scale {ref.get('logit_scale', float('nan')):.3g}",
            "-",
            "reference",
        ]
    ]
    for e in result.entries:
        answered = e.accuracy is not None

        def fig(value, spec, answered=answered):
            return format(value, spec) if answered else "-"

        rows.append(
            [
                e.runtime,
                f"{e.format} ({e.precision})",
                e.details.get("export", "-"),
                e.device,
                str(e.details.get("provider", "-")),
                str(e.details.get("threads", "-")),
                fig(e.accuracy, ".2f"),
                fig(e.acc_delta, "+.2f"),
                fig(e.agreement, ".2f"),
                fig(e.max_abs, ".2e"),
                fig(e.mean_abs, ".2e"),
                fig(e.p99_abs, ".2e"),
                fig(e.max_rel, ".2e"),
                fig(e.mean_rel, ".2e"),
                str(e.non_finite) if answered else "-",
                str(e.worst_batch) if answered else "-",
                "pass" if e.passed else "FAIL",
            ]
        )
    return rows


COMPACT_COLUMNS = ("target", "file", "gate", "figure", "Δacc pt", "agree %", "verdict")


def compact_rows(result) -> list[list[str]]:
    """One row per target with the figure its gate judged: what fits 100 columns (parity.md has every figure)."""
    from dataclasses import asdict

    from toolkit.targets.gates import gated_figure

    thresholds = asdict(result.thresholds)
    rows = []
    for e in result.entries:
        excess = None if e.fp32_excess is None else {"ratio": e.fp32_excess.ratio}
        what, value, limit = gated_figure(
            e.precision,
            {"max_abs": e.max_abs, "max_rel": e.max_rel, "mean_rel": e.mean_rel, "fp32_excess": excess},
            thresholds,
        )
        answered = e.accuracy is not None
        rows.append(
            [
                f"{e.runtime}/{e.device}",
                e.format,
                f"{what} ≤ {limit:g}",
                format(value, ".3g") if answered and value is not None else "-",
                format(e.acc_delta, "+.2f") if answered else "-",
                format(e.agreement, ".2f") if answered else "-",
                "pass" if e.passed else "FAIL",
            ]
        )
    return rows


def parity_markdown(result) -> str:
    t = result.thresholds
    head = (
        f"# Parity: {result.model} ({result.run_dir})\n\n"
        f"{result.samples} {result.dataset} test images in batches of {result.batch_size}; reference: eager "
        f"fp32 on CPU, TF32 off. fp32 files: each image's |Δlogit| ≤ {t.atol:g} + {t.rtol:g} × its largest "
        f"|logit|, top-1 agreement ≥ "
        f"{t.fp32_min_agreement:g} %, |Δacc| ≤ {t.fp32_max_acc_delta:g} pt. INT8/fp16/bf16 files: accuracy drop ≤ "
        f"{t.max_acc_drop:g} pt, top-1 agreement ≥ {t.min_agreement:g} %, and, relative to the logit scale "
        f"(std of the reference logits): fp16 max |Δ| ≤ {t.fp16_max_rel:g}, bf16 mean |Δ| ≤ {t.bf16_mean_rel:g}, "
        f"INT8 mean |Δ| ≤ {t.int8_mean_rel:g}. Files must match the sha256 export recorded in {MANIFEST}. "
        f"Each non-eager runtime ran in its own process. Verdict: "
        f"**{'pass' if result else 'FAIL'}**\n\n"
    )
    body = markdown_table(PARITY_COLUMNS, parity_rows(result))
    tail = "".join(f"\n- {line}" for line in result.failures + result.notes)
    return head + body + (tail + "\n" if tail else "")


def write_parity(result, run_dir: str | os.PathLike) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    Parity.write(run_dir, result.to_dict())
    write_text(run_dir / PARITY_MD, parity_markdown(result))
    return Parity.path(run_dir), run_dir / PARITY_MD
