"""Readable tables for the terminal; every report is also written as JSON by its command."""

from __future__ import annotations


def table(rows: list[list[str]], header: list[str] | None = None, numeric: bool = True) -> str:
    """A plain aligned table; the first column left-aligned, the others right-aligned when numeric."""
    all_rows = ([header] if header else []) + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(all_rows[0]))]

    def fmt(r):
        return "  ".join(c.ljust(w) if i == 0 or not numeric else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    lines = [fmt(r) for r in all_rows]
    if header:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"
