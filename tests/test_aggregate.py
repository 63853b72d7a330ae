"""nsys's statistics on small hand-computed inputs."""

from __future__ import annotations

import math

import polars as pl

from nsys_doctor.stats.aggregate import grouped_stats, share, stat_cells


def _cells(values: list[int | None]) -> tuple:
    df = pl.DataFrame({"k": ["a"] * len(values), "v": values}, schema={"k": pl.Utf8, "v": pl.Int64})
    r = grouped_stats(df, ["k"], "v").row(0, named=True)
    return r["n"], stat_cells(r["n"], r["total"], r["med"], r["min"], r["max"], r["std"])


def test_even_count_median_is_mean_of_middle_pair():
    n, (avg, med, mn, mx, sd) = _cells([1, 2, 3, 4])
    assert (n, avg, med, mn, mx) == (4, 2.5, 2.5, 1, 4)
    assert sd == round(math.sqrt(5 / 3), 1)  # sample stdev: sum of squares 5, n - 1 = 3


def test_single_value_stdev_is_zero_and_nulls_are_ignored():
    n, (avg, med, mn, mx, sd) = _cells([None, 7, None])
    assert (n, avg, med, mn, mx, sd) == (1, 7.0, 7.0, 7, 7, 0.0)


def test_empty_group_has_no_average_but_zero_stdev():
    n, (avg, med, mn, mx, sd) = _cells([None])
    assert (n, avg, med, mn, mx, sd) == (0, None, None, None, None, 0.0)


def test_public_stdev_value():
    # two calls of 2,971,823 and 333,015,608 ns: stdev = |a - b| / sqrt(2) = 233,376,198.5 (published nsys output)
    _, (_, _, _, _, sd) = _cells([2_971_823, 333_015_608])
    assert sd == 233_376_198.5


def test_share_rounds_like_sqlite():
    assert share(1, 8) == 12.5
    assert share(1, 3) == 33.3
    assert share(0, 0) is None
