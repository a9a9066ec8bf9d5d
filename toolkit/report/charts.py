"""Charts as inline SVG: no library, no script, nothing fetched; every text from a file is escaped.

Each chart scales to its container's width (viewBox), so a page of them never overflows a narrow window;
points carry a <title>, which browsers show on hover, with the exact figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
)  # fmt: skip
W, H = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 40


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]
    dashed: bool = False
    color: str | None = None
    line: bool = True  # False: points only (a sweep's trials)
    fmt: str = ".4g"  # how a point's value reads on hover
    extra: list[str] = field(default_factory=list)  # one hover line per point, beside the value


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * step:
            step *= m
            break
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + k * step, 10) for k in range(int((hi - first) / step + 1e-9) + 1)]


def _tick_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-2:
        return f"{v:.0e}" if abs(v) < 1e-2 else f"{v:,.0f}"
    return f"{v:g}"


def line_chart(
    series: list[Series],
    x_label: str,
    y_label: str,
    *,
    log2_x: bool = False,
    hlines: tuple[tuple[float, str], ...] = (),
    band: tuple[float, float, str] | None = None,
    y_from_zero: bool = False,
) -> str:
    """Series overlaid on shared axes; `hlines` are labelled reference lines, `band` a shaded (lo, hi, label)."""
    series = [
        Series(s.name, [(x, y) for x, y in s.points if _finite(x) and _finite(y)], s.dashed, s.color, s.line, s.fmt,
               s.extra)
        for s in series
    ]  # fmt: skip
    series = [s for s in series if s.points]
    if not series:
        return ""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points] + [v for v, _ in hlines] + (list(band[:2]) if band else [])
    fx = (lambda v: math.log2(v)) if log2_x else (lambda v: v)
    x_lo, x_hi = fx(min(xs)), fx(max(xs))
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_lo, y_hi = (0.0 if y_from_zero else min(ys)), max(ys)
    pad = (y_hi - y_lo) * 0.06 or abs(y_hi) * 0.1 or 1.0
    y_ticks = nice_ticks(y_lo - (0 if y_from_zero else pad), y_hi + pad)
    y_lo, y_hi = min(y_ticks[0], y_lo), max(y_ticks[-1], y_hi)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (fx(x) - x_lo) / (x_hi - x_lo) * pw

    def py(y: float) -> float:
        return TOP + (1 - (y - y_lo) / (y_hi - y_lo)) * ph

    out = [f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(y_label)} against {escape(x_label)}">']
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" class="plot"/>')
    for t in y_ticks:
        y = py(t)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{_tick_label(t)}</text>')
    if log2_x:
        x_ticks = sorted({x for x in xs})
    else:
        x_ticks = [t for t in nice_ticks(x_lo, x_hi, 6) if x_lo <= t <= x_hi]
        if all(float(x).is_integer() for x in xs):  # epochs, trials: no tick between two of them
            x_ticks = [t for t in x_ticks if float(t).is_integer()]
        x_ticks = [int(t) if float(t).is_integer() else t for t in x_ticks]
    for t in x_ticks:
        x = px(t)
        out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" class="tick" text-anchor="middle">{_tick_label(t)}</text>')
    out.append(f'<text x="{LEFT + pw / 2:.0f}" y="{H - 6}" class="axis" text-anchor="middle">{escape(x_label)}</text>')
    out.append(
        f'<text x="14" y="{TOP + ph / 2:.0f}" class="axis" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + ph / 2:.0f})">{escape(y_label)}</text>'
    )
    if band:
        lo, hi, label = band
        out.append(
            f'<rect x="{LEFT}" y="{py(hi):.1f}" width="{pw}" height="{max(py(lo) - py(hi), 1):.1f}" class="band">'
            f"<title>{escape(label)}</title></rect>"
        )
    for value, label in hlines:
        y = py(value)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="ref"/>')
        out.append(
            f'<text x="{W - RIGHT - 4}" y="{y - 4:.1f}" class="reflabel" text-anchor="end">{escape(label)}</text>'
        )
    legend = []
    for k, s in enumerate(series):
        color = s.color or PALETTE[k % len(PALETTE)]
        pts = sorted(s.points)
        if s.line and len(pts) > 1:
            d = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(pts))
            dash = ' stroke-dasharray="5 4"' if s.dashed else ""
            out.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for i, (x, y) in enumerate(s.points):
            tip = f"{s.name}: {x:g}, {format(y, s.fmt)}" + (f" ({s.extra[i]})" if i < len(s.extra) else "")
            out.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"><title>{escape(tip)}</title></circle>'
            )
        style = "dashed" if s.dashed else "solid"
        legend.append(f'<li><span class="swatch {style}" style="border-color:{color}"></span>{escape(s.name)}</li>')
    out.append("</svg>")
    return f'<figure class="chart">{"".join(out)}<figcaption><ul class="legend">{"".join(legend)}</ul></figcaption></figure>'


def bar_chart(bars: list[tuple[str, float]], value_label: str, fmt: str = ".2f") -> str:
    """Horizontal bars, longest first, each labelled with its name and value."""
    bars = [(name, v) for name, v in bars if _finite(v)]
    if not bars:
        return ""
    bars.sort(key=lambda b: -b[1])
    row, label_w = 26, 180
    height = TOP + row * len(bars) + 24
    top = max(v for _, v in bars) or 1.0
    out = [f'<svg viewBox="0 0 {W} {height}" role="img" aria-label="{escape(value_label)}">']
    for k, (name, v) in enumerate(bars):
        y = TOP + k * row
        width = max(v / top * (W - label_w - 80), 1)
        out.append(f'<text x="{label_w - 8}" y="{y + 16}" class="tick" text-anchor="end">{escape(name)}</text>')
        out.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{width:.1f}" height="{row - 8}" fill="{PALETTE[0]}">'
            f"<title>{escape(name)}: {format(v, fmt)}</title></rect>"
        )
        out.append(f'<text x="{label_w + width + 6:.1f}" y="{y + 16}" class="tick">{format(v, fmt)}</text>')
    out.append(f'<text x="{label_w}" y="{height - 6}" class="axis">{escape(value_label)}</text></svg>')
    return f'<figure class="chart">{"".join(out)}</figure>'
