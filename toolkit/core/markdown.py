"""Markdown tables for the reports stages write (parity.md, bench.md)."""

from __future__ import annotations


def markdown_table(columns, rows) -> str:
    def cells(values):
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [cells(columns), "|" + "---|" * len(columns)] + [cells(r) for r in rows]
    return "\n".join(lines) + "\n"
