"""Tail statistics, defined once for all of nsys-doctor's own analyses (not for nsys parity).

Percentiles use the **nearest-rank** method: pXX is the smallest observed value such that at least XX% of the
values are less than or equal to it, i.e. the value at 1-based rank ceil(XX/100 * n) of the sorted durations.
Every percentile is therefore a duration that really happened; p50 of an even count is the lower middle value.

Derived figures:
- ``p99/p50`` and ``max/p50``: tail ratios (1.0 = no tail);
- tail score = ``max_us * log2(count + 1) * max(1, max/p50)``, the formula inference engines already use;
- tail excess = sum over instances above p99 of (duration - p50), in ns: what fixing the tail would save.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

PERCENTILES = (50, 95, 99)


def percentile(values: Sequence[int | float], pct: int) -> int | float | None:
    """Nearest-rank percentile of a list (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, (len(ordered) * pct + 99) // 100)
    return ordered[rank - 1]


def percentile_expr(col: str, pct: int) -> pl.Expr:
    """Nearest-rank percentile as a polars aggregation (use inside ``group_by(...).agg``)."""
    rank = ((pl.len() * pct + 99) // 100).clip(lower_bound=1)
    return pl.col(col).sort().get(rank - 1)


def tail_table(df: pl.DataFrame, keys: list[str], value: str = "dur") -> pl.DataFrame:
    """Per group: count, total, mean, p50, p95, p99, max, ratios, tail score and tail excess (ns)."""
    if df.is_empty():
        schema = {k: df.schema[k] for k in keys}
        schema.update(
            {
                c: pl.Float64
                for c in (
                    "count",
                    "total",
                    "mean",
                    "p50",
                    "p95",
                    "p99",
                    "max",
                    "p99_p50",
                    "max_p50",
                    "tail_score",
                    "tail_excess",
                )
            }
        )
        return pl.DataFrame(schema=schema)
    v = pl.col(value)
    # sort once: group_by keeps the row order inside each group, so ranks can be read without sorting again
    ordered = df.select(*keys, value).sort(value)
    grouped = ordered.group_by(keys).agg(
        pl.len().alias("count"),
        v.sum().alias("total"),
        v.mean().alias("mean"),
        *(v.get(((pl.len() * p + 99) // 100).clip(lower_bound=1) - 1).alias(f"p{p}") for p in PERCENTILES),
        v.last().alias("max"),
    )
    excess = (
        ordered.join(grouped.select(*keys, "p50", "p99"), on=keys, how="left")
        .filter(pl.col(value) > pl.col("p99"))
        .group_by(keys)
        .agg((pl.col(value) - pl.col("p50")).sum().alias("tail_excess"))
    )
    out = grouped.join(excess, on=keys, how="left").with_columns(pl.col("tail_excess").fill_null(0))
    p50 = pl.when(pl.col("p50") > 0).then(pl.col("p50")).otherwise(None)
    return out.with_columns(
        (pl.col("p99") / p50).alias("p99_p50"),
        (pl.col("max") / p50).alias("max_p50"),
    ).with_columns(
        (
            pl.col("max") / 1000.0 * (pl.col("count") + 1).log(2) * pl.max_horizontal(pl.lit(1.0), pl.col("max_p50"))
        ).alias("tail_score"),
    )


def tail_score(max_ns: float, count: int, p50_ns: float) -> float:
    """The tail score of one group (same formula as ``tail_table``)."""
    ratio = max_ns / p50_ns if p50_ns > 0 else 1.0
    return max_ns / 1000.0 * math.log2(count + 1) * max(1.0, ratio)
