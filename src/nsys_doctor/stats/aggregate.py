"""nsys's summary statistics, defined once.

nsys computes them in SQLite: ``count``, ``sum``, ``avg`` (double sum / count), ``median`` (middle value, or the
mean of the two middle values), ``min``, ``max`` and the *sample* standard deviation (n-1; 0.0 for n <= 1). NULL
inputs are ignored. Avg, Med and StdDev are then rounded to 0.1 with SQLite's ``round`` (``round_half_up``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..units import round_half_up

if TYPE_CHECKING:
    import polars as pl

STAT_COLUMNS = ("n", "total", "med", "min", "max", "std")


def grouped_stats(df: pl.DataFrame, keys: list[str], value: str, prefix: str = "") -> pl.DataFrame:
    """Per group of ``keys``: n (non-null count), total, med, min, max, std (sample; None when n < 2)."""
    import polars as pl

    v = pl.col(value)
    return df.group_by(keys, maintain_order=True).agg(
        v.count().alias(prefix + "n"),
        v.sum().alias(prefix + "total"),
        v.median().alias(prefix + "med"),
        v.min().alias(prefix + "min"),
        v.max().alias(prefix + "max"),
        v.std(ddof=1).alias(prefix + "std"),
    )


def grouped_stats_multi(df: pl.DataFrame, keys: list[str], values: list[str]) -> pl.DataFrame:
    """``grouped_stats`` of several value columns in one pass; columns are prefixed ``<value>_``."""
    import polars as pl

    aggs = []
    for value in values:
        v = pl.col(value)
        aggs += [
            v.count().alias(f"{value}_n"),
            v.sum().alias(f"{value}_total"),
            v.median().alias(f"{value}_med"),
            v.min().alias(f"{value}_min"),
            v.max().alias(f"{value}_max"),
            v.std(ddof=1).alias(f"{value}_std"),
        ]
    return df.group_by(keys, maintain_order=True).agg(aggs)


def avg(total: int | None, n: int) -> float | None:
    """SQLite ``avg``: double(sum) / double(count); NULL for an empty group."""
    if not n or total is None:
        return None
    return float(total) / float(n)


def r1(x: float | int | None) -> float | None:
    """SQLite ``round(x, 1)``."""
    return round_half_up(x, 1)


def stdev(std: float | None, n: int) -> float:
    """nsys ``stdev``: 0.0 for fewer than two values."""
    if n < 2 or std is None or math.isnan(std):
        return 0.0
    return std


def share(total: int | float, grand: int | float) -> float | None:
    """Time (%) = round(total * 100.0 / grand, 1), as nsys computes it."""
    if not grand:
        return None
    return r1(float(total) * 100.0 / float(grand))


def stat_cells(
    n: int, total: int | None, med: float | None, mn: int | None, mx: int | None, std: float | None
) -> tuple[float | None, float | None, int | None, int | None, float]:
    """(Avg, Med, Min, Max, StdDev) cells as nsys prints them."""
    return (r1(avg(total, n)), r1(med) if n else None, mn, mx, r1(stdev(std, n)))  # type: ignore[return-value]


def column_sum(s: pl.Series) -> int | float:
    """The sum of a numeric column (0 when empty) as a Python number."""
    total = s.sum()
    return total if isinstance(total, (int, float)) else 0


def summary_rows(stats: pl.DataFrame, keys: list[str], by_count: bool = True) -> list[tuple]:
    """Rows ``Time%, Total, n, Avg, Med, Min, Max, StdDev, *keys`` from ``grouped_stats`` output, in nsys order:
    Total desc, then (``by_count``) n asc, then the keys asc."""
    grand = column_sum(stats["total"]) if stats.height else 0
    order = ["total", *(["n"] if by_count else []), *keys]
    ordered = stats.sort(order, descending=[True, *([False] * (len(order) - 1))])
    return [
        (
            share(r["total"], grand),
            r["total"],
            r["n"],
            *stat_cells(r["n"], r["total"], r["med"], r["min"], r["max"], r["std"]),
            *(r[k] for k in keys),
        )
        for r in ordered.iter_rows(named=True)
    ]
