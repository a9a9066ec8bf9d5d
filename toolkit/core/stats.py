"""Summary statistics for repeated runs: mean, sample std, and a 95 % Student-t interval for the mean."""

from __future__ import annotations

import math
import statistics

# Two-sided 95 % critical values of Student's t for 1..30 degrees of freedom (standard tables).
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)
_Z975 = 1.959964


def t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError("a t interval needs at least two values")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975  # Cornish-Fisher expansion: within 1e-3 of the exact value beyond 30 degrees of freedom
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def describe(values: list[float], bounds: tuple[float, float] | None = None) -> dict:
    """n, mean, sample std, min, max and the 95 % t interval of the mean (None with a single value).

    With `bounds` (an accuracy's 0-100), an interval reaching past them is clipped to them and
    `ci95_clipped` says so: a few wildly different seeds give a t interval below 0 %."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = statistics.fmean(values)
    out = {"n": n, "mean": mean, "std": None, "min": min(values), "max": max(values), "ci95": None}
    if n > 1:
        std = statistics.stdev(values)
        half = t975(n - 1) * std / math.sqrt(n)
        low, high = mean - half, mean + half
        if bounds is not None:
            out["ci95_clipped"] = low < bounds[0] or high > bounds[1]
            low, high = max(low, bounds[0]), min(high, bounds[1])
        out.update(std=std, ci95=[low, high])
    return out
