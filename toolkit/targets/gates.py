"""Each format's gate: the figures verify holds a file to, given what its precision promises.

fp32 files must reproduce eager's logits, its top-1 classes and its accuracy. A float32 result is exact only to
a few units in the last place of the numbers it adds up, so how far an honest file's logits may move grows with
their magnitude: each image's logits may differ by atol + rtol * (that image's largest |logit|), one rule for
export's check and verify (fp32_allowance), with rtol sized in docs/guide.md from honest files at every
magnitude and from the smallest forgery it must still catch.
Reduced-precision files are held to accuracy drop and top-1 agreement (MLPerf's closed division asks
>= 99 % of the fp32 accuracy; 0.5 pt is stricter here) and to their logits relative to the reference's logit
scale (the standard deviation of its logits): fp16 by the largest difference, INT8 and bf16 by the mean, sized
from what each precision does to honest files (docs/guide.md, "Low precision"). Accuracy alone passes a weakly
trained model whose INT8 file was tampered with. The numbers are Thresholds, which the user may override.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

from toolkit.core.errors import ConfigError

if TYPE_CHECKING:  # the registries import this module: `toolkit --help` loads no torch
    import torch


@dataclass(frozen=True)
class Thresholds:
    atol: float = 1e-4  # fp32 files: |logit difference| allowed against eager fp32 CPU at any magnitude ...
    rtol: float = 1e-5  # ... plus this much of the image's largest |logit| (84 float32 steps; docs/guide.md)
    fp32_min_agreement: float = 99.9  # fp32 files: percent of samples whose top-1 class must match
    fp32_max_acc_delta: float = 0.1  # fp32 files: accuracy points they may differ by, either way
    max_acc_drop: float = 0.5  # INT8/fp16 files: accuracy points they may lose
    min_agreement: float = 97.0  # INT8/fp16 files: top-1 agreement with eager fp32, percent
    # Relative to the logit scale (std of the reference logits); defaults sized in docs/guide.md from honest files.
    fp16_max_rel: float = 0.03  # fp16 files: max |Δlogit| / scale
    # bf16 autocast: mean, not max: 8 mantissa bits to fp16's 11 leave rare outliers in deep nets (0.31 of the
    # scale on a 56-layer ResNet whose mean was 1e-3); the checkpoint it runs is the reference, not a new file.
    bf16_mean_rel: float = 0.02
    int8_mean_rel: float = 0.2  # INT8 files: mean |Δlogit| / scale

    def __post_init__(self):
        for name in (
            "atol",
            "rtol",
            "fp32_max_acc_delta",
            "max_acc_drop",
            "fp16_max_rel",
            "bf16_mean_rel",
            "int8_mean_rel",
        ):
            value = getattr(self, name)
            if not 0 <= value < math.inf:
                raise ConfigError(f"--{flag(name)} must be a finite number >= 0, got {value}")
        for name in ("fp32_min_agreement", "min_agreement"):
            value = getattr(self, name)
            if not 0 <= value <= 100:
                raise ConfigError(f"--{flag(name)} must be a percentage in [0, 100], got {value}")


def flag(field_name: str) -> str:
    return field_name.replace("_", "-")


def fp32_allowance(reference: torch.Tensor, atol: float, rtol: float) -> torch.Tensor:
    """How far each image's fp32 logits may move (one value per row of `reference`, the eager logits)."""
    return atol + rtol * reference.abs().amax(dim=1)


@dataclass(frozen=True)
class Excess:
    """The image whose logits went furthest beyond their allowance: its |Δ| / allowance (`ratio`; a file
    passes at <= 1), its largest |Δlogit|, its largest |logit| and the batch it was in."""

    ratio: float
    diff: float
    magnitude: float
    batch: int

    def merge(self, other: Excess | None) -> Excess:
        return self if other is None or self.ratio >= other.ratio else other


def fp32_excess(got: torch.Tensor, reference: torch.Tensor, t: Thresholds, batch: int = 0) -> Excess:
    """The worst image of one batch under fp32_allowance (NaN/inf logits are counted apart, not here)."""
    diff = (got.float() - reference.float()).abs().nan_to_num(0.0, 0.0, 0.0).amax(dim=1)
    ratio = diff / fp32_allowance(reference.float(), t.atol, t.rtol)
    i = int(ratio.argmax())
    return Excess(float(ratio[i]), float(diff[i]), float(reference[i].abs().max()), batch)


def fp32_failure(label: str, x: Excess, t: Thresholds, where: str | None = None) -> str:
    return (
        f"{label}: max |diff| {x.diff:.2g} > {t.atol:g} + {t.rtol:g} x |logit| {x.magnitude:.3g} = "
        f"{t.atol + t.rtol * x.magnitude:.2g} allowed {where or f'on batch {x.batch}'} (--atol, --rtol)"
    )


class Figures(Protocol):
    """What verify measured for one target (verify.parity.RuntimeParity has these)."""

    label: str
    accuracy: float
    acc_delta: float
    agreement: float
    max_abs: float
    mean_abs: float
    max_rel: float
    mean_rel: float
    worst_batch: int
    fp32_excess: Excess | None
    non_finite: int
    non_finite_batch: int | None


@dataclass(frozen=True)
class Gate:
    """What a precision promises: its logits (fp32), or a figure relative to the logit scale (`relative`:
    "max" or "mean", checked against the Thresholds field `limit`) plus accuracy drop and agreement."""

    precision: str
    relative: str | None = None
    limit: str | None = None

    def judge(self, e: Figures, t: Thresholds) -> list[str]:
        """One line per broken promise, naming the target, the figure and the threshold's option."""
        failures = []
        if e.non_finite:
            failures.append(f"{e.label}: {e.non_finite} NaN/inf logits (first on batch {e.non_finite_batch})")
        if self.relative is None:
            if e.fp32_excess is not None and e.fp32_excess.ratio > 1:
                failures.append(fp32_failure(e.label, e.fp32_excess, t))
            if e.agreement < t.fp32_min_agreement:
                failures.append(f"{e.label}: top-1 agreement {e.agreement:.2f}% < {t.fp32_min_agreement:g}%")
            if abs(e.acc_delta) > t.fp32_max_acc_delta:
                failures.append(f"{e.label}: accuracy delta {e.acc_delta:+.2f} pt exceeds {t.fp32_max_acc_delta:g} pt")
            return failures
        value = e.max_rel if self.relative == "max" else e.mean_rel
        limit = getattr(t, self.limit)
        if value > limit:
            absolute = e.max_abs if self.relative == "max" else e.mean_abs
            failures.append(
                f"{e.label}: {self.precision} {self.relative} |Δlogit| is {value:.3g} of the logit scale > "
                f"--{flag(self.limit)} {limit:g} ({self.relative} |Δ| {absolute:.2g})"
            )
        if -e.acc_delta > t.max_acc_drop:
            failures.append(
                f"{e.label}: {self.precision} accuracy drop {-e.acc_delta:.2f} pt > --max-acc-drop {t.max_acc_drop:g} pt"
            )
        if e.agreement < t.min_agreement:
            failures.append(
                f"{e.label}: {self.precision} top-1 agreement {e.agreement:.2f}% < --min-agreement {t.min_agreement:g}%"
            )
        return failures


GATES = {
    "fp32": Gate("fp32"),
    "fp16": Gate("fp16", "max", "fp16_max_rel"),
    "bf16": Gate("bf16", "mean", "bf16_mean_rel"),
    "int8": Gate("int8", "mean", "int8_mean_rel"),
    "int8-dynamic": Gate("int8-dynamic", "mean", "int8_mean_rel"),
}


def gated_figure(precision: str, figures: dict, thresholds: dict | None = None) -> tuple[str, float | None, float]:
    """(what the gate judges, its value, the limit) for a file of `precision`: the one figure a compact table
    shows. `figures` holds max_abs / max_rel / mean_rel as verify measured them; `thresholds` as in parity.json."""
    gate = GATES.get(precision) or GATES["fp32"]
    limits = {**asdict(Thresholds()), **(thresholds or {})}
    if gate.relative is None:
        excess = figures.get("fp32_excess")
        if "rtol" in (thresholds or {}) or isinstance(excess, dict):  # verified under the magnitude rule
            return "|Δ| / allowed", excess.get("ratio") if isinstance(excess, dict) else None, 1.0
        return "max |Δlogit|", figures.get("max_abs"), limits["atol"]  # runs verified against atol alone
    return f"{gate.relative} |Δ|/scale", figures.get(f"{gate.relative}_rel"), limits[gate.limit]
