"""Summaries over several activity kinds: ``cuda_api_gpu_sum`` and ``cuda_gpu_sum``."""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter

from .aggregate import Groups, grouped_stats, small_grouped_stats, stats_of_groups, summary_rows
from .api import api_calls, api_name_expr, nsys_api_name, small_api_calls, small_api_named
from .core import Column, ReportContext, StatsTable, duration_columns, report
from .kernels import kernels_with_names, small_kernels, small_kernels_named
from .memops import memory_ops, small_memory_named, small_memory_ops

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import polars as pl

COLUMNS = (*duration_columns("Instances"), Column("Category"), Column("Operation"))


Part = tuple[str, Callable[[], "list[tuple] | None"]]
"""A category and what reads its rows ``(name, dur)`` with sqlite3 alone (None: it cannot)."""


def _small(parts: list[Part]) -> list[dict[str, Any]] | None:
    """The stdlib engine over the parts' rows, in order; None when one part cannot be read so. A name's category
    is its first row's (``pl.col("category").first()``): the first part that holds the name."""
    rows: list[tuple] = []
    category: dict[Any, str] = {}
    for cat, read in parts:
        part = read()
        if part is None:
            return None
        for name in dict.fromkeys(map(itemgetter(0), part)):
            category.setdefault(name, cat)
        rows += part
    groups = small_grouped_stats(rows, ["name"])
    if groups is None:
        return None
    for g in groups:
        g["category"] = category[g["name"]]
    return groups


Named = tuple[str, Callable[[], "list[tuple[str, list[int]]] | None"]]
"""A category and what groups its values per name in SQLite (``core.small_groups``; None: it cannot)."""


def _grouped(parts: list[Named]) -> list[dict[str, Any]] | None:
    """``_small``'s groups from the parts' groups made by SQLite: the same groups in the same order (the parts in
    order, each part's names in order of their first row); None when a part cannot be grouped so or a name is in
    two parts (the rows then decide)."""
    named: dict[str, list[int]] = {}
    category: dict[str, str] = {}
    for cat, read in parts:
        groups = read()
        if groups is None:
            return None
        for name, values in groups:
            if name in named:
                return None
            named[name] = values
            category[name] = cat
    out = stats_of_groups({(name,): values for name, values in named.items()}, ["name"])
    for g in out or ():
        g["category"] = category[g["name"]]
    return out


def _summary(small: list[dict[str, Any]] | None, parts: Callable[[], list[pl.DataFrame]]) -> list[tuple]:
    """Group by display name only (category: the first seen), Time% over everything, Total desc: the groups of the
    stdlib engine (``small``), else polars on the frames ``parts()``."""
    groups: Groups
    if small is None:
        import polars as pl

        df = pl.concat([p.select("name", "category", "dur") for p in parts()], how="vertical")
        groups = grouped_stats(df, ["name"], "dur").join(
            df.group_by("name", maintain_order=True).agg(pl.col("category").first()), on="name", how="left"
        )
        category = dict(groups.select("name", "category").iter_rows())
    else:
        groups = small
        category = {g["name"]: g["category"] for g in small}
    # nsys orders these combined summaries by Total, then by name (not by count as the per-kind summaries)
    return [(*r[:-1], category[r[-1]], r[-1]) for r in summary_rows(groups, ["name"], by_count=False)]


def _grouped_gpu(ctx: ReportContext) -> list[Named]:
    return [("CUDA_KERNEL", lambda: small_kernels_named(ctx)), ("MEMORY_OPER", lambda: small_memory_named(ctx, "dur"))]


def _small_gpu(ctx: ReportContext) -> list[Part]:
    return [("CUDA_KERNEL", lambda: small_kernels(ctx)), ("MEMORY_OPER", lambda: small_memory_ops(ctx, "dur"))]


def _small_api(ctx: ReportContext) -> list[tuple] | None:
    """``small_api_calls`` as rows ``(name as nsys shows it, dur)``: each distinct name made so once."""
    calls = small_api_calls(ctx)
    if calls is None:
        return None
    shown = {name: nsys_api_name(name) for name in dict.fromkeys(map(itemgetter(1), calls))}
    return [(shown[name], dur) for _, name, dur in calls]


def _kernels(ctx: ReportContext) -> pl.DataFrame:
    import polars as pl

    return kernels_with_names(ctx, []).with_columns(pl.lit("CUDA_KERNEL").alias("category"))


def _memops(ctx: ReportContext) -> pl.DataFrame:
    import polars as pl

    return memory_ops(ctx.trace, ctx.flt).with_columns(pl.lit("MEMORY_OPER").alias("category"))


@report("cuda_api_gpu_sum", "CUDA Summary (API/Kernels/MemOps)", flags=("base", "mangled"))
def cuda_api_gpu_sum(ctx: ReportContext) -> StatsTable:
    """API calls, kernels and memory operations in one table, grouped by name."""

    def frames() -> list[pl.DataFrame]:
        import polars as pl

        api = api_calls(ctx).with_columns(api_name_expr("api").alias("name"), pl.lit("CUDA_API").alias("category"))
        return [api, _kernels(ctx), _memops(ctx)]

    named = _grouped([("CUDA_API", lambda: small_api_named(ctx)), *_grouped_gpu(ctx)])
    rows = _summary(named or _small([("CUDA_API", lambda: _small_api(ctx)), *_small_gpu(ctx)]), frames)
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
    rows = _summary(_grouped(_grouped_gpu(ctx)) or _small(_small_gpu(ctx)), lambda: [_kernels(ctx), _memops(ctx)])
    return StatsTable(
        "cuda_gpu_sum",
        "GPU Summary (Kernels/MemOps)",
        COLUMNS,
        rows,
        "" if rows else "does not contain CUDA kernels or memory operations",
    )
