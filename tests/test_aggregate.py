"""nsys's statistics on small hand-computed inputs."""

from __future__ import annotations

import math
import random

import polars as pl
import pytest

from nsys_doctor.report.nsys_format import Units, csv_formatter, header, render_csv
from nsys_doctor.stats.aggregate import grouped_stats, r1, share, stat_cells
from nsys_doctor.stats.core import Column, StatsTable
from nsys_doctor.units import round_half_up


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


def test_r1_is_round_half_up_at_one_decimal() -> None:
    """``r1``'s shortcut for floats that are no tie gives what ``round_half_up`` gives, ties and odd values too."""
    values: list[float | int | None] = [2.25, -2.25, 0.35, 0.05, -0.05, 1234567.25, 2.675, 1.04999, -0.04, 0.0, -0.0]
    values += [1e300, -1e-300, 12.15, 7, -3, None, math.inf, -math.inf]
    values += [k / 8 for k in range(-80, 80)] + [k / 3 for k in range(-30, 30)]
    for v in values:
        got, want = r1(v), round_half_up(v, 1)
        assert repr(got) == repr(want), v
    assert math.isnan(r1(math.nan))  # type: ignore[arg-type]


def test_csv_quotes_text_and_never_numbers() -> None:
    cols = (Column("Total Time", "dur_ns"), Column("Avg", "dur_ns"), Column("Name"), Column("Count"))
    rows = [(1500, 2.5, "void k<int, 2>(float*)", 3), (7, None, 'say "hi"', 0), (0, -0.0, "plain", None)]
    table = StatsTable("t", "T", cols, rows, "")
    assert render_csv(table, Units()) == (
        'Total Time (ns),Avg (ns),Name,Count\n1500,2.5,"void k<int, 2>(float*)",3\n7,,"say ""hi""",0\n0,-0.0,plain,\n'
    )
    # shown in microseconds: the numbers are converted (and still never quoted)
    assert render_csv(table, Units(time="us")).splitlines()[1] == '1.500,0.003,"void k<int, 2>(float*)",3'
    bad = StatsTable("t", "T", cols, [(1, 2.0, "x")], "")
    with pytest.raises(ValueError, match="3 cells in a table of 4 columns"):
        render_csv(bad, Units())


NAN = float("nan")


def test_csv_by_column_is_csv_by_cell() -> None:
    """The CSV is written a column at a time (one ``str``/``repr`` over a column of ints or floats, texts as they
    are when none needs quotes): the same text as each cell's own formatter, for every mix of cell types."""
    columns = {
        "ints": [1, -2, 3_000_000_000_000, 0],
        "floats": [2.5, -0.0, 1e17, float("nan")],
        "mixed": [1, 2.5, None, True],
        "plain text": ["a", "b<int>", "", "x y"],
        "text to quote": ["a,b", 'say "hi"', "two\nlines", "plain"],
        "texts and NULL": ["a", None, "b", "c"],
        # NULL beside numbers (a copy's grid), and values repeated (each one's text is made once)
        "ints and NULL": [5, None, 5, None],
        "floats and NULL": [2.5, None, 1e17, 0.1],
        "repeated to quote": ["a,b", "a,b", None, "a,b"],
        "repeated sizes": [4096, 4096, 4096, 0],
        "repeated NaN": [NAN, NAN, 1.0, None],
        "ints and floats alike": [1, 1.0, 1, 2.5],
    }
    rng = random.Random(7)
    for units in (Units(), Units(time="us"), Units(mem="KiB")):
        for unit in ("", "dur_ns", "mem_B", "ratio_%"):
            for _ in range(20):
                names = rng.choices(list(columns), k=3)
                cols = tuple(Column(f"c{i}", unit) for i in range(3))
                rows = [tuple(columns[n][r] for n in names) for r in rng.sample(range(4), 4)]
                table = StatsTable("t", "T", cols, rows, "")
                cells = [csv_formatter(c, units) for c in cols]
                head = ",".join(header(c, units) for c in cols)
                want = "\n".join([head, *(",".join(f(v) for f, v in zip(cells, row, strict=True)) for row in rows)])
                assert render_csv(table, units) == want + "\n", (names, unit, units)
