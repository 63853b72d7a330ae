"""OS runtime: ``osrt_sum`` (time in libc/pthread calls traced with -t osrt)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..trace import schema as S
from .aggregate import grouped_stats, summary_rows
from .core import Column, ReportContext, StatsTable, duration_columns, report

if TYPE_CHECKING:
    pass

OSRT_EVENT_CLASS = 27


@report("osrt_sum", "OS Runtime Summary")
def osrt_sum(ctx: ReportContext) -> StatsTable:
    """Time in each OS runtime function (names not shortened)."""
    import polars as pl

    from ..trace.tables import load, resolve_names

    cols = (*duration_columns("Num Calls"), Column("Name"))
    if not ctx.trace.schema.has(S.OSRT):
        return StatsTable(
            "osrt_sum", "OS Runtime Summary", cols, [], "does not contain OS Runtime trace data (capture with -t osrt)"
        )
    df = load(ctx.trace, S.OSRT, ["start", "end", "eventClass", "nameId"], ctx.flt)
    df = df.filter(pl.col("eventClass") == OSRT_EVENT_CLASS)
    df = df.with_columns((pl.col("end") - pl.col("start")).alias("dur"))
    df = resolve_names(df, ctx.trace, "nameId", "name")
    stats = grouped_stats(df, ["nameId", "name"], "dur")
    rows = summary_rows(stats, ["name"], by_count=False)
    return StatsTable("osrt_sum", "OS Runtime Summary", cols, rows, "" if rows else "no OS runtime calls")
