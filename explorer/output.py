"""Query results on the terminal: an aligned table, or JSON / CSV for scripts."""

from __future__ import annotations

import csv
import dataclasses
import decimal
import io
import json
import math
from typing import Any

FORMATS = ("table", "json", "csv")


def render(rows: list[dict[str, Any]], format: str, *, columns: list[str] | None = None) -> str:
    """Rows (dicts with the same keys) as ``table``, ``json`` or ``csv`` text."""
    columns = columns or (list(rows[0]) if rows else [])
    if format == "json":
        return json.dumps([{c: _plain(r.get(c)) for c in columns} for r in rows], indent=2)
    cells = [[_text(r.get(c)) for c in columns] for r in rows]
    if format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(cells)
        return buffer.getvalue().rstrip("\n")
    return aligned([columns, *cells])


def to_json(value: Any) -> str:
    """A result record (dataclasses, tuples, dicts) as indented JSON."""
    return json.dumps(_plain(value), indent=2)


def aligned(cells: list[list[str]]) -> str:
    """Rows of strings as left-aligned columns."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return str(value)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, decimal.Decimal):  # LadybugDB sums integers into 128-bit decimals
        return int(value) if value == value.to_integral_value() else float(value)
    return value
