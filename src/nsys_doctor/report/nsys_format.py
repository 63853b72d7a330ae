"""nsys-compatible rendering of ``StatsTable``s: ``column``, ``table``, ``csv`` and ``json``.

Units follow nsys's formatter: columns tagged ``dur_ns``/``ts_ns`` are shown in the chosen time unit (ns as is;
us with 3 decimals; ms and sec with 4), ``mem_B``/``thru_B`` in MB (3 decimals) unless another unit is chosen.
Column and table formats add thousands separators and clip text at 100 characters with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from ..stats.core import CHUNK_ROWS, ChunkedRows, Column, StatsTable
from ..units import DISPLAY_MEM_UNITS, DISPLAY_TIME_UNITS
from ..values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any  # typing costs a quick command 3-8 ms to import

    import polars as pl

FORMATS = ("column", "table", "csv", "json")
COLMAX = 100


class Units(Value):
    """The units of a report's durations (``time``: ns, us, ms, sec) and sizes (``mem``: ``DISPLAY_MEM_UNITS``)."""

    _fields = ("time", "mem")

    def __init__(self, time: str = "ns", mem: str = "MB") -> None:
        self.time = time
        self.mem = mem


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


def _scaled(col: Column, units: Units) -> bool:
    """Whether ``_convert`` changes the column's numbers (a unit other than ns or B)."""
    if col.unit in ("dur_ns", "ts_ns"):
        return DISPLAY_TIME_UNITS[units.time][0] != 1
    if col.unit in ("mem_B", "thru_B"):
        return DISPLAY_MEM_UNITS[units.mem][0] != 1
    return False


def cell_formatter(col: Column, units: Units, pretty: bool) -> Callable[[object], str]:
    """``pretty_cell`` (``pretty``) or ``plain_cell`` of one column as a function of the value alone, with the same
    text for every value: the column's unit is looked up once, and the numbers of a column shown as they are take a
    shortcut (a report of many rows formats hundreds of thousands of cells)."""
    cell = pretty_cell if pretty else plain_cell
    if _scaled(col, units):
        return lambda v: cell(v, col, units)
    if pretty:

        def pretty_number(v: object) -> str:  # format's "," on a float: repr's digits, its exponent above 1e16
            t = type(v)
            return f"{v:,}" if t is int or t is float else cell(v, col, units)

        return pretty_number

    def plain_number(v: object) -> str:
        t = type(v)
        return str(v) if t is int else repr(v) if t is float else cell(v, col, units)

    return plain_number


def _csv_field(text: str) -> str:
    if "," in text or '"' in text or "\n" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_formatter(col: Column, units: Units) -> Callable[[object], str]:
    """``plain_cell`` of one column as a CSV field: quoted where the text needs it (``_csv_field``). An int's or a
    float's text never does, so a column shown as it is prints its numbers without the test."""
    cell = cell_formatter(col, units, pretty=False)
    if _scaled(col, units):
        return lambda v: _csv_field(cell(v))

    def field(v: object) -> str:
        t = type(v)
        return str(v) if t is int else repr(v) if t is float else _csv_field(cell(v))

    return field


def csv_column(values: Sequence[object], col: Column, units: Units) -> list[str]:
    """The CSV fields of one column's ``values`` (``csv_formatter``'s text for each), a column at a time: a
    column shown as it is, of ints alone or floats alone, is one ``str`` or ``repr`` over all of it, and a column
    of texts that need no quotes is itself."""
    kinds = set(map(type, values))
    nulls = _NONE in kinds  # a NULL is an empty field (a copy's grid in a trace of kernels and copies)
    kinds.discard(_NONE)
    if _scaled(col, units):
        if kinds <= {int, float}:  # ``_convert``'s product and ``plain_cell``'s digits, the unit looked up once
            timed = col.unit in ("dur_ns", "ts_ns")
            div, dec = DISPLAY_TIME_UNITS[units.time] if timed else DISPLAY_MEM_UNITS[units.mem]
            scale, digits = 1.0 / div, f"{{:.{dec}f}}".format
            return _by_value(values, lambda v: "" if v is None else digits(float(v) * scale))
    else:
        fmt: Callable[[Any], str] | None = None
        if kinds <= {int}:
            fmt = str
        elif kinds <= {float}:
            fmt = repr
        elif kinds <= {str}:
            text = "".join(v for v in values if v is not None)  # type: ignore[misc]
            if "," in text or '"' in text or "\n" in text:  # names quoted once each (kernels repeat them)
                return _by_value(values, lambda v: "" if v is None else _csv_field(v))
            fmt = _same
        if fmt is not None:
            if nulls:
                return _by_value(values, lambda v: "" if v is None else fmt(v))
            return list(values) if fmt is _same else list(map(fmt, values))  # type: ignore[arg-type]
    return list(map(csv_formatter(col, units), values))


_NONE = type(None)


def _by_value(values: Sequence[Any], text: Callable[[Any], str]) -> list[str]:
    """``text`` of each value, made once per distinct value when they repeat (a kernel's name, a copy's size)."""
    distinct = dict.fromkeys(values)
    if 2 * len(distinct) > len(values):
        return list(map(text, values))
    for v in distinct:
        distinct[v] = text(v)
    return list(map(distinct.__getitem__, values))  # type: ignore[arg-type]


def _same(text: str) -> str:
    return text


def render_csv(table: StatsTable, units: Units) -> str:
    if not table.rows:
        return ""
    width = len(table.columns)
    for row in table.rows:
        if len(row) != width:
            raise ValueError(f"a row of {len(row)} cells in a table of {width} columns")
    lines = [",".join([_csv_field(header(c, units)) for c in table.columns])]
    columns = [csv_column(values, c, units) for values, c in zip(zip(*table.rows), table.columns)]  # noqa: B905
    lines.extend(map(",".join, zip(*columns)))  # noqa: B905 - every row's width is checked above
    return "\n".join(lines) + "\n"


def render_json(table: StatsTable, units: Units) -> str:
    import json

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
    formats = [cell_formatter(c, units, pretty=True) for c in table.columns]
    cells = [[cell(v) for v, cell in zip(row, formats, strict=True)] for row in table.rows]
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
    rows = _chunked(table)
    if rows is not None and len(rows):
        return "".join(render_chunks(table, fmt, units))
    if fmt == "csv":
        return render_csv(table, units)
    if fmt == "json":
        return render_json(table, units)
    if not table.rows:
        return ""
    if fmt == "table":
        return render_table(table, units)
    return render_column(table, units)


# ---------------------------------------------------------------------------------------------------------------
# Chunked rendering of chunked rows (``stats.core.ChunkedRows``): the same text as the row renderers above
# (which stay the reference, see tests/test_gputrace_stream.py), built a chunk of rows at a time from columns with
# polars string expressions, so a report of millions of rows is written without a Python string per cell.

# what str.rstrip() strips (Python's whitespace is wider than Rust's trim_end: \x1c-\x1f count): every character
# str.isspace() takes, none above U+3000, written out (computing them cost every command 0.4 ms; a test compares)
_PY_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_JSON_CONTROL = [(chr(i), f"\\u{i:04x}") for i in range(0x20) if chr(i) not in "\b\f\n\r\t"]
_JSON_SHORT = [("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"), ("\b", "\\b"), ("\f", "\\f")]


def _chunked(table: StatsTable) -> ChunkedRows | None:
    """The chunked rows behind a table (None for plain rows, which need no polars to render)."""
    rows = table.rows
    return rows if isinstance(rows, ChunkedRows) else None


def _is_text(dtype: pl.DataType) -> bool:
    import polars as pl

    return dtype in (pl.Utf8, pl.Categorical) or isinstance(dtype, (pl.Categorical, pl.Enum))


def _decimals(col: Column, units: Units) -> tuple[float, int] | None:
    """(factor, decimals) of a converted column, as ``_convert`` does it; None: shown as is."""
    if col.unit in ("dur_ns", "ts_ns"):
        div, dec = DISPLAY_TIME_UNITS[units.time]
    elif col.unit in ("mem_B", "thru_B"):
        div, dec = DISPLAY_MEM_UNITS[units.mem]
    else:
        return None
    return None if div == 1 else (1.0 / div, dec)


def _fixed(s: pl.Series, factor: float, dec: int) -> pl.Series:
    """``f"{float(v) * factor:.{dec}f}"`` per value (nulls stay null): polars' CSV writer prints floats with a fixed
    precision exactly as printf/Python do (correctly rounded)."""
    import polars as pl

    f = s.cast(pl.Float64) * factor
    text = pl.DataFrame({"v": f.fill_null(0.0)}).write_csv(include_header=False, float_precision=dec)
    out = pl.Series("v", [text]).str.strip_suffix("\n").str.split("\n").explode()
    return out.set(f.is_null(), None) if f.null_count() else out


def _plain(s: pl.Series, col: Column, units: Units) -> pl.Series:
    """``plain_cell`` per value (nulls stay null)."""
    import polars as pl

    if _is_text(s.dtype):
        return s.cast(pl.Utf8)
    conv = _decimals(col, units)
    if s.dtype.is_integer() or s.dtype.is_float():
        if conv is not None:
            return _fixed(s, *conv)
        if s.dtype.is_integer():
            return s.cast(pl.Utf8)
    return s.map_elements(lambda v: plain_cell(v, col, units), return_dtype=pl.Utf8, skip_nulls=True)


def _thousands(s: pl.Expr) -> pl.Expr:
    """Digits (an optional '-' first) with ',' every three digits from the right."""
    import polars as pl

    neg = s.str.starts_with("-")
    grouped = s.str.strip_prefix("-").str.reverse().str.replace_all(r"(\d{3})", "${1},").str.strip_suffix(",")
    grouped = grouped.str.reverse()
    return pl.when(neg).then(pl.lit("-") + grouped).otherwise(grouped)


def _pretty(s: pl.Series, col: Column, units: Units) -> pl.Series:
    """``pretty_cell`` per value, nulls as ''."""
    import polars as pl

    if _is_text(s.dtype):
        t = pl.col("v").cast(pl.Utf8)
        e = pl.when(t.str.len_chars() > COLMAX).then(t.str.slice(0, COLMAX - 1) + pl.lit("…")).otherwise(t)
    elif s.dtype.is_integer() and _decimals(col, units) is None:
        e = _thousands(pl.col("v").cast(pl.Utf8))
    elif (s.dtype.is_integer() or s.dtype.is_float()) and _decimals(col, units) is not None:
        fixed = pl.col("v")
        whole = fixed.str.split_exact(".", 1)
        e = _thousands(whole.struct.field("field_0")) + pl.lit(".") + whole.struct.field("field_1")
        s = _fixed(s, *_decimals(col, units))  # type: ignore[misc]
    else:
        return s.map_elements(lambda v: pretty_cell(v, col, units), return_dtype=pl.Utf8, skip_nulls=True).fill_null("")
    return pl.DataFrame({"v": s}).select(e.fill_null("").alias("v"))["v"]


def _csv_quote(s: pl.Series) -> pl.Series:
    import polars as pl

    e = pl.col("v")
    quoted = pl.lit('"') + e.str.replace_all('"', '""', literal=True) + pl.lit('"')
    return pl.DataFrame({"v": s}).select(pl.when(e.str.contains('[,"\n]')).then(quoted).otherwise(e).alias("v"))["v"]


def _json_string(s: pl.Series) -> pl.Series:
    """``json.dumps(v, ensure_ascii=False)`` per value."""
    import polars as pl

    e = pl.col("v")
    if s.str.contains(r"[\x00-\x1f\\\"]").any():
        for raw, esc in [*_JSON_SHORT, *_JSON_CONTROL]:
            e = e.str.replace_all(raw, esc, literal=True)
    return _wrap(pl.DataFrame({"v": s}).select(e)["v"], '"', '"')


def _join(cells: list[pl.Series], sep: str) -> pl.Series:
    import polars as pl

    return pl.DataFrame({f"c{i}": c for i, c in enumerate(cells)}).select(
        pl.concat_str(pl.all(), separator=sep).alias("line")
    )["line"]


def _concat(line: pl.Series, end: str) -> str:
    """The chunk's rows as text, each one followed by ``end``."""
    return line.str.join(end).item() + end


def _wrap(s: pl.Series, before: str, after: str = "") -> pl.Series:
    import polars as pl

    return pl.DataFrame({"v": s}).select((pl.lit(before) + pl.col("v") + pl.lit(after)).alias("v"))["v"]


def _csv_chunks(rows: ChunkedRows, cols: tuple[Column, ...], units: Units, n: int) -> Iterator[str]:
    yield ",".join(_csv_field(header(c, units)) for c in cols) + "\n"
    for chunk in rows.chunks(n):
        cells = [_csv_quote(_plain(chunk[:, i], c, units).fill_null("")) for i, c in enumerate(cols)]
        yield _concat(_join(cells, ","), "\n")


def _json_chunks(rows: ChunkedRows, cols: tuple[Column, ...], units: Units, n: int) -> Iterator[str]:
    import json

    import polars as pl

    heads = [json.dumps(header(c, units), ensure_ascii=False) for c in cols]
    yield "[\n"
    for lo, chunk in enumerate(rows.chunks(n)):
        cells = []
        for i, (h, c) in enumerate(zip(heads, cols, strict=True)):
            s = chunk[:, i]
            text = _json_string(s.cast(pl.Utf8)) if _is_text(s.dtype) else _plain(s, c, units)
            cells.append(_wrap(text.fill_null('""'), f"    {h}: "))
        objs = _join(cells, ",\n")
        body = objs.str.join("\n  },\n  {\n").item()
        yield ("  {\n" if lo == 0 else ",\n  {\n") + body + "\n  }"
    yield "\n]\n"


def _grid_chunks(rows: ChunkedRows, cols: tuple[Column, ...], units: Units, n: int, fmt: str) -> Iterator[str]:

    heads = [header(c, units) for c in cols]
    widths = [len(h) for h in heads]
    # first pass, over every row: the widths, and which columns are right-aligned (numbers, not all null)
    right = [False] * len(cols)
    for chunk in rows.chunks(n):
        for i, c in enumerate(cols):
            longest = _pretty(chunk[:, i], c, units).str.len_chars().max()
            widths[i] = max(widths[i], longest if isinstance(longest, int) else 0)
            right[i] = right[i] or (not _is_text(chunk.dtypes[i]) and chunk[:, i].null_count() < chunk.height)

    def pad(s: pl.Series, i: int) -> pl.Series:
        return s.str.pad_start(widths[i]) if right[i] else s.str.pad_end(widths[i])

    if fmt == "table":
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        yield rule + "\n"
        yield "|" + "|".join(" " + _center(h, w) + " " for h, w in zip(heads, widths, strict=True)) + "|\n"
        yield rule + "\n"
    else:
        yield (" " + "  ".join(_center(h, w) for h, w in zip(heads, widths, strict=True))).rstrip() + "\n"
        yield (" " + "  ".join("-" * w for w in widths)).rstrip() + "\n"
    for chunk in rows.chunks(n):
        cells = [pad(_pretty(chunk[:, i], c, units), i) for i, c in enumerate(cols)]
        if fmt == "table":
            line = _wrap(_join(cells, " | "), "| ", " |")
        else:
            line = _wrap(_join(cells, "  "), " ").str.strip_chars_end(_PY_SPACE)
        yield _concat(line, "\n")
    if fmt == "table":
        yield rule + "\n"


def render_chunks(table: StatsTable, fmt: str, units: Units, chunk_rows: int = CHUNK_ROWS) -> Iterator[str]:
    """``render(table, fmt, units)`` as pieces to write one after another (their concatenation is the same text).
    A frame-backed table is formatted ``chunk_rows`` rows at a time; any other table comes in one piece."""
    rows = _chunked(table)
    if rows is None or len(rows) == 0:
        body = render(table, fmt, units)
        if body:
            yield body
        return
    n = max(1, int(chunk_rows))
    if fmt == "csv":
        yield from _csv_chunks(rows, table.columns, units, n)
    elif fmt == "json":
        yield from _json_chunks(rows, table.columns, units, n)
    else:
        yield from _grid_chunks(rows, table.columns, units, n, "table" if fmt == "table" else "column")
