"""nsys's summary statistics, defined once.

nsys computes them in SQLite: ``count``, ``sum``, ``avg`` (double sum / count), ``median`` (middle value, or the
mean of the two middle values), ``min``, ``max`` and the *sample* standard deviation (n-1; 0.0 for n <= 1). NULL
inputs are ignored. Avg, Med and StdDev are then rounded to 0.1 with SQLite's ``round`` (``round_half_up``).

Two engines compute the per-group statistics: ``grouped_stats`` in polars (large tables) and ``small_grouped_stats``
in pure Python (small tables: a report then needs no polars, whose import costs more than the work). Both give
groups as rows named ``n, total, med, min, max, std`` plus the keys, with the very same values (the Python engine
reproduces polars' sums, medians and its streaming standard deviation bit for bit, or declines); ``sort_groups``
orders either, and ``summary_rows`` turns either into nsys's rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter

from ..units import round_half_up

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    import polars as pl

STAT_COLUMNS = ("n", "total", "med", "min", "max", "std")
EXACT = 2**52
"""Values below this (in magnitude) are exact in a double, and so are the means of two of them."""
_INT64 = 2**63

Groups: TypeAlias = "pl.DataFrame | list[dict[str, Any]]"
"""Per-group statistics from either engine: ``grouped_stats``' frame or ``small_grouped_stats``' list of rows."""


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


def grouped(small: list[tuple] | None, keys: list[str], frame: Callable[[], pl.DataFrame], value: str) -> Groups:
    """Per-group statistics of ``value``: the stdlib engine's on ``small`` (rows ``(*keys, value)`` read with sqlite3
    alone, None when that was not possible) where it can, else ``grouped_stats`` on the polars frame ``frame()``."""
    groups = None if small is None else small_grouped_stats(small, keys)
    return groups if groups is not None else grouped_stats(frame(), keys, value)


def totals_fit(groups: Sequence[dict[str, Any]]) -> bool:
    """Whether the groups' totals add up within 64 bits, as SQLite's integer sum must (beyond it the polars path
    decides)."""
    return sum_fits(sum(g["total"] for g in groups))


def sum_fits(total: int) -> bool:
    """Whether a sum of durations lies within 64 bits, as SQLite's integer sum must."""
    return abs(total) < _INT64


def small_grouped_stats(
    rows: Iterable[tuple[Any, ...]], keys: Sequence[str], first: Sequence[str] = (), count: str = ""
) -> list[dict[str, Any]] | None:
    """``grouped_stats`` in pure Python, for a small table: ``rows`` are ``(*keys, *first, value)`` in table order.

    Per group of ``keys`` (in order of first appearance, as ``group_by(maintain_order=True)``): n (non-NULL
    values), total (0 when none), med, min, max, std (sample; None when n < 2), the values of the ``first`` columns
    in the group's first row (``pl.col(c).first()``) and, when ``count`` names it, the number of rows, NULL values
    included (``pl.len()``). The same numbers as polars gives: exact integer sums and medians of values below 2**52;
    the standard deviation is Welford's update over the values in table order, as nsys's SQLite ``stdev`` computes
    it (polars' ``std`` may differ from it in the last bits: 4870.885875072131 against 4870.885875072133 for 27
    memset sizes of one trace; the reports print it rounded).

    None (the caller's polars path decides) when anything would not be reproduced exactly: a NULL key, a value
    that is not an integer or not below 2**52 in magnitude, or a sum beyond 64 bits."""
    nk = len(keys)
    nf = len(first)
    groups: dict[Any, list[Any]] = {}
    heads: dict[Any, tuple[Any, ...]] = {}
    if not nf:  # the common case, (key, value) pairs: a plain key, or the key columns' tuple cut out in C
        if nk == 1:
            pairs: Iterable[tuple[Any, ...]] = rows
        else:  # two passes over the rows: a list, not an iterator
            table = rows if isinstance(rows, list) else list(rows)
            pairs = zip(map(itemgetter(slice(0, nk)), table), map(itemgetter(-1), table), strict=True)
        for key, value in pairs:
            values = groups.get(key)
            if values is None:
                values = groups[key] = []
            values.append(value)
        if nk == 1:
            if None in groups:
                return None
            groups = {(key,): values for key, values in groups.items()}
        elif any(None in key for key in groups):
            return None
    else:
        for row in rows:
            key = row[:nk]
            values = groups.get(key)
            if values is None:
                if None in key:
                    return None
                values = groups[key] = []
                heads[key] = tuple(row[nk : nk + nf])
            values.append(row[-1])
    return stats_of_groups(groups, keys, first, heads, count)


def stats_of_groups(
    groups: dict[tuple[Any, ...], list[Any]],
    keys: Sequence[str],
    first: Sequence[str] = (),
    heads: dict[tuple[Any, ...], tuple[Any, ...]] | None = None,
    count: str = "",
) -> list[dict[str, Any]] | None:
    """``small_grouped_stats``' rows of groups already made: per key tuple (in the dict's order) its values in
    table order (None for NULL), with the ``first`` columns' values in ``heads``; None when not exact."""
    out: list[dict[str, Any]] = []
    names = (*keys, *first, *STAT_COLUMNS)
    no_head = ()
    for key, values in groups.items():
        if len(values) == 1 and type(one := values[0]) is int and -EXACT < one < EXACT:  # ``value_stats``, inline
            stats: tuple[Any, ...] | None = (1, one, float(one), one, one, None)
        else:
            stats = value_stats([v for v in values if v is not None] if None in values else values)
        if stats is None:
            return None
        group = dict(zip(names, (*key, *(heads or {}).get(key, no_head), *stats), strict=True))
        if count:
            group[count] = len(values)
        out.append(group)
    return out if totals_fit(out) else None


def value_stats(values: list[Any]) -> tuple[int, int, float | None, int | None, int | None, float | None] | None:
    """(n, total, med, min, max, std) of a group's non-NULL values as polars computes them; None when not exact."""
    n = len(values)
    if not n:
        return 0, 0, None, None, None, None
    if n == 1:  # one value (a range or a kernel seen once): its own sum, median, minimum and maximum
        v = values[0]
        return (1, v, float(v), v, v, None) if type(v) is int and -EXACT < v < EXACT else None
    try:  # text or bytes fail here; a float makes the sum a float
        ordered = sorted(values)
        total = sum(values)
    except TypeError:
        return None
    if type(total) is not int or ordered[0] <= -EXACT or ordered[-1] >= EXACT or abs(total) >= _INT64:
        return None
    std = None
    if n > 1:  # nsys's stdev (SQLite extension): Welford's update over the values in order, in doubles
        mean = m2 = i = 0.0  # i counts in doubles: d / i divides by the same double as by an int below 2**53
        for x in map(float, values):
            i += 1.0
            d = x - mean
            mean += d / i
            m2 += d * (x - mean)
        std = math.sqrt(m2 / (n - 1))
    mid = n // 2
    med = float(ordered[mid]) if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return n, total, med, ordered[0], ordered[-1], std


def sort_groups(groups: Groups, order: Sequence[str], descending: Sequence[bool]) -> list[dict[str, Any]]:
    """Groups (of either engine) as named rows sorted by the ``order`` columns (each descending or not)."""
    if isinstance(groups, list):
        out = list(groups)
        for col, desc in reversed(list(zip(order, descending, strict=True))):  # stable: least significant first
            out.sort(key=itemgetter(col), reverse=desc)
        return out
    return list(groups.sort(list(order), descending=list(descending)).iter_rows(named=True))


def groups_total(groups: Groups) -> int | float:
    """The sum of the groups' totals (0 when none): the denominator of Time (%)."""
    if isinstance(groups, list):
        return sum(g["total"] for g in groups)
    return column_sum(groups["total"]) if groups.height else 0


def avg(total: int | None, n: int) -> float | None:
    """SQLite ``avg``: double(sum) / double(count); NULL for an empty group."""
    if not n or total is None:
        return None
    return float(total) / float(n)


def r1(x: float | int | None) -> float | None:
    """SQLite ``round(x, 1)`` (``round_half_up``; a float that is no tie at one decimal takes its shortcut here,
    as most cells of a summary do)."""
    if type(x) is float:
        y = 4.0 * x
        if not (y.is_integer() and y % 2 == 1):  # inf and nan too: round() gives them back, as round_half_up does
            return round(x, 1)
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
    if n == 1 and type(total) is int and -EXACT < total < EXACT:  # one value (most groups of a range summary)
        x = float(total)  # its own average; a whole number of ns is its own round(x, 1); no deviation
        return (x, x if med == x else r1(med), mn, mx, 0.0)
    return (r1(avg(total, n)), r1(med) if n else None, mn, mx, r1(stdev(std, n)))  # type: ignore[return-value]


def column_sum(s: pl.Series) -> int | float:
    """The sum of a numeric column (0 when empty) as a Python number."""
    total = s.sum()
    return total if isinstance(total, (int, float)) else 0


def summary_rows(stats: Groups, keys: list[str], by_count: bool = True) -> list[tuple]:
    """Rows ``Time%, Total, n, Avg, Med, Min, Max, StdDev, *keys`` from either engine's groups, in nsys order:
    Total desc, then (``by_count``) n asc, then the keys asc."""
    grand = groups_total(stats)
    order = ["total", *(["n"] if by_count else []), *keys]
    ordered = sort_groups(stats, order, [True, *([False] * (len(order) - 1))])
    return [
        (
            share(r["total"], grand),
            r["total"],
            r["n"],
            *stat_cells(r["n"], r["total"], r["med"], r["min"], r["max"], r["std"]),
            *(r[k] for k in keys),
        )
        for r in ordered
    ]
