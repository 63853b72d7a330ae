"""The chunked, polars-formatted rendering of ``cuda_gpu_trace`` against the row-by-row renderers it replaced.

``render_csv``/``render_json``/``render_table``/``render_column`` over a plain list of rows are the reference; the
chunked tables (``stats.gputrace.FrameRows``, ``StreamedRows``) must give the same text in every format, unit and chunk
size; the streamed rows must be the rows of the whole-frame definition they replaced.
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nsys_doctor.report import nsys_format as nf
from nsys_doctor.report.nsys_format import Units, render, render_chunks
from nsys_doctor.stats import ReportContext, StatsTable, gputrace, parse_report_arg, run_report
from nsys_doctor.stats.core import Column
from nsys_doctor.stats.gputrace import COLUMNS, OUT, FrameRows, StreamedRows, small_trace_rows
from nsys_doctor.stats.keysort import sorted_pairs
from nsys_doctor.trace.window import EventFilter, parse_filter_time

from .conftest import SAMPLE, TRACES, needs_shared, open_trace
from .test_fuzz import MC, MS, K, mutated_copy, run_cli, set_values, sql

REFERENCE = {"csv": nf.render_csv, "json": nf.render_json, "table": nf.render_table, "column": nf.render_column}
UNITS = [Units(), Units(time="us", mem="KiB"), Units(time="ms", mem="B"), Units(time="sec", mem="GB")]
CHUNKS = (1, 7, 1_000_000)


def _reference(table: StatsTable, fmt: str, units: Units) -> str:
    plain = StatsTable(table.report, table.title, table.columns, list(table.rows), table.skipped)
    return REFERENCE[fmt](plain, units) if plain.rows else ""


def _check(table: StatsTable, units: Units, chunk_sizes: tuple[int, ...] = CHUNKS) -> None:
    for fmt in REFERENCE:
        expected = _reference(table, fmt, units)
        assert render(table, fmt, units) == expected, fmt
        for n in chunk_sizes:
            assert "".join(render_chunks(table, fmt, units, n)) == expected, (fmt, n)


COLS = (
    Column("Start", "ts_ns"),
    Column("Duration", "dur_ns"),
    Column("CorrId"),
    Column("Bytes", "mem_B"),
    Column("Throughput", "thru_B"),
    Column("Device"),
    Column("Name"),
)

NAMES = [
    "plain",
    "with,comma",
    'with "quotes"',
    "new\nline",
    "tab\tand\rcr",
    "back\\slash",
    "ctrl\x01\x1f\x7f",
    "trailing spaces   ",
    "trailing sep\x1c",
    "unicode é 日本 ✓",
    "x" * 150,
    "é" * 101,
    "",
    None,
]


def _synthetic() -> StatsTable:
    n = len(NAMES)
    big = 9_223_372_036_854_775_807
    starts = [0, 1, 999, 1000, 1766, 19_645, 1_234_567, 999_999_999, 10**15, big, -1, -1_234_567, 500, 1500][:n]
    durs = [1766, 19645, 5, 0, None, 1_000_500, 123_456_789, big, -5, 2_500, 1_500_000, 7, 15, 25][:n]
    frame = pl.DataFrame(
        {
            "start": starts,
            "dur": durs,
            "corr": [None, *range(1, n)],
            "bytes": [None, 0, 1, 999, 1_000, 1_048_576, 1_500, 2_500, 10**12, big, None, 3, 4_096, 5][:n],
            "thru": [None, 5, 1_073_741_824, 123_456_789_012, 2_500_000, None, 1, 15, 25, 35, 45, 55, 65, 75][:n],
            "device": ["NVIDIA H100 (0)", None] * (n // 2),
            "name": NAMES,
        },
        schema={
            "start": pl.Int64,
            "dur": pl.Int64,
            "corr": pl.Int64,
            "bytes": pl.Int64,
            "thru": pl.Int64,
            "device": pl.Utf8,
            "name": pl.Utf8,
        },
    ).with_columns(pl.col("device", "name").cast(pl.Categorical))
    return StatsTable("cuda_gpu_trace", "CUDA GPU Trace", COLS, FrameRows(frame))  # type: ignore[arg-type]


@pytest.mark.parametrize("units", UNITS, ids=lambda u: f"{u.time}-{u.mem}")
def test_synthetic_matches_row_renderer(units: Units) -> None:
    _check(_synthetic(), units)


def test_half_ties_round_like_printf() -> None:
    # 19645.5 ns * 0.001 = 19.645500000000002 -> 19.646 us; 1766.5 ns -> 1.7665 -> 1.766 us (see _convert)
    frame = pl.DataFrame({"v": [*range(0, 3_000_000, 499), 2**53 + 1, 2**62]}, schema={"v": pl.Int64})
    table = StatsTable("t", "T", (Column("Duration", "dur_ns"),), FrameRows(frame))  # type: ignore[arg-type]
    for unit in ("us", "ms", "sec"):
        _check(table, Units(time=unit), (100_000,))


def test_all_null_and_empty() -> None:
    frame = pl.DataFrame({"a": [None, None], "b": [None, None]}, schema={"a": pl.Int64, "b": pl.Utf8})
    table = StatsTable("t", "T", (Column("A", "dur_ns"), Column("B")), FrameRows(frame))  # type: ignore[arg-type]
    _check(table, Units(time="us"))
    empty = StatsTable("t", "T", (Column("A"),), FrameRows(frame.clear()))  # type: ignore[arg-type]
    for fmt in REFERENCE:
        assert render(empty, fmt, Units()) == "" and "".join(render_chunks(empty, fmt, Units())) == ""


def test_frame_rows_is_a_sequence() -> None:
    table = _synthetic()
    rows = table.rows
    listed = list(rows)
    assert len(rows) == len(listed) and rows[0] == listed[0] and rows[-1] == listed[-1] and rows[1:3] == listed[1:3]
    assert rows == listed and bool(rows)
    assert listed[-1][-1] is None and isinstance(listed[0][-1], str)


SHARED = ["decode_pathologies", "decode_eager", "prefill_2048"]


@needs_shared
@pytest.mark.parametrize("name", SHARED)
@pytest.mark.parametrize("report", ["cuda_gpu_trace", "cuda_gpu_trace:base"])
def test_shared_traces_match_row_renderer(name: str, report: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = TRACES / f"{name}.sqlite"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    monkeypatch.setattr(gputrace, "SMALL_TRACE_VALUES", 0)  # the streamed path, even for a small trace
    full = run_report(ReportContext(open_trace(path), EventFilter()), parse_report_arg(report))
    assert isinstance(full.rows, StreamedRows)
    # the row-by-row reference is slow: real rows from the start, the middle (kernels, copies, memsets of the
    # steady state) and the end of the trace, 3 x 3,000 rows; the whole reports are checked against real nsys by
    # tests/test_golden_parity.py
    frame = pl.concat(list(full.rows.chunks(65_536)))
    n = frame.height
    part = pl.concat([frame.head(3_000), frame.slice(max(0, n // 2 - 1_500), 3_000), frame.tail(3_000)])
    table = StatsTable(full.report, full.title, full.columns, FrameRows(part), full.skipped)
    units = [Units(), Units(time="us")] if report.endswith("base") else [Units(time="ms", mem="KiB")]
    for u in units:
        _check(table, u, (4_096, 1_000_000))  # chunk sizes 1 and 7: the synthetic frame above


# ---- the streamed rows against the whole-frame definition they replaced


def _whole_frame(ctx: ReportContext) -> pl.DataFrame:
    """Every row of the report at once: each table read whole, concatenated, sorted by start then kind (a stable
    sort: each table's rows in table order), as ``cuda_gpu_trace`` was made before it was streamed."""
    from nsys_doctor.stats.core import load_kernels
    from nsys_doctor.stats.memops import MEMSET_NAME, memcpy_name_expr
    from nsys_doctor.trace import schema as S
    from nsys_doctor.trace.tables import gpus, load, resolve_names

    trace = ctx.trace
    labels = trace.schema.enum_labels("ENUM_CUDA_MEM_KIND")

    def kind(col: str) -> pl.Expr:
        return pl.col(col).replace_strict(labels, default=None, return_dtype=pl.Utf8)

    k = resolve_names(load_kernels(ctx, COLUMNS[S.KERNEL]), trace, "name_id", "name").with_columns(
        pl.lit(None, pl.Int64).alias("bytes"), pl.lit(None, pl.Utf8).alias("src"), pl.lit(None, pl.Utf8).alias("dst")
    )
    cp = load(trace, S.MEMCPY, COLUMNS[S.MEMCPY], ctx.flt).with_columns(
        memcpy_name_expr(trace).alias("name"), kind("srcKind").alias("src"), kind("dstKind").alias("dst")
    )
    ms = load(trace, S.MEMSET, COLUMNS[S.MEMSET], ctx.flt).with_columns(
        pl.lit(MEMSET_NAME).alias("name"), kind("memKind").alias("src"), pl.lit(None, pl.Utf8).alias("dst")
    )
    parts = [f.with_columns(pl.lit(i, pl.Int8).alias("_kind")) for i, f in enumerate((k, cp, ms))]
    df = pl.concat(parts, how="diagonal_relaxed")
    gpu_names = gpus(trace).select("deviceId", pl.col("name").alias("_gpu"))
    dur = pl.col("end") - pl.col("start")
    df = df.join(gpu_names, on="deviceId", how="left", maintain_order="left").with_columns(
        dur.alias("dur"),
        pl.when(pl.col("bytes").is_not_null() & (dur > 0)).then(pl.col("bytes") * (1_000_000_000 // dur)).alias("thru"),
        pl.format("{} ({})", pl.col("_gpu").fill_null(""), pl.col("deviceId")).alias("device"),
        pl.col("contextId").replace(0, None).alias("ctx"),
        pl.col("greenContextId").replace(0, None).alias("green"),
        pl.col("streamId").replace(0, None).alias("strm"),
    )
    return df.sort(["start", "_kind"], maintain_order=True).select(OUT)


def _streamed(ctx: ReportContext, n: int) -> pl.DataFrame:
    rows = StreamedRows(ctx)
    chunks = list(rows.chunks(n))
    assert all(c.height == n for c in chunks[:-1]) and sum(c.height for c in chunks) == len(rows)
    return pl.concat(chunks) if chunks else pl.DataFrame()


def _shuffled_copy(tmp_path: Path) -> Path:
    """The sample with its rows out of start order, starts shared across kernels, copies and memsets, and damaged
    rows in each table (a NULL device, end before start): the order, the ties and the rows left out must all be
    the whole frame's."""
    moves = sql(
        f'UPDATE {K} SET start = start + (rowid % 5) * 40000, "end" = "end" + (rowid % 5) * 40000',
        f"UPDATE {MC} SET start = (SELECT start FROM {K} k WHERE k.rowid = {MC}.rowid * 3) WHERE rowid % 2 = 0",
        f"UPDATE {MS} SET start = (SELECT start FROM {K} k WHERE k.rowid = {MS}.rowid * 5) WHERE rowid % 3 = 0",
        f'UPDATE {K} SET "end" = start - 1 WHERE rowid % 97 = 0',
    )

    def mutate(con: sqlite3.Connection) -> None:
        moves(con)
        set_values(MC, "deviceId", "NULL", 11)(con)
        set_values(MS, "streamId", "NULL", 13)(con)

    return mutated_copy(SAMPLE, tmp_path / "shuffled.sqlite", mutate)


@pytest.mark.parametrize("flags", [(), ("base",), ("mangled",)])
def test_streamed_rows_are_the_whole_frame(tmp_path: Path, flags: tuple[str, ...]) -> None:
    path = _shuffled_copy(tmp_path)
    whole = _whole_frame(ReportContext(open_trace(path), EventFilter(), flags=set(flags)))
    assert whole.height > 10_000 and whole["start"].is_sorted() and not whole["start"].is_unique().all()
    for n in (331, 4_096, 1_000_000):
        trace = open_trace(path)
        assert _streamed(ReportContext(trace, EventFilter(), flags=set(flags)), n).equals(whole), n
        assert {d.table for d in trace.damaged.tables if d.damaged} == {K, MC, MS}


def test_streamed_rows_under_a_time_filter(tmp_path: Path) -> None:
    path = _shuffled_copy(tmp_path)
    trace = open_trace(path)
    lo, hi = trace.rows(f"SELECT min(start), max(start) FROM {K}")[0]
    flt = parse_filter_time(f"{lo + (hi - lo) // 3}ns/{lo + (hi - lo) // 2}ns")
    whole = _whole_frame(ReportContext(trace, flt))
    assert 0 < whole.height < trace.count(K)
    for n in (7, 1_000):  # chunks of 7 rows: copies and memsets of a chunk read from a range holding others
        assert _streamed(ReportContext(open_trace(path), flt), n).equals(whole), n


def test_streamed_rows_of_a_trace_without_gpu_work(tmp_path: Path) -> None:
    path = mutated_copy(
        SAMPLE, tmp_path / "none.sqlite", sql(f"DELETE FROM {K}", f"DELETE FROM {MC}", f"DELETE FROM {MS}")
    )
    table = run_report(ReportContext(open_trace(path), EventFilter()), parse_report_arg("cuda_gpu_trace"))
    assert not table.rows and len(table.rows) == 0 and list(table.rows) == []
    assert table.skipped == "does not contain CUDA kernels or memory operations"
    assert render(table, "csv", Units()) == ""


def _ties_copy(tmp_path: Path) -> Path:
    """The sample with rows out of start order and starts shared across kernels, copies and memsets (no damage)."""
    return mutated_copy(
        SAMPLE,
        tmp_path / "ties.sqlite",
        sql(
            f'UPDATE {K} SET start = start + (rowid % 5) * 40000, "end" = "end" + (rowid % 5) * 40000',
            f"UPDATE {MC} SET start = (SELECT start FROM {K} k WHERE k.rowid = {MC}.rowid * 3) WHERE rowid % 2 = 0",
            f"UPDATE {MS} SET start = (SELECT start FROM {K} k WHERE k.rowid = {MS}.rowid * 5) WHERE rowid % 3 = 0",
        ),
    )


@pytest.mark.parametrize("flags", [(), ("base",), ("mangled",)])
def test_small_trace_rows_are_the_whole_frame(tmp_path: Path, flags: tuple[str, ...]) -> None:
    # a small clean trace's report made with the stdlib driver alone: the rows of the whole-frame oracle, ties of a
    # kernel, a copy and a memset at one start in that order, each table's rows in table order
    for path in (SAMPLE, _ties_copy(tmp_path)):
        ctx = ReportContext(open_trace(path), EventFilter(), flags=set(flags))
        rows = small_trace_rows(ctx)
        whole = _whole_frame(ctx)
        assert rows is not None and len(rows) == whole.height > 10_000
        assert rows == whole.rows()
    trace = open_trace(_ties_copy(tmp_path))
    lo, hi = trace.rows(f"SELECT min(start), max(start) FROM {K}")[0]
    flt = parse_filter_time(f"{lo + (hi - lo) // 3}ns/{lo + (hi - lo) // 2}ns")
    rows = small_trace_rows(ReportContext(trace, flt))
    assert rows is not None and rows == _whole_frame(ReportContext(trace, flt)).rows() and 0 < len(rows) < 12_086


def test_a_throughput_beyond_64_bits_is_an_empty_cell_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 9 TB set in a nanosecond: 9e21 B/s, which no 64-bit integer holds (the streamed path wrapped it to a negative
    # number); the cell is empty on both paths, and a throughput that fits is unchanged
    huge = sql(f'UPDATE {MS} SET bytes = 9000000000000, "end" = start + 1 WHERE rowid = 1')
    path = mutated_copy(SAMPLE, tmp_path / "thru.sqlite", huge)
    small = small_trace_rows(ReportContext(open_trace(path), EventFilter()))
    assert small is not None and small == _streamed_rows(path, monkeypatch)
    at = OUT.index("thru")
    memsets = [r for r in small if r[-1] == "[CUDA memset]"]
    assert [r[at] for r in memsets if r[OUT.index("bytes")] == 9_000_000_000_000] == [None]
    assert all(r[at] is not None and r[at] >= 0 for r in memsets if r[OUT.index("bytes")] != 9_000_000_000_000)


def _streamed_rows(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    with monkeypatch.context() as m:
        m.setattr(gputrace, "SMALL_TRACE_VALUES", 0)
        return list(StreamedRows(ReportContext(open_trace(path), EventFilter())))


def test_exports_without_green_contexts_take_the_small_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # nsys 2023.3 and older write no greenContextId column: its cells are empty on both paths, and such a small
    # trace is read with the stdlib driver too
    drop = sql(*(f'ALTER TABLE {t} DROP COLUMN "greenContextId"' for t in (K, MC, MS)))
    path = mutated_copy(SAMPLE, tmp_path / "old.sqlite", drop)
    small = small_trace_rows(ReportContext(open_trace(path), EventFilter()))
    assert small is not None and len(small) > 12_086
    assert small == _streamed_rows(path, monkeypatch)
    assert {r[OUT.index("green")] for r in small} == {None}
    with_green = small_trace_rows(ReportContext(open_trace(SAMPLE), EventFilter()))
    assert with_green is not None
    assert [r[: OUT.index("green")] for r in small] == [r[: OUT.index("green")] for r in with_green]


@needs_shared
@pytest.mark.parametrize("name", ["public/rodinia_gaussian_report2", "public/sc23omp_report3", "public/gpu4_report2"])
def test_old_public_exports_take_the_small_path(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = TRACES / f"{name}.sqlite"
    small = small_trace_rows(ReportContext(open_trace(path), EventFilter()))
    assert small is not None and small == _streamed_rows(path, monkeypatch) and small


def test_small_trace_rows_leave_damage_and_big_tables_to_the_streamed_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # damaged rows (and NULLs the stdlib path does not reproduce) go the streamed way, which leaves them out and
    # counts them; so do tables of more values than SMALL_TRACE_VALUES
    damaged = ReportContext(open_trace(_shuffled_copy(tmp_path)), EventFilter())
    assert small_trace_rows(damaged) is None
    table = run_report(damaged, parse_report_arg("cuda_gpu_trace"))
    assert isinstance(table.rows, StreamedRows)
    monkeypatch.setattr(gputrace, "SMALL_TRACE_VALUES", 12_000 * len(OUT))  # fewer than the sample's rows
    assert small_trace_rows(ReportContext(open_trace(SAMPLE), EventFilter())) is None
    monkeypatch.setattr(gputrace, "SMALL_TRACE_VALUES", 13_000 * len(OUT))
    assert small_trace_rows(ReportContext(open_trace(SAMPLE), EventFilter())) is not None


def test_streamed_rows_are_a_sequence() -> None:
    rows = StreamedRows(ReportContext(open_trace(SAMPLE), EventFilter()))
    listed = list(rows)
    assert len(rows) == len(listed) > 1000
    assert rows[0] == listed[0] and rows[-1] == listed[-1] and rows[5:8] == listed[5:8] and rows == listed
    with pytest.raises(IndexError):
        rows[len(listed)]


# ---- the sort of the keys: in place where doubles hold the values, by lexsort where they do not


def _pairs(first: list[int], second: list[int], spare: int = 0) -> np.ndarray:
    buf = np.empty(2 * (len(first) + spare), dtype=np.int64)
    buf[0 : 2 * len(first) : 2], buf[1 : 2 * len(first) : 2] = first, second
    return buf


def test_sorted_pairs_by_hand() -> None:
    # equal starts are ordered by their second value; the buffer may be longer than the pairs (filtered rows)
    got = sorted_pairs(_pairs([30, 10, 10, -5, 20], [4, 9, 2, 7, 1], spare=3), 5)
    assert got.tolist() == [7, 2, 9, 1, 4] and got.dtype == np.int64
    assert sorted_pairs(_pairs([], []), 0).tolist() == []
    # beyond what a double holds (2**53 + 1 and 2**53 round to one double): the lexsort path, still exact
    big = 2**53
    assert sorted_pairs(_pairs([big + 1, big, big + 1], [1, 2, 0]), 3).tolist() == [2, 0, 1]


@pytest.mark.parametrize("seed", range(4))
def test_sorted_pairs_is_the_lexsort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5_000))
    first = rng.integers(-(2**40), 2**40, n) // int(rng.integers(1, 2**38))  # many ties
    second = rng.permutation(n) + (rng.integers(0, 3, n) << 40)
    expected = second[np.lexsort((second, first))]
    assert sorted_pairs(_pairs(first.tolist(), second.tolist(), spare=int(rng.integers(0, 50))), n).tolist() == (
        expected.tolist()
    )


def test_rowids_beyond_the_key_are_refused(tmp_path: Path) -> None:
    path = mutated_copy(SAMPLE, tmp_path / "far.sqlite", sql(f"UPDATE {MS} SET rowid = rowid + (1 << 41)"))
    rc, out, err = run_cli(["stats", "-r", "cuda_gpu_trace", str(path)])
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "rowids outside 0..2**40" in err and "nsys export" in err


# ---- the keys of a trace beyond memory: blocks sorted as runs on disk, merged a window at a time


def _spill(monkeypatch: pytest.MonkeyPatch, block: int, window: tuple[int, int]) -> None:
    """Every sort of keys goes through runs on disk, blocks of ``block`` rowids, windows of ``window`` pairs."""
    from nsys_doctor.stats import gputrace, keysort

    monkeypatch.setattr(keysort, "MEMORY_ROWS", 0)
    monkeypatch.setattr(keysort, "MERGE_BYTES", 0)  # the smallest window
    monkeypatch.setattr(keysort, "WINDOW_ROWS", window)
    monkeypatch.setattr(gputrace, "BLOCK_ROWS", block)


@pytest.mark.parametrize(("block", "window"), [(997, (4, 4)), (4_096, (64, 64)), (1 << 20, (1 << 10, 1 << 16))])
def test_spilled_keys_are_the_whole_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int, window: tuple[int, int]
) -> None:
    path = _shuffled_copy(tmp_path)
    whole = _whole_frame(ReportContext(open_trace(path), EventFilter()))
    _spill(monkeypatch, block, window)
    rows = StreamedRows(ReportContext(open_trace(path), EventFilter()))
    assert rows._key._keys is None and rows._key.size == whole.height  # in the file, not in memory
    for n in (331, 1_000_000):
        chunks = list(rows.chunks(n))
        assert pl.concat(chunks).equals(whole), (block, window, n)
    assert rows[0] == whole.row(0) and rows[-1] == whole.row(-1)


def test_spilled_report_is_the_same_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _shuffled_copy(tmp_path)
    rc, expected, err = run_cli(["stats", "-r", "cuda_gpu_trace", "--format", "csv", "-o", "-", str(path)])
    assert rc == 0 and expected.count("\n") > 10_000, err
    _spill(monkeypatch, 2_000, (16, 16))
    assert run_cli(["stats", "-r", "cuda_gpu_trace", "--format", "csv", "-o", "-", str(path)]) == (0, expected, err)


@pytest.mark.parametrize("seed", range(6))
def test_key_sorter_is_the_lexsort(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    from nsys_doctor.stats import keysort

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 20_000))
    spread = [2**40, 2**62][seed % 2]  # beyond 2**53 the runs and rounds are sorted by lexsort
    first = rng.integers(-spread, spread, n) // int(rng.integers(1, 2**38))  # many ties
    second = rng.permutation(n) + (rng.integers(0, 3, n) << 40)
    expected = second[np.lexsort((second, first))]
    for memory, window in ((n, (1, 1)), (0, (1, 1)), (0, (3, 7)), (0, (256, 256))):
        monkeypatch.setattr(keysort, "MEMORY_ROWS", memory)
        monkeypatch.setattr(keysort, "MERGE_BYTES", 0)
        monkeypatch.setattr(keysort, "WINDOW_ROWS", window)
        sorter = keysort.KeySorter(n)
        cuts = sorted({0, n, *rng.integers(0, n, int(rng.integers(0, 30))).tolist()})
        for a, b in itertools.pairwise(cuts):  # blocks of any size, some empty
            sorter.add(first[a:b], second[a:b])
            sorter.add(first[a:a], second[a:a])
        keys = sorter.finish()
        assert keys.size == n and keys.slice(0, n).tolist() == expected.tolist(), (memory, window)
        lo = int(rng.integers(0, n))
        assert keys.slice(lo, lo + 5).tolist() == expected[lo : lo + 5].tolist()
        assert keys.slice(n, n + 3).size == 0


def test_key_sorter_without_room_for_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from nsys_doctor.stats import keysort

    path = _shuffled_copy(tmp_path)
    _spill(monkeypatch, 2_000, (16, 16))
    before = path.read_bytes()

    def refused(**_: object) -> None:
        raise PermissionError(13, "Permission denied")

    def failing(argv: list[str], expected: str) -> None:
        rc, out, err = run_cli(argv)
        errors = [line for line in err.splitlines() if line.startswith("nsys-doctor: error: ")]
        assert rc == 2 and out == "" and "Traceback" not in err and len(errors) == 1, err
        assert expected in errors[0] and "TMPDIR" in errors[0], errors
        assert path.read_bytes() == before

    argv = ["stats", "-r", "cuda_gpu_trace", "--format", "csv", "-o", "-", str(path)]
    with monkeypatch.context() as m:
        m.setattr(tempfile, "TemporaryFile", refused)
        failing(argv, "could not create a temporary file")
    if Path("/dev/full").exists():  # a disk that fills while the runs are written
        monkeypatch.setattr(keysort, "_temporary", lambda: open("/dev/full", "wb", buffering=0))  # noqa: SIM115
        failing(argv, "could not write the sort's temporary file")


def test_column_formatters_are_the_cell_functions() -> None:
    """``cell_formatter`` (one column's cells, its unit looked up once) gives ``pretty_cell``'s and ``plain_cell``'s
    text for every kind of value, unit and display unit."""
    import math
    import random

    rng = random.Random(11)
    values: list[object] = [None, "", "x" * 150, "a,b", True, 0, -0.0, 0.0, 5e-324, 1e16, -1e16, 9.5e15, math.inf]
    values += [math.nan, -math.inf, 0.25, -0.5, 1234.5, -1234.05, 2**63 - 1, -(2**62)]
    values += [rng.randrange(-(10**15), 10**15) for _ in range(2000)]
    values += [rng.uniform(-1e9, 1e9) for _ in range(2000)]
    values += [rng.getrandbits(53) * 2.0 ** rng.randrange(-1127, 60) * rng.choice([1, -1]) for _ in range(2000)]
    for unit in ("", "dur_ns", "ts_ns", "mem_B", "thru_B", "ratio_%"):
        col = Column("c", unit)
        for units in (Units(), Units("us", "B"), Units("sec", "GiB"), Units("ms", "KB")):
            pretty = nf.cell_formatter(col, units, pretty=True)
            plain = nf.cell_formatter(col, units, pretty=False)
            for v in values:
                assert pretty(v) == nf.pretty_cell(v, col, units), (unit, units, v)
                assert plain(v) == nf.plain_cell(v, col, units), (unit, units, v)


def test_python_whitespace_is_what_str_rstrip_strips() -> None:
    assert "".join(chr(i) for i in range(0x3001) if chr(i).isspace()) == nf._PY_SPACE
    assert all(not chr(i).isspace() for i in range(0x3001, 0x110000))  # and nothing above
