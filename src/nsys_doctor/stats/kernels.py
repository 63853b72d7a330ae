"""Kernel summaries: ``cuda_gpu_kern_sum`` and ``cuda_gpu_kern_gb_sum``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..trace import schema as S
from .aggregate import grouped_stats, share, stat_cells, summary_rows
from .core import Column, ReportContext, StatsTable, duration_columns, kernel_name_column, load_kernels, report

if TYPE_CHECKING:
    import polars as pl

DUR_COLUMNS = duration_columns("Instances")
GRID = ("gridX", "gridY", "gridZ")
BLOCK = ("blockX", "blockY", "blockZ")


def kernels_with_names(ctx: ReportContext, extra: list[str]) -> pl.DataFrame:
    """Kernel rows (filtered) with ``dur`` and ``name`` (the variant selected by base/mangled)."""
    import polars as pl

    from ..trace.tables import resolve_names

    df = load_kernels(ctx, ["start", "end", *extra])
    df = df.with_columns((pl.col("end") - pl.col("start")).alias("dur"))
    return resolve_names(df, ctx.trace, "name_id", "name")


@report("cuda_gpu_kern_sum", "CUDA GPU Kernel Summary", flags=("base", "mangled"))
def cuda_gpu_kern_sum(ctx: ReportContext) -> StatsTable:
    """Kernel time per kernel name: total, instances, avg, median, min, max, stdev."""
    rows = small_kern_sum(ctx)
    if rows is None:
        stats = grouped_stats(kernels_with_names(ctx, []), ["name"], "dur")
        rows = summary_rows(stats, ["name"])
    return StatsTable("cuda_gpu_kern_sum", "CUDA GPU Kernel Summary", (*DUR_COLUMNS, Column("Name")), rows)


SMALL_ROWS = 100_000
"""Kernel tables up to this many rows are summarized with the stdlib driver alone (``small_kern_sum``): a small
trace's kernel summary then starts as fast as ``info``, without loading polars."""
_EXACT = 2**52  # durations below this are exact in a double, and so are the medians of two of them


def small_kern_sum(ctx: ReportContext) -> list[tuple] | None:
    """``cuda_gpu_kern_sum``'s rows of a small kernel table computed in Python from one SQLite query, the same
    values as ``grouped_stats`` + ``summary_rows`` give; None (the polars path decides) when the table is large,
    has damaged rows, or holds anything unusual (a NULL name, a non-integer value, a huge duration)."""
    trace = ctx.trace
    if not trace.schema.has(S.KERNEL):
        return None
    present = trace.schema.columns(S.KERNEL)
    name_col = kernel_name_column(ctx)
    if not {"start", "end", name_col} <= set(present) or (name_col == "mangledName" and "demangledName" not in present):
        return None
    lo, hi = trace.rows(f"SELECT (SELECT min(rowid) FROM {S.KERNEL}), (SELECT max(rowid) FROM {S.KERNEL})")[0]
    if lo is None or hi - lo + 1 > SMALL_ROWS:
        return None
    strings = trace.strings  # first, as the polars path reads them: an unusable StringIds is its own error
    if trace.count_damage(S.KERNEL).damaged:
        return None
    name = 'coalesce("mangledName", "demangledName")' if name_col == "mangledName" else f'"{name_col}"'
    where = ctx.flt.sql_where(present)
    sql = f'SELECT {name}, "end" - "start" FROM {S.KERNEL}' + (f" WHERE {where}" if where else "")
    by_id: dict[int, list[int]] = {}
    for name_id, dur in trace.rows(sql):  # no damaged row: integer times, end >= start, names in StringIds
        by_id.setdefault(name_id, []).append(dur)
    if None in by_id:
        return None
    groups: dict[str, list[int]] = {}
    for name_id, durs in by_id.items():
        groups.setdefault(strings.get(name_id, ""), []).extend(durs)
    cells = []
    for kernel, durs in groups.items():
        durs.sort()
        if durs[-1] >= _EXACT:
            return None
        n, total, mid = len(durs), sum(durs), len(durs) // 2
        med = float(durs[mid]) if n % 2 else (durs[mid - 1] + durs[mid]) / 2
        # sample variance from exact integer sums: (n * sum(x^2) - sum(x)^2) / (n (n - 1))
        std = math.sqrt((n * sum(d * d for d in durs) - total * total) / (n * (n - 1))) if n > 1 else None
        cells.append((total, n, med, durs[0], durs[-1], std, kernel))
    cells.sort(key=lambda c: (-c[0], c[1], c[6]))
    grand = sum(c[0] for c in cells)
    return [
        (share(total, grand), total, n, *stat_cells(n, total, med, mn, mx, std), kernel)
        for total, n, med, mn, mx, std, kernel in cells
    ]


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
