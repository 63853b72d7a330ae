"""Summaries over several activity kinds: ``cuda_api_gpu_sum`` and ``cuda_gpu_sum``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .aggregate import grouped_stats, summary_rows
from .api import api_calls, api_name_expr
from .core import Column, ReportContext, StatsTable, duration_columns, report
from .kernels import kernels_with_names
from .memops import memory_ops

if TYPE_CHECKING:
    import polars as pl

COLUMNS = (*duration_columns("Instances"), Column("Category"), Column("Operation"))


def _summary(parts: list[pl.DataFrame]) -> list[tuple]:
    """Group by display name only (category: the first seen), Time% over everything, Total desc."""
    import polars as pl

    df = pl.concat([p.select("name", "category", "dur") for p in parts], how="vertical")
    stats = grouped_stats(df, ["name"], "dur").join(
        df.group_by("name", maintain_order=True).agg(pl.col("category").first()), on="name", how="left"
    )
    category = dict(stats.select("name", "category").iter_rows())
    # nsys orders these combined summaries by Total, then by name (not by count as the per-kind summaries)
    return [(*r[:-1], category[r[-1]], r[-1]) for r in summary_rows(stats, ["name"], by_count=False)]


def _kernels(ctx: ReportContext) -> pl.DataFrame:
    import polars as pl

    return kernels_with_names(ctx, []).with_columns(pl.lit("CUDA_KERNEL").alias("category"))


def _memops(ctx: ReportContext) -> pl.DataFrame:
    import polars as pl

    return memory_ops(ctx.trace, ctx.flt).with_columns(pl.lit("MEMORY_OPER").alias("category"))


@report("cuda_api_gpu_sum", "CUDA Summary (API/Kernels/MemOps)", flags=("base", "mangled"))
def cuda_api_gpu_sum(ctx: ReportContext) -> StatsTable:
    """API calls, kernels and memory operations in one table, grouped by name."""
    import polars as pl

    api = api_calls(ctx).with_columns(api_name_expr("api").alias("name"), pl.lit("CUDA_API").alias("category"))
    rows = _summary([api, _kernels(ctx), _memops(ctx)])
    return StatsTable(
        "cuda_api_gpu_sum",
        "CUDA Summary (API/Kernels/MemOps)",
        COLUMNS,
        rows,
        "" if rows else "does not contain CUDA API or GPU activity",
    )


@report("cuda_gpu_sum", "GPU Summary (Kernels/MemOps)", flags=("base", "mangled"))
def cuda_gpu_sum(ctx: ReportContext) -> StatsTable:
    """Kernels and memory operations in one table, grouped by name."""
    rows = _summary([_kernels(ctx), _memops(ctx)])
    return StatsTable(
        "cuda_gpu_sum",
        "GPU Summary (Kernels/MemOps)",
        COLUMNS,
        rows,
        "" if rows else "does not contain CUDA kernels or memory operations",
    )
