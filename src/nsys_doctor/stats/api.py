"""CUDA API summary: ``cuda_api_sum``."""

from __future__ import annotations

from ..trace import schema as S
from ..trace.schema import nsys_api_name
from .aggregate import Groups, grouped_stats, small_grouped_stats, stats_of_groups, summary_rows
from .core import (
    DURATION,
    Column,
    ReportContext,
    StatsTable,
    duration_columns,
    named_groups,
    report,
    small_groups,
    small_rows,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import polars as pl


def api_name_expr(col: str = "api") -> pl.Expr:
    """Vectorized ``nsys_api_name``."""
    import polars as pl

    c = pl.col(col)
    return (
        pl.when(c.str.len_chars() >= 6)
        .then(pl.when(c.str.slice(-6, 2) == "_v").then(c.str.slice(0, c.str.len_chars() - 6)).otherwise(c))
        .otherwise(c)
    )


def api_calls(ctx: ReportContext, extra: list[str] | None = None) -> pl.DataFrame:
    """Filtered runtime+driver API rows with ``dur``, ``nameId`` and the raw name ``api``."""
    import polars as pl

    from ..trace.tables import load, resolve_names

    df = load(ctx.trace, S.RUNTIME, ["start", "end", "nameId", *(extra or [])], ctx.flt)
    df = df.with_columns((pl.col("end") - pl.col("start")).alias("dur"))
    return resolve_names(df, ctx.trace, "nameId", "api")


def small_api_calls(ctx: ReportContext) -> list[tuple] | None:
    """``api_calls`` of a small, clean API table read with sqlite3 alone, as rows ``(nameId, api, dur)`` in table
    order; None when the polars path must decide (see ``small_rows``)."""
    rows = small_rows(ctx, S.RUNTIME, ["nameId", DURATION])
    if rows is None:
        return None
    strings = ctx.trace.strings
    return [(i, strings.get(i, ""), dur) for i, dur in rows]


def small_api_named(ctx: ReportContext) -> list[tuple[str, list[int]]] | None:
    """The durations of a small, clean API table grouped by SQLite per call name as nsys shows it
    (``nsys_api_name``), in order of each name's first call; None when the rows must decide (see
    ``small_groups``; two ids of one shown name)."""
    return named_groups(small_groups(ctx, S.RUNTIME, "nameId"), lambda k: nsys_api_name(ctx.trace.strings.get(k, "")))


def _api_groups(ctx: ReportContext) -> Groups:
    """Call time per (nameId, api): the stdlib engine groups a small clean table's calls by nameId alone and names
    the groups (the name is the id's: the same groups in the same order), else polars."""
    pairs = small_groups(ctx, S.RUNTIME, "nameId")  # grouped by SQLite: no Python object a call
    if pairs is not None:
        groups = stats_of_groups({(g,): durations for g, durations in pairs}, ["nameId"])
    else:
        rows = small_rows(ctx, S.RUNTIME, ["nameId", DURATION])
        groups = None if rows is None else small_grouped_stats(rows, ["nameId"])
    if groups is None:
        return grouped_stats(api_calls(ctx), ["nameId", "api"], "dur")
    strings = ctx.trace.strings
    for g in groups:
        g["api"] = strings.get(g["nameId"], "")
    return groups


@report("cuda_api_sum", "CUDA API Summary")
def cuda_api_sum(ctx: ReportContext) -> StatsTable:
    """Time in each CUDA runtime and driver API function (host side)."""
    stats = _api_groups(ctx)
    rows = [(*r[:-1], nsys_api_name(r[-1])) for r in summary_rows(stats, ["api"], by_count=False)]
    cols = (*duration_columns("Num Calls"), Column("Name"))
    return StatsTable("cuda_api_sum", "CUDA API Summary", cols, rows)
