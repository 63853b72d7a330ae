"""OS runtime: ``osrt_sum`` (time in libc/pthread calls traced with -t osrt)."""

from __future__ import annotations

from ..trace import schema as S
from .aggregate import grouped, summary_rows
from .core import DURATION, Column, ReportContext, StatsTable, duration_columns, report, small_rows

TYPE_CHECKING = False
if TYPE_CHECKING:
    import polars as pl

OSRT_EVENT_CLASS = 27


def _calls(ctx: ReportContext) -> pl.DataFrame:
    """Filtered OS runtime calls with ``nameId``, ``name`` and ``dur``."""
    import polars as pl

    from ..trace.tables import load, resolve_names

    df = load(ctx.trace, S.OSRT, ["start", "end", "eventClass", "nameId"], ctx.flt)
    df = df.filter(pl.col("eventClass") == OSRT_EVENT_CLASS)
    df = df.with_columns((pl.col("end") - pl.col("start")).alias("dur"))
    return resolve_names(df, ctx.trace, "nameId", "name")


def _small_calls(ctx: ReportContext) -> list[tuple] | None:
    """``_calls`` of a small, clean table read with sqlite3 alone, as rows ``(nameId, name, dur)``."""
    rows = small_rows(ctx, S.OSRT, ["nameId", "eventClass", DURATION], nullable=("eventClass",))
    if rows is None:
        return None
    strings = ctx.trace.strings
    return [(i, strings.get(i, ""), dur) for i, event_class, dur in rows if event_class == OSRT_EVENT_CLASS]


@report("osrt_sum", "OS Runtime Summary")
def osrt_sum(ctx: ReportContext) -> StatsTable:
    """Time in each OS runtime function (names not shortened)."""
    cols = (*duration_columns("Num Calls"), Column("Name"))
    if not ctx.trace.schema.has(S.OSRT):
        return StatsTable(
            "osrt_sum", "OS Runtime Summary", cols, [], "does not contain OS Runtime trace data (capture with -t osrt)"
        )
    stats = grouped(_small_calls(ctx), ["nameId", "name"], lambda: _calls(ctx), "dur")
    rows = summary_rows(stats, ["name"], by_count=False)
    return StatsTable("osrt_sum", "OS Runtime Summary", cols, rows, "" if rows else "no OS runtime calls")
