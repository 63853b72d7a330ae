"""The fast paths of the report's hot spots give exactly what the straightforward definitions give: tail tables,
percentiles, busy intervals, API call filters, kernels joined to their launches and the (pid, device) units of a
trace. No timing here
(benchmarks/bench_report.py measures it)."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nsys_doctor.analysis.diagnosis import _slow_instances
from nsys_doctor.analysis.distribution import (
    PERCENTILES,
    decode_texts,
    percentile,
    percentiles_in_place,
    ratio,
    tail_table,
    tail_tables,
    text_codes,
)
from nsys_doctor.analysis.host import (
    _busy_intervals_grouped,
    _merged,
    busy_intervals,
    busy_intervals_of,
    clipped_total,
    gpu_idle,
    overlapping,
)
from nsys_doctor.analysis.phases import LAUNCH_API, SYNC_API, _lookup_launches, calls, launched_kernels
from nsys_doctor.analysis.structure.sequence import first_positions, launch_order, sorted_unique, stable_order
from nsys_doctor.trace import Trace
from nsys_doctor.trace.ranks import MASK24, gpu_units
from nsys_doctor.trace.schema import GRID
from nsys_doctor.trace.tables import distinct_values

# ---------------------------------------------------------------------------------------------------- tail table


def _tail_table_reference(df: pl.DataFrame, keys: list[str], value: str = "dur") -> pl.DataFrame:
    """The definition tail_table had before it was made fast: sort, group, join every row back for the excess."""
    v = pl.col(value)
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


def _same_frame(a: pl.DataFrame, b: pl.DataFrame, keys: list[str]) -> bool:
    a, b = a.sort(keys, nulls_last=True), b.sort(keys, nulls_last=True)
    return a.columns == b.columns and a.schema == b.schema and a.equals(b)


@pytest.mark.parametrize("seed", range(40))
def test_tail_table_matches_its_definition(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.choice([1, 2, 3, 7, 40, 400, 3000])
    dtype = rng.choice([pl.Int64, pl.Int32, pl.Float64])
    null_rate = rng.choice([0.0, 0.0, 0.1])
    df = pl.DataFrame(
        {
            "name": [rng.choice(["a", "b", "c", "d", None if null_rate else "e"]) for _ in range(n)],
            "grid": [rng.choice([1, 2, None if null_rate else 3]) for _ in range(n)],
            "dur": [
                None if rng.random() < null_rate else rng.randint(0, rng.choice([5, 1000, 10**9])) for _ in range(n)
            ],
        },
        schema={"name": pl.Utf8, "grid": pl.Int64, "dur": dtype},
    )
    key_sets = [["name"], ["name", "grid"], ["grid"]]
    for keys in key_sets:
        assert _same_frame(tail_table(df, keys), _tail_table_reference(df, keys), keys), keys
    # several tables from one sort: each is its own definition
    for keys, table in zip(key_sets, tail_tables(df, key_sets), strict=True):
        assert _same_frame(table, _tail_table_reference(df, keys), keys), keys


@pytest.mark.parametrize("seed", range(8))
def test_tails_of_one_key_by_ranges_or_packed_are_those_of_the_frame_sort(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one key: the values and the key codes are sorted as one 63-bit column (ties of a group in any order); the
    # tables are those of the frame sorted by value, and of the definition
    rng = random.Random(seed)
    n = rng.choice([1, 50, 5000, 60_000])
    names = [f"k{i}" for i in range(rng.choice([1, 3, 300]))]
    df = pl.DataFrame(
        {
            "name": [rng.choice(names) for _ in range(n)],
            "dur": [rng.choice([0, 7, 7, 1000, rng.randint(0, 2**40)]) for _ in range(n)],
        }
    )
    from nsys_doctor.analysis import distribution

    ranged = tail_table(df, ["name"])  # each group a range of one sort by key and value (numpy's)
    codes, _ = text_codes(df["name"])
    assert distribution._ranged_tails(codes, df["dur"]) is not None  # the ranged path was taken
    assert _same_frame(ranged, _tail_table_reference(df, ["name"]), ["name"])
    monkeypatch.setattr(distribution, "_ranged_tails", lambda key, values: None)
    packed = tail_table(df, ["name"])  # sorted by value as one packed column, grouped by polars
    assert distribution._sorted_by_value(codes, df["dur"]) is not None  # the packed path was taken
    monkeypatch.setattr(distribution, "_sorted_by_value", lambda key, values: None)
    assert _same_frame(packed, tail_table(df, ["name"]), ["name"])
    assert _same_frame(packed, _tail_table_reference(df, ["name"]), ["name"])
    assert _same_frame(ranged, packed, ["name"])


@pytest.mark.parametrize("chunk", [1, 2, 7, 1 << 20])
def test_tails_by_ranges_read_their_groups_a_chunk_at_a_time(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the sorted keys change is found a chunk of rows at a time: a group that spans chunks, or starts at
    a chunk's first row, is one group; the tables are the definition's at any chunk size."""
    from nsys_doctor.analysis import distribution

    monkeypatch.setattr(distribution, "ROW_CHUNK", chunk)
    rng = random.Random(chunk)
    n = 500
    df = pl.DataFrame(
        {
            "name": [rng.choice(["a", "b", "c", "d", "e"]) for _ in range(n)],
            "gridX": [rng.choice([1, 4, 9]) for _ in range(n)],
            "dur": [rng.choice([0, 3, 3, rng.randint(0, 10**6)]) for _ in range(n)],
        }
    )
    codes, _ = text_codes(df["name"])
    assert distribution._ranged_tails(codes, df["dur"]) is not None  # the ranged path is the one tested
    for keys in (["name"], ["name", "gridX"]):
        assert _same_frame(tail_table(df, keys), _tail_table_reference(df, keys), keys), keys
    # the running sums of the masked values at chosen positions, by hand: values 0, 1, 0, 1, 2, 0 (masked by 3)
    packed = np.array([0, 1, 4, 5, 6, 12], dtype=np.int64)
    at = np.array([6, 0, 2, 2, 5, 1, 4])
    assert distribution._prefix_sums_at(packed, 3, at).tolist() == [4, 0, 1, 1, 4, 0, 2]
    assert distribution._prefix_sums_at(packed[:0], 3, np.array([0, 0])).tolist() == [0, 0]
    changes = distribution._key_changes(np.array([0, 1, 4, 5, 6, 12], dtype=np.int64), 2)
    assert changes.tolist() == [0, 2, 5]  # keys 0, 0, 1, 1, 1, 3
    assert distribution._key_changes(np.zeros(0, dtype=np.int64), 2).tolist() == []


def test_values_that_cannot_be_packed_with_their_key_sort_the_frame() -> None:
    from nsys_doctor.analysis.distribution import _sorted_by_value

    key = pl.Series("k", [3, 1, 2], dtype=pl.UInt32)
    ok = _sorted_by_value(key, pl.Series("v", [5, 5, 1]))
    assert ok is not None and ok.rows() == [(2, 1), (1, 5), (3, 5)] and ok.schema == {"k": pl.UInt32, "v": pl.Int64}
    assert _sorted_by_value(key, pl.Series("v", [5, -1, 1])) is None  # a negative value
    assert _sorted_by_value(key, pl.Series("v", [5, None, 1])) is None  # a null value
    assert _sorted_by_value(pl.Series("k", [3, None, 2]), pl.Series("v", [5, 5, 1])) is None  # a null key
    assert _sorted_by_value(key, pl.Series("v", [5.0, 1.0, 2.0])) is None  # not integers
    assert _sorted_by_value(key, pl.Series("v", [2**61, 1, 2])) is None  # 61 bits and a 2-bit key: 63 bits
    assert _sorted_by_value(key, pl.Series("v", [2**60, 1, 2])) is not None
    # keys of 63 and 64 bits: no room for the values, whatever they are
    assert _sorted_by_value(pl.Series("k", [2**63], dtype=pl.UInt64), pl.Series("v", [1])) is None
    assert _sorted_by_value(pl.Series("k", [2**62], dtype=pl.Int64), pl.Series("v", [0])) is None
    wide = pl.DataFrame({"id": pl.Series([2**63, 5], dtype=pl.UInt64), "dur": [0, 7]})
    assert tail_table(wide, ["id"]).sort("id")["count"].to_list() == [1, 1]  # the frame is sorted instead


@pytest.mark.parametrize("seed", range(24))
def test_tail_tables_by_launch_grid_match_the_definition_packed_or_not(seed: int) -> None:
    # a grid within 21 bits a dimension is grouped as one packed key; one beyond it, or unknown, as three columns
    rng = random.Random(seed)
    n = rng.choice([1, 5, 300, 2000])
    top = rng.choice([3, 2**21 - 1, 2**21, 2**31 - 1])
    unknown = rng.random() < 0.25
    dtype = rng.choice([pl.Int64, pl.Int32])
    df = pl.DataFrame(
        {
            "name": [rng.choice(["k1", "k2", "k3"]) for _ in range(n)],
            "short": [rng.choice(["s1", "s2"]) for _ in range(n)],
            **{
                g: [None if unknown and rng.random() < 0.2 else rng.choice([0, 1, top]) for _ in range(n)] for g in GRID
            },
            "dur": [rng.randint(0, 10**6) for _ in range(n)],
        },
        schema={"name": pl.String, "short": pl.String, **dict.fromkeys(GRID, dtype), "dur": pl.Int64},
    )
    key_sets = [["name"], ["name", *GRID], ["short"], [*GRID]]
    for keys, table in zip(key_sets, tail_tables(df, key_sets), strict=True):
        assert _same_frame(table, _tail_table_reference(df, keys), keys), keys


@pytest.mark.parametrize("seed", range(12))
def test_tails_of_coded_names_are_those_of_the_names(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's decode-step kernels carry their names as codes (``coded``): the tail tables, the slow-step
    shares (compared a chunk of instances at a time where no name is null) and the dynamic shapes are the same as
    from the names themselves."""
    from nsys_doctor.analysis import diagnosis, distribution
    from nsys_doctor.analysis.diagnosis import _dynamic_shapes, _slow_step_share

    monkeypatch.setattr(distribution, "ROW_CHUNK", 7)
    chunked = []
    monkeypatch.setattr(diagnosis, "_slow_instances", lambda *a: chunked.append(1) or _slow_instances(*a))
    rng = random.Random(seed)
    n = rng.choice([1, 6, 300, 2000])
    pl.Series([f"other{seed}", "k3"]).cast(pl.Categorical)  # codes need not start at 0 or follow the names
    df = pl.DataFrame(
        {
            "name": [rng.choice(["k1", "k2", "k3", None] if seed % 2 else ["k1", "k2", "k3"]) for _ in range(n)],
            "short": [rng.choice(["s1", "s2"]) for _ in range(n)],
            **{g: [rng.choice([1, 2, 2**22]) for _ in range(n)] for g in GRID},
            "dur": [rng.randint(0, 10**6 if rng.random() < 0.1 else 1000) for _ in range(n)],  # some slow
            "t": sorted(rng.randint(0, 10**7) for _ in range(n)),
        },
        schema={"name": pl.String, "short": pl.String, **dict.fromkeys(GRID, pl.Int64), "dur": pl.Int64, "t": pl.Int64},
    )
    df = df.with_columns((pl.col("t") // 1_000_000).alias("idx"))
    (name_codes, names), (short_codes, shorts) = text_codes(df["name"]), text_codes(df["short"])
    coded = df.with_columns(name_codes, short_codes)
    key_sets = [["name"], ["name", *GRID], ["short"]]
    plain_tables = tail_tables(df, key_sets)
    coded_tables = tail_tables(coded, key_sets, coded={"name": names, "short": shorts})
    for keys, a, b in zip(key_sets, plain_tables, coded_tables, strict=True):
        assert _same_frame(a, b, keys), keys
    tails = plain_tables[0]
    a = _slow_step_share(tails, df, 10)
    assert not chunked
    b = _slow_step_share(tails, coded, 10, names)
    assert _same_frame(a, b, ["name"])
    assert len(chunked) == (0 if seed % 2 and df["name"].null_count() else 1)
    assert n < 300 or a["slow_step_share"].max() > 0  # type: ignore[operator]
    # exactly twice the p50 is not slower; a name without a p50 has no slow instance
    kt = pl.DataFrame({"name": [0, 0, 0, 1, 0], "idx": [0, 1, 2, 0, 3], "dur": [10, 20, 21, 99, 40]})
    kt = kt.with_columns(pl.col("name").cast(pl.UInt32))
    got = _slow_instances(kt, pl.Series([0, 2], dtype=pl.UInt32), pl.Series([10, None], dtype=pl.Int64))
    assert got.rows() == [(0, 2), (0, 3)] and got.schema == {"name": pl.UInt32, "idx": pl.Int64}
    steps = pl.DataFrame({"idx": list(range(10)), "start": [i * 1_000_000 for i in range(10)]}).with_columns(
        (pl.col("start") + 999_999).alias("end")
    )
    labels = pl.DataFrame({"name": ["k1", "k2", "k3"], "label": ["K1", "K2", "K3"]})
    inside = ["name", *GRID, "t", "idx"]
    a = _dynamic_shapes(df, steps, labels, df.select(inside).drop_nulls("idx"))
    b = _dynamic_shapes(df, steps, labels, coded.select(inside).drop_nulls("idx"), names)
    assert a.equals(b)
    assert n < 300 or not a.is_empty()  # random grids per step: the kernels' shapes change


@pytest.mark.parametrize("seed", range(12))
def test_tails_of_a_packed_grid_are_those_of_the_grid(seed: int) -> None:
    """The report's decode-step kernels carry their grid as one packed key (``pack_grid``): the tail tables (empty
    ones too) and the dynamic shapes are the same as from the three dimensions."""
    from nsys_doctor.analysis.diagnosis import _dynamic_shapes
    from nsys_doctor.analysis.distribution import PACKED_GRID, pack_grid, packable_grid

    rng = random.Random(seed)
    n = rng.choice([0, 1, 6, 300, 2000])
    top = rng.choice([2, 2**21 - 1])
    df = pl.DataFrame(
        {
            "name": [rng.choice(["k1", "k2", "k3"]) for _ in range(n)],
            "short": [rng.choice(["s1", "s2"]) for _ in range(n)],
            **{g: [rng.choice([0, 1, top]) for _ in range(n)] for g in GRID},
            "dur": [rng.randint(0, 10**6) for _ in range(n)],
            "idx": sorted(rng.randint(0, 9) for _ in range(n)),
        },
        schema={
            "name": pl.String,
            "short": pl.String,
            **dict.fromkeys(GRID, pl.Int64),
            "dur": pl.Int64,
            "idx": pl.Int64,
        },
    )
    assert packable_grid(df) or n == 0
    (name_codes, names), (short_codes, shorts) = text_codes(df["name"]), text_codes(df["short"])
    coded = df.with_columns(name_codes, short_codes)
    packed = coded.select("name", "short", pack_grid(), "dur", "idx")
    assert PACKED_GRID in packed.columns and not set(GRID) & set(packed.columns)
    key_sets = [["name"], ["name", *GRID], ["short"]]
    texts = {"name": names, "short": shorts}
    grid_types = dict.fromkeys(GRID, pl.Int64())
    for keys, a, b in zip(
        key_sets,
        tail_tables(coded, key_sets, coded=texts),
        tail_tables(packed, key_sets, coded=texts, grid_types=grid_types),
        strict=True,
    ):
        assert _same_frame(a, b, keys), keys
    steps = pl.DataFrame({"idx": list(range(10)), "start": [i * 1_000_000 for i in range(10)]}).with_columns(
        (pl.col("start") + 999_999).alias("end")
    )
    labels = pl.DataFrame({"name": ["k1", "k2", "k3"], "label": ["K1", "K2", "K3"]})
    lk = df.with_columns(pl.lit(0, pl.Int64).alias("start"), pl.lit(None, pl.Int64).alias("l_start"))
    a = _dynamic_shapes(lk, steps, labels, coded.select("name", *GRID, "idx"), names)
    b = _dynamic_shapes(lk, steps, labels, packed.select("name", PACKED_GRID, "idx"), names)
    assert a.equals(b)
    assert n < 300 or not a.is_empty()  # random grids per step: the kernels' shapes change


@pytest.mark.parametrize(
    "texts",
    [
        ["b", "a", None, "b", "c" * 40, "a", None],
        [None, None],
        [],
        ["only"],
    ],
    ids=["mixed", "all-null", "empty", "one"],
)
def test_text_codes_round_trip_and_group_like_the_texts(texts: list[str | None]) -> None:
    pl.Series(["unrelated", "names", "first"]).cast(pl.Categorical)  # codes need not start at 0 or be dense
    col = pl.Series("name", texts, dtype=pl.String)
    codes, by_code = text_codes(col)
    assert codes.dtype == pl.UInt32 and codes.name == "name" and codes.len() == col.len()
    assert decode_texts(codes, by_code).to_list() == texts
    assert codes.is_null().to_list() == col.is_null().to_list()
    # equal texts, equal codes; different texts, different codes
    pairs = {(t, c) for t, c in zip(texts, codes.to_list(), strict=True) if t is not None}
    assert len(pairs) == len({t for t, _ in pairs}) == len({c for _, c in pairs})


def test_ratio_is_python_division_on_any_chunk_layout() -> None:
    values = [24_845_760, 921_568, None, 0, 7, 2**53 + 1]
    one = pl.Series("total", values, dtype=pl.Int64)
    chunked = pl.concat([one.slice(i, 1) for i in range(one.len())], rechunk=False)
    assert chunked.n_chunks() == one.len()
    expected = [None if v is None else v / 2_122_950_580 for v in values]
    assert ratio(one, 2_122_950_580, "share").to_list() == expected
    assert ratio(chunked, 2_122_950_580, "share").to_list() == expected
    # the correctly rounded quotient: polars 1.36 and 2.1 gave 0.0004340977169614565 for it on one chunk and this
    # value on single-row chunks, which made the report's bytes follow the thread count
    assert expected[1] == 0.00043409771696145655


def test_tail_table_of_an_empty_frame_keeps_its_schema() -> None:
    df = pl.DataFrame(schema={"name": pl.Utf8, "dur": pl.Int64})
    out = tail_table(df, ["name"])
    assert out.is_empty()
    assert out.columns[:1] == ["name"]
    tails = ["count", "total", "mean", "p50", "p95", "p99", "max", "p99_p50", "max_p50", "tail_score", "tail_excess"]
    assert out.columns == ["name", *tails]
    by_name, by_both = tail_tables(df.with_columns(pl.lit(1).alias("grid")), [["name"], ["name", "grid"]])
    assert by_name.columns == out.columns and by_both.columns == ["name", "grid", *tails]
    # names given as codes: the empty table's names are texts all the same
    codes, texts = text_codes(df["name"])
    coded = tail_tables(df.with_columns(codes), [["name"]], coded={"name": texts})[0]
    assert coded.schema == out.schema


# ---------------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize("seed", range(10))
def test_resolve_names_is_the_join_on_the_distinct_ids(seed: int) -> None:
    """A StringIds column's texts gathered by position equal the left join of the distinct ids and their texts
    (the definition): an id with no string reads "", a null id null; the other columns are the frame's own."""
    from types import SimpleNamespace

    from nsys_doctor.trace.tables import resolve_names

    rng = random.Random(seed)
    strings = {i: f"kernel_{i}_" + "x" * rng.randint(0, 40) for i in range(0, 30, 2)}
    n = rng.choice([0, 1, 5, 1000])
    df = pl.DataFrame(
        {"start": list(range(n)), "nameId": [rng.choice([*range(35), None]) for _ in range(n)]},
        schema={"start": pl.Int64, "nameId": pl.Int64},
    )
    ids = df["nameId"].unique().drop_nulls().to_list()
    small = pl.DataFrame(
        {"nameId": ids, "name": [strings.get(i, "") for i in ids]}, schema={"nameId": pl.Int64, "name": pl.Utf8}
    )
    want = df.join(small, on="nameId", how="left", maintain_order="left")
    got = resolve_names(df, SimpleNamespace(strings=strings), "nameId", "name")  # type: ignore[arg-type]
    assert got.schema == want.schema and got.equals(want)
    assert got["start"].to_list() == df["start"].to_list()


# ---------------------------------------------------------------------------------------------------- percentile


@pytest.mark.parametrize("seed", range(20))
def test_percentile_of_a_series_is_the_percentile_of_its_list(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.choice([0, 1, 2, 3, 10, 99, 100, 101, 5000])
    for dtype, make in ((pl.Int64, lambda: rng.randint(-5, 10**6)), (pl.Float64, lambda: rng.random() * 100)):
        values = [make() for _ in range(n)]
        s = pl.Series(values, dtype=dtype)
        ordered = s.sort()  # flagged sorted: not sorted again
        assert n < 2 or ordered.flags["SORTED_ASC"]
        for pct in (0, 1, 50, 95, 99, 100):
            want, got = percentile(values, pct), percentile(s, pct)
            assert got == want and type(got) is type(want), (n, pct)
            assert percentile(ordered, pct) == want and percentile(s.reverse(), pct) == want, (n, pct)


@pytest.mark.parametrize("seed", range(20))
def test_percentiles_in_place_are_the_percentiles_of_the_list(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.choice([0, 1, 2, 3, 10, 99, 100, 101, 5000])
    pcts = (0, 1, 50, 95, 99, 100)
    for dtype, make in ((np.int64, lambda: rng.randint(-5, 10**6)), (np.float64, lambda: rng.random() * 100)):
        values = [make() for _ in range(n)]
        got = percentiles_in_place(np.array(values, dtype=dtype), pcts)
        # the definition: the value at rank ceil(n * pct / 100) (at least 1) of the sorted list
        by_hand = [sorted(values)[max(1, -(-n * p // 100)) - 1] if n else None for p in pcts]
        assert got == by_hand and got == [percentile(values, p) for p in pcts], (n, dtype)
        assert all(type(g) is type(w) for g, w in zip(got, by_hand, strict=True))
    assert percentiles_in_place(np.array([7, 1, 4]), (50, 50)) == [4, 4]


def test_percentile_of_a_series_with_nulls_behaves_as_its_list() -> None:
    with pytest.raises(TypeError):
        percentile([3, None, 1], 50)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        percentile(pl.Series([3, None, 1]), 50)


# ---------------------------------------------------------------------------------------------------- busy time


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_clipped_total_is_the_sum_of_the_clipped_intervals(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from nsys_doctor.analysis import distribution

    monkeypatch.setattr(distribution, "ROW_CHUNK", chunk)
    rng = random.Random(chunk)
    rows = [(s, s + rng.randint(0, 50)) for s in (rng.randint(0, 500) for _ in range(200))]
    df = pl.DataFrame(rows, schema={"start": pl.Int64, "end": pl.Int64}, orient="row")
    for w0, w1 in ((0, 600), (100, 300), (250, 250), (700, 900)):
        want = sum(max(0, min(e, w1) - max(s, w0)) for s, e in rows)
        assert clipped_total(df, w0, w1) == want, (w0, w1)
    # by hand: [0, 10] and [5, 30] in [8, 20] hold 2 + 12; a null span counts nothing
    by_hand = pl.DataFrame({"start": [0, 5, None], "end": [10, 30, 9]}, schema={"start": pl.Int64, "end": pl.Int64})
    assert clipped_total(by_hand, 8, 20) == 14
    assert clipped_total(by_hand.clear(), 8, 20) == 0


def _union_reference(rows: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    for dev in sorted({d for d, _, _ in rows}):
        cur: list[int] | None = None
        for _, s, e in sorted((r for r in rows if r[0] == dev), key=lambda r: r[1]):
            if cur is not None and s <= cur[1]:
                cur[1] = max(cur[1], e)
                continue
            if cur is not None:
                out.append((dev, cur[0], cur[1]))
            cur = [s, e]
        if cur is not None:
            out.append((dev, cur[0], cur[1]))
    return out


@pytest.mark.parametrize("seed", range(30))
def test_busy_intervals_is_the_union_per_device(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.choice([1, 2, 5, 50, 2000])
    rows = []
    for _ in range(n):
        s = rng.randint(0, rng.choice([20, 1000, 10**6]))
        rows.append((rng.choice([0, 0, 1, 7]), s, s + rng.choice([0, 1, rng.randint(0, 300)])))
    ops = pl.DataFrame(rows, schema={"deviceId": pl.Int64, "start": pl.Int64, "end": pl.Int64}, orient="row")
    ops = ops.with_columns(pl.lit("kernel").alias("kind"))
    got = busy_intervals(ops)
    assert got.equals(_busy_intervals_grouped(ops.select("deviceId", "start", "end")))
    assert got.schema == {"deviceId": pl.Int64, "start": pl.Int64, "end": pl.Int64}
    assert got.rows() == _union_reference(rows)


def test_busy_intervals_with_nulls_or_reversed_rows_keeps_the_grouped_definition() -> None:
    ops = pl.DataFrame(
        {"deviceId": [0, 0, None, 0], "start": [5, 1, 3, 10], "end": [4, 6, 9, None]},
        schema={"deviceId": pl.Int64, "start": pl.Int64, "end": pl.Int64},
    )
    assert busy_intervals(ops).equals(_busy_intervals_grouped(ops))
    assert busy_intervals(ops.head(0)).is_empty()


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("chunk", [1, 4, 1 << 20])
def test_busy_intervals_of_parts_is_the_union_of_them_all(
    seed: int, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The union of several frames (a kernel frame in time order or not, copies and memsets among its kernels, one
    device or several) equals the union of their concatenation, and the hand-made reference, whatever the chunks
    the kernels are read by."""
    from nsys_doctor.analysis import distribution

    monkeypatch.setattr(distribution, "ROW_CHUNK", chunk)
    rng = random.Random(seed)
    schema = {"deviceId": pl.Int64, "start": pl.Int64, "end": pl.Int64}
    parts = []
    all_rows: list[tuple[int, int, int]] = []
    for size in (rng.choice([1, 50, 3000]), rng.choice([0, 1, 7]), rng.choice([0, 3]), rng.choice([0, 2])):
        rows = []
        for _ in range(size):
            s = rng.randint(0, rng.choice([50, 10**5]))
            rows.append((rng.choice([0, 0, 0, 1] if seed % 3 else [2]), s, s + rng.choice([0, 1, rng.randint(0, 500)])))
        if seed % 2 and not parts:
            rows.sort(key=lambda r: r[1])  # the kernels in time order, as a table nearly always has them
        parts.append(pl.DataFrame(rows, schema=schema, orient="row").select("start", "end", "deviceId"))
        all_rows += rows
    got = busy_intervals_of(parts)
    assert got.equals(busy_intervals(pl.concat(parts)))
    assert got.schema == schema
    assert got.rows() == _union_reference(all_rows)


def test_busy_intervals_of_parts_with_nulls_or_nothing() -> None:
    schema = {"deviceId": pl.Int64, "start": pl.Int64, "end": pl.Int64}
    a = pl.DataFrame({"deviceId": [0, 0], "start": [1, 20], "end": [10, 30]}, schema=schema)
    b = pl.DataFrame({"deviceId": [None, 0], "start": [5, 9], "end": [7, 21]}, schema=schema)
    assert busy_intervals_of([a, b]).equals(busy_intervals(pl.concat([a, b])))
    assert busy_intervals_of([a, b]).rows() != busy_intervals_of([a]).rows()
    assert busy_intervals_of([a.head(0), b.head(0)]).equals(busy_intervals(a.head(0)))
    assert busy_intervals_of([a, a.head(0)]).rows() == [(0, 1, 10), (0, 20, 30)]


def _idle_reference(rows: list[tuple[int, int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """The stretches of [lo, hi] where no interval of any device runs, from the union of all devices."""
    out = []
    at = lo
    for _, s, e in _union_reference([(0, s, e) for _, s, e in rows]):
        if s > at and at < hi:
            out.append((at, min(s, hi)))
        at = max(at, e)
    if at < hi:
        out.append((at, hi))
    return [(a, b) for a, b in out if b > a]


@pytest.mark.parametrize("seed", range(30))
def test_overlapping_and_gpu_idle_give_the_filter_and_the_union_with_or_without_the_merged_path(seed: int) -> None:
    rng = random.Random(seed)
    devices = rng.choice([[0], [0], [0, 1], [3]])
    rows = []
    for _ in range(rng.choice([1, 2, 7, 300])):
        s = rng.randint(0, 5000)
        rows.append((rng.choice(devices), s, s + rng.choice([0, 1, rng.randint(0, 200)])))
    ops = pl.DataFrame(rows, schema={"deviceId": pl.Int64, "start": pl.Int64, "end": pl.Int64}, orient="row")
    busy = busy_intervals(ops)
    # one device's busy intervals are their own union (the slice and no second merge); two devices' are not
    assert _merged(busy) is (len({d for d, _, _ in rows}) == 1)
    for _ in range(20):
        lo = rng.randint(-100, 5300)
        hi = lo + rng.choice([0, 1, rng.randint(0, 6000)])
        want = busy.filter((pl.col("end") >= lo) & (pl.col("start") <= hi))
        assert overlapping(busy, lo, hi).equals(want), (lo, hi)
        if hi > lo:
            got = gpu_idle(overlapping(busy, lo, hi), lo, hi).frame()
            assert got.select("start", "end").rows() == _idle_reference(rows, lo, hi), (lo, hi)
            assert got["gid"].to_list() == list(range(got.height))


# ---------------------------------------------------------------------------------------------------- API calls


@pytest.mark.parametrize("dtype", [pl.String, pl.Categorical])
def test_calls_filters_by_the_distinct_names_and_reuses_them(dtype: pl.DataType) -> None:
    api = pl.DataFrame(
        {
            "name": ["cudaLaunchKernel_v7000", "cudaMalloc", None, "cuLaunchKernel", "cudaStreamSynchronize"] * 3,
            "start": list(range(15)),
        },
        schema={"name": dtype, "start": pl.Int64},  # the trace's frames hold the names as categoricals
    )
    want = api.filter(
        pl.col("name").cast(pl.String).str.contains(r"^(cudaLaunch|cuLaunch|cudaGraphLaunch|cuGraphLaunch)")
    )
    assert want.height == 6 and calls(api, LAUNCH_API).equals(want)
    assert sorted(distinct_values(api, "name"), key=str) == sorted(set(api["name"].to_list()), key=str)
    assert distinct_values(api, "name") is distinct_values(api, "name")  # remembered for this frame
    ids = distinct_values(api, "name")
    if dtype == pl.Categorical:  # each name with its categorical id (the filter compares those)
        assert {n: ids[n] for n in ids if n is not None} == {
            n: i for n, i in zip(api["name"].to_list(), api["name"].to_physical().to_list(), strict=True) if n
        }
    else:
        assert set(ids.values()) == {None}
    none = calls(api.filter(pl.col("name") != "cudaStreamSynchronize"), SYNC_API)
    assert none.is_empty() and none.schema == api.schema
    other = api.with_columns(pl.lit("cudaDeviceSynchronize").alias("name"))
    assert calls(other, SYNC_API).height == other.height  # a new frame is not answered from the old one


# ---------------------------------------------------------------------------------------------------- units


def _units_db(path: Path, rows: list[tuple[object, object]]) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE StringIds (id INTEGER PRIMARY KEY, value TEXT)")
    con.execute("CREATE TABLE TARGET_INFO_SESSION_START_TIME (utcEpochNs INTEGER)")
    # no declared types: a REAL stays a REAL, a text stays a text
    con.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start, end, globalPid, deviceId)")
    con.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?, ?, ?, ?)",
        [(i, i + 1, g, d) for i, (g, d) in enumerate(rows)],
    )
    con.commit()
    con.close()


def _units_exact(path: Path) -> list[tuple[int, int]]:
    con = sqlite3.connect(path)
    rows = con.execute(
        f"SELECT DISTINCT (globalPid >> 24) & {MASK24}, deviceId FROM CUPTI_ACTIVITY_KIND_KERNEL "
        "WHERE typeof(globalPid) = 'integer' AND typeof(deviceId) = 'integer'"
    ).fetchall()
    con.close()
    return sorted({(int(p), int(d)) for p, d in rows}, key=lambda u: (u[1], u[0]))


P1, P2 = 1130 << 24, 1131 << 24


@pytest.mark.parametrize(
    "rows",
    [
        [(P1, 0)] * 50 + [(P2, 1)] * 50,
        [(float(P1), 0)] * 10 + [(P1, 0)] * 10 + [(P2, 0)],  # a REAL equal to an integer comes first
        [(P1, 0)] * 10 + [(float(P1), 0)] * 10,
        [(P1, 0), ("x", 0), (P2, 1.0), (None, 2), (P2, 2)],
        [(-(2**40), 3), (P1, 0)],
    ],
)
def test_gpu_units_are_the_integer_pairs(tmp_path: Path, rows: list[tuple[object, object]], monkeypatch) -> None:
    path = tmp_path / "units.sqlite"
    _units_db(path, rows)
    monkeypatch.setattr("nsys_doctor.trace.open.PARALLEL_MIN_ROWS", 5)  # several rowid ranges even here
    with Trace.open(path) as trace:
        assert gpu_units(trace) == _units_exact(path)


def test_tail_score_is_the_tail_table_s() -> None:
    """The scalar tail score (the tail-outlier rule's) and ``tail_table``'s column are one formula."""
    import polars as pl

    from nsys_doctor.analysis.distribution import tail_score, tail_table

    durs = [100] * 40 + [5_000, 250_000]
    t = tail_table(pl.DataFrame({"name": ["k"] * len(durs), "dur": durs}), ["name"])
    row = t.row(0, named=True)
    assert row["count"] == 42 and row["p50"] == 100 and row["max"] == 250_000
    assert tail_score(250_000, 42, 100) == pytest.approx(row["tail_score"], rel=1e-12)
    # 250 us * log2(43) * 2500 by hand
    assert tail_score(250_000, 42, 100) == pytest.approx(250.0 * 5.426264754702098 * 2500, rel=1e-12)
    assert tail_score(1_000, 1, 0) == pytest.approx(1.0)  # no p50: ratio 1


# ---------------------------------------------------------------------------------------------- launched kernels


def _launched_reference(kernels: pl.DataFrame, api: pl.DataFrame) -> pl.DataFrame:
    """The definition: a left join of the kernels to their launch calls on (correlationId, pid)."""
    a = calls(api, LAUNCH_API, columns=["correlationId", "pid", "tid", "start", "end"])
    on = ["correlationId", "pid"]
    wide = [pl.col(c).cast(pl.Int64) for c in on]  # a frame's ids may be Int32; the join compares values
    joined = kernels.with_columns(wide).join(
        a.rename({"start": "l_start", "end": "l_end"}).with_columns(wide), on=on, how="left", maintain_order="left"
    )
    return joined.with_columns(pl.col(c).cast(kernels.schema[c]) for c in on)


def _api_rows(corr: list[int | None], pid: list[int | None]) -> pl.DataFrame:
    n = len(corr)
    return pl.DataFrame(
        {
            "correlationId": corr,
            "pid": pid,
            "tid": list(range(100, 100 + n)),
            "start": [10 * i for i in range(n)],
            "end": [10 * i + 5 for i in range(n)],
            "name": ["cudaLaunchKernel"] * (n - 1) + ["cudaMemsetAsync"] if n else [],
        },
        schema={
            "correlationId": pl.Int64,
            "pid": pl.Int64,
            "tid": pl.Int64,
            "start": pl.Int64,
            "end": pl.Int64,
            "name": pl.Utf8,
        },
    )


@pytest.mark.parametrize(
    ("kcorr", "kpid", "acorr", "apid"),
    [
        ([1, 2, None, 4, 5], [7, 7, 7, None, 7], [1, 2, None, 5, 3], [7, 7, 7, 8, 7]),  # nulls, a pid mismatch
        ([1, 2, 3], [7, 7, 7], [2, 2, 1, 9], [7, 7, 7, 7]),  # a launch recorded twice: the kernel's row repeats
        ([1, 2, 3], [7, 7, 7], [], []),  # no launches
        ([1, 2, 3], [7, 7, 7], [None, None], [7, 7]),  # launches without correlation ids (an export without them)
        ([None, None], [7, 7], [1, 2], [7, 7]),  # kernels without correlation ids
        ([], [], [1, 2], [7, 7]),  # no kernels
        ([1, 2, 2**33], [7, 7, 7], [1, 2, 2**33, 4], [7, 7, 7, 7]),  # ids beyond 32 bits: the join decides
        ([3, 1, 2], [2**23, 5, 5], [2, 3, 1, 0], [5, 2**23, 5, 5]),  # out of order, a large pid
        ([5, 1, 6, 3, 2], [7, 7, 7, 7, 7], [1, 2, 3, 4, 5], [7, 7, 7, 7, 7]),  # launches in order (not reordered)
        ([1, 2, 3], [7, 7, 8], [1, 2, 3, 1], [7, 7, 7, 8]),  # in order by process, then id
    ],
)
@pytest.mark.parametrize("chunk", [2, 1 << 20])
def test_launched_kernels_is_the_left_join(
    kcorr: list[int | None],
    kpid: list[int | None],
    acorr: list[int | None],
    apid: list[int | None],
    chunk: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nsys_doctor.analysis import distribution

    monkeypatch.setattr(distribution, "ROW_CHUNK", chunk)  # kernels looked up a few at a time, or all at once
    ids = pl.Int32 if all(abs(v) < 2**31 for v in (*kcorr, *kpid) if v is not None) else pl.Int64
    kernels = pl.DataFrame(
        {"correlationId": kcorr, "pid": kpid, "start": list(range(len(kcorr)))},
        schema={"correlationId": ids, "pid": ids, "start": pl.Int64},  # the frame's ids: Int32 where they fit
    )
    api = _api_rows(acorr, apid)
    got, want = launched_kernels(kernels, api), _launched_reference(kernels, api)
    assert got.schema == want.schema
    assert got.equals(want)


def test_launched_kernels_of_a_real_trace_is_the_left_join() -> None:
    from nsys_doctor.trace.tables import TraceFrames

    from .conftest import SAMPLE

    with Trace.open(SAMPLE) as trace:
        f = TraceFrames(trace)
        got = launched_kernels(f.kernels, f.api)
        assert got.equals(_launched_reference(f.kernels, f.api))
        launches = calls(f.api, LAUNCH_API, columns=["correlationId", "pid", "tid", "start", "end"])
        fast = _lookup_launches(f.kernels, launches.rename({"start": "l_start", "end": "l_end"}))
        assert fast is not None  # the binary search served it, not the join
        assert got["l_start"].null_count() < got.height // 10  # the launches were found


# ---- the kernel sequence's sorts: the same as numpy's definitions, by hand on small cases


def test_launch_order_by_hand() -> None:
    # launch times tie for a graph's kernels (positions 1, 2, 3); ties go by GPU start, then end, then name code,
    # and keys that tie on all four keep their positions (3 before 4)
    t = np.array([50, 10, 10, 10, 10, 5])
    start = np.array([0, 30, 20, 20, 20, 0])
    end = np.array([0, 40, 25, 22, 22, 0])
    code = np.array([0, 1, 2, 3, 3, 0])
    assert launch_order(t, start, end, code).tolist() == [5, 3, 4, 2, 1, 0]
    assert launch_order(*(np.zeros(0, dtype=np.int64),) * 4).tolist() == []


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_in_launch_order_is_whether_the_sort_keeps_every_row(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows found in launch order are exactly those the stable sort leaves in place (ties on every key, a row out
    of place at a chunk's edge); the thread blocks are ``launch_blocks``' products."""
    from nsys_doctor.analysis import distribution
    from nsys_doctor.analysis.phases import launch_blocks
    from nsys_doctor.analysis.structure import sequence

    monkeypatch.setattr(distribution, "ROW_CHUNK", chunk)
    rng = np.random.default_rng(chunk)
    kept = moved = 0
    for case in range(300):
        n = int(rng.integers(0, 30))
        keys = [rng.integers(0, 3, n) for _ in range(4)]
        if case % 2:  # sorted: in order, or one neighbour pair swapped
            o = np.lexsort(keys[::-1])
            keys = [k[o] for k in keys]
            if case % 4 == 1 and n > 1:
                i = int(rng.integers(0, n - 1))
                for k in keys:
                    k[[i, i + 1]] = k[[i + 1, i]]
        identity = launch_order(*keys).tolist() == list(range(n))
        assert sequence.in_launch_order(*keys) == identity, [k.tolist() for k in keys]
        kept, moved = kept + identity, moved + (not identity)
    assert kept > 50 and moved > 50
    k = pl.DataFrame(
        {"gridX": [1, 2**31 - 1, None, 3], "gridY": [1, 65535, 2, None], "gridZ": [4, 2, 1, 1]},
        schema=dict.fromkeys(GRID, pl.Int32),
    )
    assert sequence._blocks(k).tolist() == k.select(launch_blocks()).to_series().to_list()
    assert sequence._blocks(k).tolist() == [4, (2**31 - 1) * 65535 * 2, 0, 0]
    assert sequence._blocks(k.drop("gridZ")).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("seed", range(6))
def test_pass_measures_over_spans_without_a_padded_copy(seed: int) -> None:
    """Each span's minimum, maximum and sum are those of the padded array's ``reduceat`` and of the cumulative
    sums they replace: empty spans, spans reaching the end or starting at it, overlapping and unordered spans."""
    from nsys_doctor.analysis.distribution import span_reduce, span_sums

    rng = np.random.default_rng(seed)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        values = rng.integers(-50, 50, n)
        p = int(rng.integers(1, 8))
        first = rng.integers(0, n + 1, p)
        last = np.minimum(first + rng.integers(0, 6, p), n)
        if rng.random() < 0.3:
            last[-1] = n
        idx = np.empty(2 * p, dtype=np.int64)
        idx[0::2], idx[1::2] = first, last
        padded = np.concatenate([values, values[-1:]])
        for ufunc in (np.minimum, np.maximum):
            assert span_reduce(ufunc, values, idx).tolist() == ufunc.reduceat(padded, idx)[0::2].tolist()
        ok = last >= first
        f, lst = first[ok], last[ok]
        for v in (values, values > 0, values * 0.5):
            want = np.concatenate([[0], np.cumsum(v)])
            assert span_sums(v, f, lst).tolist() == (want[lst] - want[f]).tolist()


@pytest.mark.parametrize("seed", range(5))
def test_sequence_sorts_match_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(0, 400))
        t = rng.integers(0, int(rng.integers(1, 60)), n)  # few distinct launch times: many ties
        start, end, code = rng.integers(0, 5, n), rng.integers(0, 5, n), rng.integers(0, 7, n)
        assert launch_order(t, start, end, code).tolist() == np.lexsort((code, end, start, t)).tolist()
        assert stable_order(code, 7).tolist() == np.argsort(code, kind="stable").tolist()
        assert sorted_unique(t).tolist() == sorted(set(t.tolist()))
        first = first_positions(code, 7).tolist()
        assert first == [code.tolist().index(c) if c in code else n for c in range(7)]


def test_stable_order_of_wide_codes_and_sorted_unique_by_hand() -> None:
    code = np.array([70_000, 3, 70_000, 0, 3])  # more than 16 bits: no narrowing
    assert stable_order(code, 70_001).tolist() == [3, 1, 4, 0, 2]
    assert sorted_unique(np.array([5, 1, 5, 5, 2, 1])).tolist() == [1, 2, 5]
    assert sorted_unique(np.array([7])).tolist() == [7]
    assert first_positions(np.array([2, 2, 0]), 4).tolist() == [2, 3, 0, 3]


# ---- the per-step profile: labels and rows by text codes, as the joins and groups on texts gave them
def _named_frame(rng: random.Random, n: int) -> pl.DataFrame:
    names = ["void at::native::vectorized_elementwise_kernel<4, at::native::MulFunctor<float>>", "gemm", "rms", None]
    shorts = ["vectorized_elementwise_kernel", "gemm", None, "rms"]
    return pl.DataFrame(
        {
            "name": [rng.choice(names) for _ in range(n)],
            "short": [rng.choice(shorts) for _ in range(n)],
            "dur": [rng.randrange(1, 10_000) for _ in range(n)],
            "idx": [rng.choice([None, 0, 1, 2, 3]) for _ in range(n)],
            "family": [rng.choice(["gemm", "elementwise"]) for _ in range(n)],
            "category": ["compute"] * n,
        },
        schema_overrides={"idx": pl.Int64},
    )


def test_label_frame_is_the_join_on_the_texts() -> None:
    from nsys_doctor.analysis.ops import kernel_label, label_frame

    for seed in range(4):
        df = _named_frame(random.Random(seed), 500)
        got = label_frame(df)
        # the definition: labels per distinct (name, short), joined back on the two texts (nulls match nothing)
        want = [
            None if n is None or s is None else kernel_label(n, s)
            for n, s in zip(df["name"].to_list(), df["short"].to_list(), strict=True)
        ]
        assert got.columns == [*df.columns, "label"]
        assert got.drop("label").equals(df)
        assert got["label"].to_list() == want
    assert label_frame(_named_frame(random.Random(0), 0))["label"].to_list() == []


def test_profile_rows_are_the_groups_of_the_texts() -> None:
    from nsys_doctor.analysis.compare import SAMPLE_MAX, _rows
    from nsys_doctor.analysis.distribution import downsample

    for seed in range(4):
        df = _named_frame(random.Random(seed), 3000)
        for key in ("name", "family"):
            rows = _rows(df, key, 4)
            # the definition, in plain Python: per text of the key (null as "None", its steps never counted)
            groups: dict[object, list[dict[str, object]]] = {}
            for r in df.iter_rows(named=True):
                groups.setdefault(r[key], []).append(r)
            assert sorted(rows) == sorted(str(k) for k in groups)
            for k, members in groups.items():
                row = rows[str(k)]
                durs = [int(m["dur"]) for m in members]  # type: ignore[call-overload]
                per_step = [0] * 4
                for m in members:
                    if m["idx"] is not None and k is not None:
                        per_step[m["idx"]] += int(m["dur"])  # type: ignore[index, call-overload]
                assert (row.count, row.total, row.per_step) == (len(durs), sum(durs), per_step), (key, k)
                assert row.sample == downsample(np.array(durs), SAMPLE_MAX), (key, k)
                assert row.family == (str(members[0]["family"]) if key == "name" else str(k)), (key, k)


def test_where_time_attributes_the_report_to_its_analyses() -> None:
    # benchmarks/where_time.py, the wall-clock profile of the report's analyses, runs on the sample: every stage is
    # timed and the structure and diagnosis are among the functions it timed, each called once
    import subprocess
    import sys

    from .conftest import SAMPLE

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "where_time.py"), str(SAMPLE), "--top", "200"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert {"read", "diagnose"} <= set(rows) and "launched + structure" in out
    assert rows["structure.builder.find_structure"][0] == "1"
    assert rows["diagnosis.diagnose"][0] == "1"
    assert float(rows["diagnosis.diagnose"][1]) <= float(rows["diagnose"][0])


@pytest.mark.parametrize("seed", range(6))
def test_distinct_name_step_grid_rows_packed_are_those_of_the_three_columns(seed: int) -> None:
    # the dynamic-shape signatures' distinct (name, step, grid) rows, packed into one column where they fit (the grid
    # as its rank among the distinct grids), are the rows unique() and a three-column sort give
    from nsys_doctor.analysis.diagnosis import _distinct_sorted

    rng = random.Random(seed)
    for case in range(40):
        n = rng.choice([1, 5, 100, 3000])
        # a quarter of the frames with steps numbered up to 2**60: too wide to pack with the names and grids
        top = 2**60 if case % 4 == 0 else rng.choice([2, 10**6, 2**40])
        grids = [rng.choice([0, 1, 2**40, 2**62, rng.randint(0, 2**62)]) for _ in range(rng.choice([1, 3, 50]))]
        rows = pl.DataFrame(
            {
                "name": pl.Series([rng.randint(0, rng.choice([3, 1000])) for _ in range(n)], dtype=pl.UInt32),
                "idx": pl.Series([top] + [rng.randint(0, top) for _ in range(n - 1)], dtype=pl.Int64),
                "g": pl.Series([rng.choice(grids) for _ in range(n)], dtype=pl.Int64),
            }
        )
        got = _distinct_sorted(rows)
        want = rows.unique(["name", "idx", "g"]).sort("name", "idx", "g")
        assert got.equals(want) and got.schema == want.schema


def test_null_columns_are_made_by_polars() -> None:
    # a column of nulls of any length and type (a trace with no launch calls gives every kernel three of them)
    from nsys_doctor.trace.tables import null_column

    for n, dtype in ((0, pl.Int64()), (3, pl.String()), (200_000, pl.Int64())):
        col = null_column("x", n, dtype)
        assert col.name == "x" and col.dtype == dtype and col.len() == n and col.null_count() == n
    k = pl.DataFrame({"correlationId": [1, 2], "pid": [7, 7], "start": [10, 20]})
    none = pl.DataFrame(schema={"correlationId": pl.Int64, "pid": pl.Int64, "tid": pl.Int64, "l_start": pl.Int64,
                                "l_end": pl.Int64})  # fmt: skip
    found = _lookup_launches(k, none)
    assert found is not None and [s.name for s in found] == ["tid", "l_start", "l_end"]
    assert all(s.len() == 2 and s.null_count() == 2 and s.dtype == pl.Int64 for s in found)


@pytest.mark.parametrize("dtype", ["int64", "uint32", "float64"])
def test_sorted_unique_is_numpys_unique(dtype: str) -> None:
    import numpy as np

    from nsys_doctor.analysis.distribution import sorted_unique

    rng = np.random.default_rng(3)
    for a in (rng.integers(0, 50, 1000), rng.integers(0, 2**30, 1000), np.array([7]), np.array([], dtype=np.int64)):
        x = a.astype(dtype)
        if dtype == "float64" and x.size > 2:
            x[::7] = np.nan  # NaNs are one value, as np.unique counts them
        got, want = sorted_unique(x), np.unique(x)
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=dtype == "float64")
