"""What every rule (``nsys analyze``) shares: the common options (``rows=``, ``start=``, ``end=``, ``nvtx=``), the
rule's window, its row limit, SQLite ``LIKE`` and the rule's empty result."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..errors import UsageError
from ..trace import Trace
from ..trace.window import EventFilter, resolve_nvtx_filter
from .core import Column, ReportContext, StatsTable

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

    import polars as pl

COMMON_OPTIONS = ("rows", "start", "end", "nvtx")
DEFAULT_ROWS = 50
MAX_ROWS = 1_000_000_000
MAX_TS = 2**63 - 1
MAX_GAP_MS = 1_000_000_000  # gap= is in ms; its value in ns must stay a 64-bit integer
MAX_ID = 0xFFFFFF  # process and thread ids are 24-bit fields of nsys's global ids
PID_MASK = 0xFFFFFF


def rule_filter(ctx: ReportContext) -> EventFilter:
    """The rule's window: the CLI filter, replaced by ``nvtx=``, with ``start=``/``end=`` overriding its times."""
    flt = ctx.flt
    nvtx = ctx.options.get("nvtx")
    if nvtx:
        flt = resolve_nvtx_filter(ctx.trace, nvtx)
    start = ctx.options.get("start")
    end = ctx.options.get("end")
    if start is not None:
        flt = flt.replace(start=ctx.int_option("start", 0, 0, MAX_TS, "a time in ns, 0..2^63-1"))
    if end is not None:
        flt = flt.replace(end=ctx.int_option("end", 0, 0, MAX_TS, "a time in ns, 0..2^63-1"))
    if flt.start > flt.end:
        raise UsageError(
            f"start={flt.start} is after end={flt.end}", "the start time cannot be greater than the end time"
        )
    if start is not None or end is not None:
        flt = flt.replace(label=f"start={flt.start} end={flt.end}" + (f" {flt.label}" if flt.label else ""))
    return flt


def row_limit(ctx: ReportContext) -> int | None:
    """``rows=``: None for no limit (any negative value, as SQLite's ``LIMIT -1``)."""
    rows = ctx.int_option("rows", DEFAULT_ROWS, -1, MAX_ROWS, f"-1 for no limit, else 0..{MAX_ROWS}")
    return None if rows < 0 else rows


def limit(df: pl.DataFrame, rows: int | None) -> pl.DataFrame:
    return df if rows is None else df.head(rows)


def like_regex(pattern: str) -> re.Pattern[str]:
    """SQLite ``LIKE`` (no ESCAPE): ``%`` any run, ``_`` one character, ASCII letters case-insensitive."""
    import re  # here: only a rule that matches names by pattern needs it

    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.IGNORECASE | re.ASCII | re.DOTALL)


def string_ids(trace: Trace, test: Callable[[str], bool]) -> list[int]:
    """StringIds ids whose text passes ``test`` (the StringIds table is small next to activity tables)."""
    return [i for i, text in trace.strings.items() if test(text)]


def like_test(include: Iterable[str], exclude: Iterable[str] = ()) -> Callable[[str], bool]:
    """``value LIKE any(include) AND NOT LIKE any(exclude)``."""
    inc = [like_regex(p) for p in include]
    exc = [like_regex(p) for p in exclude]
    return lambda s: any(r.fullmatch(s) for r in inc) and not any(r.fullmatch(s) for r in exc)


def missing_tables(trace: Trace, tables: Iterable[str]) -> str:
    absent = [t for t in tables if not trace.schema.has(t)]
    return f"the trace has no {', '.join(absent)} table" if absent else ""


def empty(name: str, title: str, columns: tuple[Column, ...], skipped: str = "") -> StatsTable:
    return StatsTable(name, title, columns, [], skipped)
