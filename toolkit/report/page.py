"""The page around the sections: styles, the one script (sortable tables), escaping and table helpers.

Everything from a file goes through `esc` (or a Cell, which escapes its text), so a run or class named
`<script>...` reads as text. The Content-Security-Policy forbids any request and lets only this page's own
script run (by its hash): if something unescaped ever slipped through, the browser would still refuse it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from html import escape

STYLE = """
:root { --pass: #d9f2d9; --fail: #f8d0d0; --none: #eeeeee; --ink: #1d1d1f; --muted: #666; --line: #d8d8d8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); }
header { padding: 16px 24px 8px; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 22px; }
nav a { margin-right: 14px; }
main { padding: 8px 24px 40px; max-width: 1240px; }
section { margin-top: 28px; }
h2 { font-size: 18px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; overflow-wrap: anywhere; }
p, li { overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
table.sortable td, table.parity td + td { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: #f4f4f6; }
table.sortable th { cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.pass { background: var(--pass); }
td.fail { background: var(--fail); font-weight: 600; }
.why { font-size: 12px; }
td.absent { background: var(--none); color: var(--muted); }
tr.recommended td { background: #fff3c4; font-weight: 600; }
td.best { outline: 2px solid #c99a00; outline-offset: -2px; }
.verdict-pass { color: #1b7a1b; font-weight: 600; }
.verdict-fail { color: #b00020; font-weight: 600; }
.notes { background: #fff8e6; border: 1px solid #f0d78c; padding: 6px 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure.chart { margin: 0; flex: 1 1 480px; max-width: 640px; min-width: 0; }
figure.chart svg { width: 100%; height: auto; display: block; }
svg .plot { fill: #fbfbfc; stroke: var(--line); }
svg .grid { stroke: #e6e6e6; }
svg .tick { font-size: 11px; fill: #444; }
svg .axis { font-size: 12px; fill: #222; }
svg .ref { stroke: #b00020; stroke-dasharray: 6 3; }
svg .reflabel { font-size: 11px; fill: #b00020; }
svg .band { fill: #1f77b4; opacity: 0.15; }
ul.legend { list-style: none; padding: 0; margin: 2px 0 0; display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; }
.swatch { display: inline-block; width: 18px; margin-right: 5px; vertical-align: middle; border-top: 3px solid; }
.swatch.dashed { border-top-style: dashed; }
details { margin: 4px 0; }
code { background: #f4f4f6; padding: 0 3px; }
"""

# Click a column's header to sort by it (numbers by value, from data-sort); click again to reverse.
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var down = th.getAttribute("aria-sort") !== "descending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", down ? "descending" : "ascending");
      var key = function (row) {
        var cell = row.cells[col];
        var v = cell.getAttribute("data-sort");
        var n = parseFloat(v);
        return { n: v !== null && v !== "" && !isNaN(n) ? n : null, s: cell.textContent };
      };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), r;
        if (x.n !== null && y.n !== null) { r = x.n - y.n; }
        else if (x.n !== null) { return -1; }
        else if (y.n !== null) { return 1; }
        else { r = x.s.localeCompare(y.s); }
        return down ? -r : r;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def esc(value) -> str:
    return escape("" if value is None else str(value), quote=True)


@dataclass
class Cell:
    """One table cell: its text (escaped here), a sort key, a CSS class, a hover title, data-* attributes."""

    text: str = "-"
    sort: float | str | None = None
    cls: str | None = None
    title: str | None = None
    data: dict[str, str] | None = None
    html: str | None = None  # markup built here from escaped parts, shown instead of text

    def render(self) -> str:
        attrs = ""
        if self.sort is not None:
            attrs += f' data-sort="{esc(self.sort)}"'
        if self.cls:
            attrs += f' class="{esc(self.cls)}"'
        if self.title:
            attrs += f' title="{esc(self.title)}"'
        for k, v in (self.data or {}).items():
            attrs += f' data-{esc(k)}="{esc(v)}"'
        return f"<td{attrs}>{self.html if self.html is not None else esc(self.text)}</td>"


def num(value, spec: str, suffix: str = "") -> Cell:
    """A right-aligned figure, '-' when absent; sorts by its exact value."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return Cell("-", cls="num")
    return Cell(format(value, spec) + suffix, sort=repr(float(value)), cls="num")


def table(columns, rows, *, sortable: bool = False, cls: str = "", row_classes=None, attrs: str = "") -> str:
    classes = " ".join(c for c in (cls, "sortable" if sortable else "") if c)
    head = "".join(f'<th scope="col">{esc(c)}</th>' for c in columns)
    body = []
    for k, row in enumerate(rows):
        cells = "".join(c.render() if isinstance(c, Cell) else f"<td>{esc(c)}</td>" for c in row)
        rc = row_classes[k] if row_classes else None
        body.append(f'<tr class="{esc(rc)}">{cells}</tr>' if rc else f"<tr>{cells}</tr>")
    return (
        f'<div class="scroll"><table class="{classes}"{attrs}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]], notes: list[str]) -> str:
    """The whole document: `sections` are (id, heading, inner html) in order."""
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'"
    nav = "".join(f'<a href="#{sid}">{esc(heading)}</a>' for sid, heading, _ in sections)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        f'<header><h1>{esc(title)}</h1><p class="muted">{esc(subtitle)}</p><nav>{nav}</nav></header><main>',
    ]
    if notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in notes)
        parts.append(f'<section id="notes" class="notes"><strong>Notes</strong><ul>{items}</ul></section>')
    for sid, heading, inner in sections:
        parts.append(f'<section id="{sid}"><h2>{esc(heading)}</h2>{inner}</section>')
    parts.append(f"</main><script>{SCRIPT}</script></body></html>\n")
    return "\n".join(parts)
