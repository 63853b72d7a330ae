"""GPU memory operations: ``cuda_gpu_mem_time_sum`` and ``cuda_gpu_mem_size_sum``."""

from __future__ import annotations

from ..trace import Trace
from ..trace import schema as S
from ..trace.window import EventFilter
from .aggregate import (
    Groups,
    grouped_stats,
    small_grouped_stats,
    sort_groups,
    stats_of_groups,
    stdev,
    summary_rows,
)
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

MEMSET_NAME = "[CUDA memset]"


def memcpy_name_expr(trace: Trace) -> pl.Expr:
    """``[CUDA memcpy <copy kind label>]`` as nsys names copies."""
    import polars as pl

    labels = trace.schema.enum_labels("ENUM_CUDA_MEMCPY_OPER")
    return pl.concat_str(
        pl.lit("[CUDA memcpy "),
        pl.col("copyKind").replace_strict(labels, default="Unknown", return_dtype=pl.Utf8),
        pl.lit("]"),
    )


def memory_ops(trace: Trace, flt: EventFilter | None, extra: list[str] | None = None) -> pl.DataFrame:
    """Memcpy and memset rows, filtered, with ``name``, ``dur`` and ``bytes`` (+ extra common columns)."""
    import polars as pl

    from ..trace.tables import load

    common = ["start", "end", "bytes", *(extra or [])]
    cp = load(trace, S.MEMCPY, [*common, "copyKind"], flt)
    cp = cp.with_columns(memcpy_name_expr(trace).alias("name")).drop("copyKind")
    ms = load(trace, S.MEMSET, common, flt).with_columns(pl.lit(MEMSET_NAME).alias("name"))
    df = pl.concat([cp, ms], how="vertical")
    return df.with_columns((pl.col("end") - pl.col("start")).alias("dur"))


def _small_tables(ctx: ReportContext, value: str) -> tuple[list[tuple], list[tuple], dict[int, str]] | None:
    """Small, clean memcpy rows ``(copyKind, value)`` and memset rows ``(value,)`` read with sqlite3 alone, each in
    table order, with the copy kinds' labels; None when the polars path must decide."""
    column = "bytes" if value == "bytes" else DURATION
    copies = small_rows(ctx, S.MEMCPY, ["copyKind", column], nullable=("copyKind",), names=False)
    sets = small_rows(ctx, S.MEMSET, [column], names=False)
    if copies is None or sets is None:
        return None
    return copies, sets, ctx.trace.schema.enum_labels("ENUM_CUDA_MEMCPY_OPER")


def _named(copies: list[tuple], sets: list[tuple], labels: dict[int, str]) -> list[tuple]:
    """Rows ``(name, value)``: copies first, then memsets."""
    name = {k: f"[CUDA memcpy {labels.get(k, 'Unknown')}]" for k in {k for k, _ in copies}}  # NULL: Unknown too
    return [(name[k], v) for k, v in copies] + [(MEMSET_NAME, v) for (v,) in sets]


def small_memory_ops(ctx: ReportContext, value: str) -> list[tuple] | None:
    """``memory_ops`` of small, clean memcpy and memset tables read with sqlite3 alone, as rows ``(name, value)``
    (``value``: ``dur`` or ``bytes``), copies first, each in table order; None when the polars path must decide."""
    found = _small_tables(ctx, value)
    return None if found is None else _named(*found)


def small_memory_named(ctx: ReportContext, value: str) -> list[tuple[str, list[int]]] | None:
    """The values (``dur`` or ``bytes``) of small, clean memcpy and memset tables grouped by SQLite
    (``small_groups``), per operation name, copies first (by kind), then memsets; None when the rows must decide
    (see ``small_groups``; two copy kinds of one label)."""
    column = "bytes" if value == "bytes" else DURATION
    kinds = small_groups(ctx, S.MEMCPY, "copyKind", column)
    once = None if kinds is None else small_groups(ctx, S.MEMSET, None, column)
    if once is None:
        return None
    labels = ctx.trace.schema.enum_labels("ENUM_CUDA_MEMCPY_OPER")
    copies = named_groups(kinds, lambda k: f"[CUDA memcpy {labels.get(k, 'Unknown')}]")
    if copies is None or any(name == MEMSET_NAME for name, _ in copies):
        return None
    return copies + [(MEMSET_NAME, values) for _, values in once]


def small_memory_groups(ctx: ReportContext, value: str) -> Groups | None:
    """``memory_groups`` of small, clean memcpy and memset tables read with sqlite3 alone: grouped by SQLite per
    operation name (``small_memory_named``) where it can, else row by row (a NULL kind, two kinds of one label);
    None when the polars path must decide."""
    named = small_memory_named(ctx, value)
    if named is not None:
        return stats_of_groups({(name,): values for name, values in named}, ["name"])
    found = _small_tables(ctx, value)
    return None if found is None else small_grouped_stats(_named(*found), ["name"])


def memory_groups(ctx: ReportContext, value: str) -> Groups:
    """Statistics of ``value`` (``dur`` or ``bytes``) per kind of memory operation (``name``)."""
    groups = small_memory_groups(ctx, value)
    return groups if groups is not None else grouped_stats(memory_ops(ctx.trace, ctx.flt), ["name"], value)


@report("cuda_gpu_mem_time_sum", "CUDA GPU MemOps Summary (by Time)")
def cuda_gpu_mem_time_sum(ctx: ReportContext) -> StatsTable:
    """Time in GPU memory copies and memsets, per kind of operation."""
    stats = memory_groups(ctx, "dur")
    rows = summary_rows(stats, ["name"])
    cols = (*duration_columns("Count"), Column("Operation"))
    skipped = "" if rows else "does not contain GPU memory operations (memcpy/memset)"
    return StatsTable("cuda_gpu_mem_time_sum", "CUDA GPU MemOps Summary (by Time)", cols, rows, skipped)


@report("cuda_gpu_mem_size_sum", "CUDA GPU MemOps Summary (by Size)")
def cuda_gpu_mem_size_sum(ctx: ReportContext) -> StatsTable:
    """Bytes moved by GPU memory copies and memsets, per kind of operation (not rounded, as in nsys)."""
    rows = []
    for r in sort_groups(memory_groups(ctx, "bytes"), ["total", "n", "name"], [True, False, False]):
        n = r["n"]
        rows.append(
            (
                r["total"],
                n,
                float(r["total"]) / n if n else None,
                r["med"],
                r["min"],
                r["max"],
                stdev(r["std"], n),
                r["name"],
            )
        )
    cols = (
        Column("Total", "mem_B"),
        Column("Count"),
        Column("Avg", "mem_B"),
        Column("Med", "mem_B"),
        Column("Min", "mem_B"),
        Column("Max", "mem_B"),
        Column("StdDev", "mem_B"),
        Column("Operation"),
    )
    skipped = "" if rows else "does not contain GPU memory operations (memcpy/memset)"
    return StatsTable("cuda_gpu_mem_size_sum", "CUDA GPU MemOps Summary (by Size)", cols, rows, skipped)
