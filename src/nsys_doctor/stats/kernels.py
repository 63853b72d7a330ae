"""Kernel summaries: ``cuda_gpu_kern_sum`` and ``cuda_gpu_kern_gb_sum``."""

from __future__ import annotations

import polars as pl

from ..trace.tables import resolve_names
from .aggregate import grouped_stats, summary_rows
from .core import Column, ReportContext, StatsTable, duration_columns, load_kernels, report

DUR_COLUMNS = duration_columns("Instances")
GRID = ("gridX", "gridY", "gridZ")
BLOCK = ("blockX", "blockY", "blockZ")


def kernels_with_names(ctx: ReportContext, extra: list[str]) -> pl.DataFrame:
    """Kernel rows (filtered) with ``dur`` and ``name`` (the variant selected by base/mangled)."""
    df = load_kernels(ctx, ["start", "end", *extra])
    df = df.with_columns((pl.col("end") - pl.col("start")).alias("dur"))
    return resolve_names(df, ctx.trace, "name_id", "name")


@report("cuda_gpu_kern_sum", "CUDA GPU Kernel Summary", flags=("base", "mangled"))
def cuda_gpu_kern_sum(ctx: ReportContext) -> StatsTable:
    """Kernel time per kernel name: total, instances, avg, median, min, max, stdev."""
    df = kernels_with_names(ctx, [])
    stats = grouped_stats(df, ["name"], "dur")
    return StatsTable(
        "cuda_gpu_kern_sum", "CUDA GPU Kernel Summary", (*DUR_COLUMNS, Column("Name")), summary_rows(stats, ["name"])
    )


@report("cuda_gpu_kern_gb_sum", "CUDA GPU Kernel/Grid/Block Summary", flags=("base", "mangled"))
def cuda_gpu_kern_gb_sum(ctx: ReportContext) -> StatsTable:
    """Kernel time per kernel name and launch geometry (grid and block dimensions)."""
    df = kernels_with_names(ctx, [*GRID, *BLOCK])
    keys = ["name", *GRID, *BLOCK]
    stats = grouped_stats(df, keys, "dur")
    rows = []
    for row in summary_rows(stats, keys):
        *head, name, gx, gy, gz, bx, by, bz = row
        rows.append((*head, f"{gx:4d} {gy:4d} {gz:4d}", f"{bx:4d} {by:4d} {bz:4d}", name))
    return StatsTable(
        "cuda_gpu_kern_gb_sum",
        "CUDA GPU Kernel/Grid/Block Summary",
        (*DUR_COLUMNS, Column("GridXYZ"), Column("BlockXYZ"), Column("Name")),
        rows,
    )
