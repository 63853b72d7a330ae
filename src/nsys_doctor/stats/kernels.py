"""Kernel summaries: ``cuda_gpu_kern_sum`` and ``cuda_gpu_kern_gb_sum``."""

from __future__ import annotations

from ..trace import schema as S
from .aggregate import Groups, grouped, grouped_stats, small_grouped_stats, stats_of_groups, summary_rows
from .core import (
    DURATION,
    Column,
    ReportContext,
    StatsTable,
    duration_columns,
    load_kernels,
    named_groups,
    report,
    small_kernel_groups,
    small_kernel_rows,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import polars as pl

DUR_COLUMNS = duration_columns("Instances")
GRID = S.GRID
BLOCK = ("blockX", "blockY", "blockZ")


def kernels_with_names(ctx: ReportContext, extra: list[str]) -> pl.DataFrame:
    """Kernel rows (filtered) with ``dur`` and ``name`` (the variant selected by base/mangled)."""
    import polars as pl

    from ..trace.tables import resolve_names

    df = load_kernels(ctx, ["start", "end", *extra])
    df = df.with_columns((pl.col("end") - pl.col("start")).alias("dur"))
    return resolve_names(df, ctx.trace, "name_id", "name")


def small_kernels(ctx: ReportContext, extra: tuple[str, ...] = ()) -> list[tuple] | None:
    """``kernels_with_names`` of a small, clean kernel table read with sqlite3 alone, as rows ``(name, *extra,
    dur)`` in table order (``extra``: integer columns); None when the polars path must decide (see ``small_rows``)."""
    rows = small_kernel_rows(ctx, [*extra, DURATION])
    return None if rows is None else _named(ctx, rows)


def small_kernels_named(ctx: ReportContext) -> list[tuple[str, list[int]]] | None:
    """The durations of a small, clean kernel table grouped by SQLite per kernel name (the variant the report asks
    for), in order of each name's first kernel; None when the rows must decide (see ``small_groups``)."""
    return named_groups(small_kernel_groups(ctx), lambda k: ctx.trace.strings.get(k, ""))


def _named(ctx: ReportContext, rows: list[tuple]) -> list[tuple]:
    """``small_kernel_rows``' rows with the name of each name id."""
    strings = ctx.trace.strings
    return [(strings.get(r[0], ""), *r[1:]) for r in rows]


def kernel_groups(ctx: ReportContext, keys: list[str], extra: tuple[str, ...] = ()) -> Groups:
    """Kernel time per group of ``keys`` (``name`` and the ``extra`` columns): the stdlib engine on a small clean
    table, else polars. Grouped by name alone, SQLite groups the durations (``small_kernels_named``); otherwise
    the stdlib engine groups the rows by name id, then names the groups: the same groups, in
    the same order, as grouping by the names, unless two ids hold one name (then it groups by the names). What it
    declines by id (a value it cannot reproduce exactly, a NULL key) it would decline by name too."""
    named = None if extra else small_kernels_named(ctx)  # grouped by SQLite: no Python object a kernel
    by_name = None if named is None else stats_of_groups({(name,): values for name, values in named}, keys)
    if by_name is not None:
        return by_name
    rows = small_kernel_rows(ctx, [*extra, DURATION])
    by_id = None if rows is None else small_grouped_stats(rows, keys)
    if rows is None or by_id is None:
        return grouped_stats(kernels_with_names(ctx, list(extra)), keys, "dur")
    strings = ctx.trace.strings
    for group in by_id:
        group["name"] = strings.get(group["name"], "")
    if len({tuple(g[k] for k in keys) for g in by_id}) == len(by_id):
        return by_id
    return grouped(_named(ctx, rows), keys, lambda: kernels_with_names(ctx, list(extra)), "dur")


@report("cuda_gpu_kern_sum", "CUDA GPU Kernel Summary", flags=("base", "mangled"))
def cuda_gpu_kern_sum(ctx: ReportContext) -> StatsTable:
    """Kernel time per kernel name: total, instances, avg, median, min, max, stdev."""
    rows = summary_rows(kernel_groups(ctx, ["name"]), ["name"])
    return StatsTable("cuda_gpu_kern_sum", "CUDA GPU Kernel Summary", (*DUR_COLUMNS, Column("Name")), rows)


def _xyz(*dims: int | None) -> str:
    """SQLite's ``printf('%4d %4d %4d', x, y, z)``, as nsys renders GridXYZ/BlockXYZ: a NULL prints as 0."""
    return " ".join(f"{0 if d is None else d:4d}" for d in dims)


@report("cuda_gpu_kern_gb_sum", "CUDA GPU Kernel/Grid/Block Summary", flags=("base", "mangled"))
def cuda_gpu_kern_gb_sum(ctx: ReportContext) -> StatsTable:
    """Kernel time per kernel name and launch geometry (grid and block dimensions)."""
    keys = ["name", *GRID, *BLOCK]
    stats = kernel_groups(ctx, keys, (*GRID, *BLOCK))
    rows = []
    for row in summary_rows(stats, keys):
        *head, name, gx, gy, gz, bx, by, bz = row
        rows.append((*head, _xyz(gx, gy, gz), _xyz(bx, by, bz), name))
    return StatsTable(
        "cuda_gpu_kern_gb_sum",
        "CUDA GPU Kernel/Grid/Block Summary",
        (*DUR_COLUMNS, Column("GridXYZ"), Column("BlockXYZ"), Column("Name")),
        rows,
    )
