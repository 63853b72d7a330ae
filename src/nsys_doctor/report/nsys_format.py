"""nsys-compatible rendering of ``StatsTable``s: ``column``, ``table``, ``csv`` and ``json``.

Units follow nsys's formatter: columns tagged ``dur_ns``/``ts_ns`` are shown in the chosen time unit (ns as is;
us with 3 decimals; ms and sec with 4), ``mem_B``/``thru_B`` in MB (3 decimals) unless another unit is chosen.
Column and table formats add thousands separators and clip text at 100 characters with an ellipsis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..stats.core import Column, StatsTable
from ..units import DISPLAY_MEM_UNITS, DISPLAY_TIME_UNITS

FORMATS = ("column", "table", "csv", "json")
COLMAX = 100


@dataclass(frozen=True)
class Units:
    time: str = "ns"
    mem: str = "MB"


def header(col: Column, units: Units) -> str:
    if col.unit in ("dur_ns", "ts_ns"):
        return f"{col.label} ({units.time})"
    if col.unit == "mem_B":
        return f"{col.label} ({units.mem})"
    if col.unit == "thru_B":
        return f"{col.label} ({units.mem}/s)"
    if col.unit == "ratio_%":
        return f"{col.label} (%)"
    return col.label


def _convert(value: object, col: Column, units: Units) -> tuple[object, int | None]:
    """(value, decimals) after unit conversion; decimals None means 'as is'."""
    if value is None or isinstance(value, (str, bool)):
        return value, None
    if col.unit in ("dur_ns", "ts_ns"):
        div, dec = DISPLAY_TIME_UNITS[units.time]
    elif col.unit in ("mem_B", "thru_B"):
        div, dec = DISPLAY_MEM_UNITS[units.mem]
    else:
        return value, None
    if div == 1:
        return value, None
    # nsys multiplies by the reciprocal in double precision, then prints with printf rounding:
    # 19645.5 ns * 0.001 = 19.645500000000002 -> 19.646 us, while 1766.5 ns * 0.001 = 1.7665 -> 1.766 us
    return float(value) * (1.0 / div), dec  # type: ignore[arg-type]


def plain_cell(value: object, col: Column, units: Units) -> str:
    """A cell as csv/json print it: no thousands separators."""
    v, dec = _convert(value, col, units)
    if v is None:
        return ""
    if dec is not None:
        return f"{v:.{dec}f}"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def pretty_cell(value: object, col: Column, units: Units) -> str:
    """A cell as column/table print it: thousands separators, text clipped at 100 characters."""
    v, dec = _convert(value, col, units)
    if v is None:
        return ""
    if isinstance(v, str):
        return v if len(v) <= COLMAX else v[: COLMAX - 1] + "…"
    if dec is not None:
        return f"{v:,.{dec}f}"
    if isinstance(v, float):
        text = repr(v)
        if "e" in text or "inf" in text or "nan" in text:
            return text
        whole, _, frac = text.partition(".")
        return f"{int(whole):,}" + (f".{frac}" if frac else "") if whole not in ("-0",) else text
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _csv_field(text: str) -> str:
    if any(ch in text for ch in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def render_csv(table: StatsTable, units: Units) -> str:
    if not table.rows:
        return ""
    lines = [",".join(_csv_field(header(c, units)) for c in table.columns)]
    for row in table.rows:
        lines.append(",".join(_csv_field(plain_cell(v, c, units)) for v, c in zip(row, table.columns, strict=True)))
    return "\n".join(lines) + "\n"


def render_json(table: StatsTable, units: Units) -> str:
    if not table.rows:
        return ""
    heads = [json.dumps(header(c, units), ensure_ascii=False) for c in table.columns]
    objs = []
    for row in table.rows:
        fields = []
        for h, v, c in zip(heads, row, table.columns, strict=True):
            if v is None:
                text = '""'
            elif isinstance(v, str):
                text = json.dumps(v, ensure_ascii=False)
            else:
                text = plain_cell(v, c, units)
            fields.append(f"    {h}: {text}")
        objs.append("  {\n" + ",\n".join(fields) + "\n  }")
    return "[\n" + ",\n".join(objs) + "\n]\n"


def _grid(table: StatsTable, units: Units) -> tuple[list[str], list[list[str]], list[int], list[bool]]:
    heads = [header(c, units) for c in table.columns]
    cells = [[pretty_cell(v, c, units) for v, c in zip(row, table.columns, strict=True)] for row in table.rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(heads)]
    right = []
    for i in range(len(heads)):
        values = [row[i] for row in table.rows if row[i] is not None]
        right.append(bool(values) and all(not isinstance(v, str) for v in values))
    return heads, cells, widths, right


def _center(text: str, width: int) -> str:
    pad = width - len(text)
    left = pad // 2
    return " " * left + text + " " * (pad - left)


def render_table(table: StatsTable, units: Units) -> str:
    heads, cells, widths, right = _grid(table, units)
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [rule, "|" + "|".join(" " + _center(h, w) + " " for h, w in zip(heads, widths, strict=True)) + "|", rule]
    for r in cells:
        lines.append(
            "|"
            + "|".join(
                " " + (c.rjust(w) if rt else c.ljust(w)) + " " for c, w, rt in zip(r, widths, right, strict=True)
            )
            + "|"
        )
    lines.append(rule)
    return "\n".join(lines) + "\n"


def render_column(table: StatsTable, units: Units) -> str:
    heads, cells, widths, right = _grid(table, units)
    lines = [
        " " + "  ".join(_center(h, w) for h, w in zip(heads, widths, strict=True)),
        " " + "  ".join("-" * w for w in widths),
    ]
    for r in cells:
        cells_text = (c.rjust(w) if rt else c.ljust(w) for c, w, rt in zip(r, widths, right, strict=True))
        lines.append(" " + "  ".join(cells_text))
    return "\n".join(line.rstrip() for line in lines) + "\n"


def render(table: StatsTable, fmt: str, units: Units) -> str:
    """The report body in one format ('' when it has no rows: the caller says why)."""
    if fmt == "csv":
        return render_csv(table, units)
    if fmt == "json":
        return render_json(table, units)
    if not table.rows:
        return ""
    if fmt == "table":
        return render_table(table, units)
    return render_column(table, units)
