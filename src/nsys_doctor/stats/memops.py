"""GPU memory operations: ``cuda_gpu_mem_time_sum`` and ``cuda_gpu_mem_size_sum``."""

from __future__ import annotations

from ..trace import Trace
from ..trace import schema as S
from ..trace.window import EventFilter
from .aggregate import Groups, grouped, sort_groups, stdev, summary_rows
from .core import DURATION, Column, ReportContext, StatsTable, duration_columns, report, small_rows

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


def small_memory_ops(ctx: ReportContext, value: str) -> list[tuple] | None:
    """``memory_ops`` of small, clean memcpy and memset tables read with sqlite3 alone, as rows ``(name, value)``
    (``value``: ``dur`` or ``bytes``), copies first, each in table order; None when the polars path must decide."""
    column = "bytes" if value == "bytes" else DURATION
    copies = small_rows(ctx, S.MEMCPY, ["copyKind", column], nullable=("copyKind",), names=False)
    sets = small_rows(ctx, S.MEMSET, [column], names=False)
    if copies is None or sets is None:
        return None
    labels = ctx.trace.schema.enum_labels("ENUM_CUDA_MEMCPY_OPER")
    name = {k: f"[CUDA memcpy {labels.get(k, 'Unknown')}]" for k in {k for k, _ in copies}}  # NULL: Unknown too
    return [(name[k], v) for k, v in copies] + [(MEMSET_NAME, v) for (v,) in sets]


def memory_groups(ctx: ReportContext, value: str) -> Groups:
    """Statistics of ``value`` (``dur`` or ``bytes``) per kind of memory operation (``name``)."""
    return grouped(small_memory_ops(ctx, value), ["name"], lambda: memory_ops(ctx.trace, ctx.flt), value)


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
