"""The chunked, polars-formatted rendering of ``cuda_gpu_trace`` against the row-by-row renderers it replaced.

``render_csv``/``render_json``/``render_table``/``render_column`` over a plain list of rows are the reference; the
frame-backed table (``stats.gputrace.FrameRows``) must give the same text in every format, unit and chunk size.
"""

from __future__ import annotations

import polars as pl
import pytest

from nsys_doctor.report import nsys_format as nf
from nsys_doctor.report.nsys_format import Units, render, render_chunks
from nsys_doctor.stats import ReportContext, StatsTable, parse_report_arg, run_report
from nsys_doctor.stats.core import Column
from nsys_doctor.stats.gputrace import FrameRows
from nsys_doctor.trace.window import EventFilter

from .conftest import TRACES, needs_shared, open_trace

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
def test_shared_traces_match_row_renderer(name: str, report: str) -> None:
    path = TRACES / f"{name}.sqlite"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    full = run_report(ReportContext(open_trace(path), EventFilter()), parse_report_arg(report))
    assert isinstance(full.rows, FrameRows)
    # the row-by-row reference is slow: real rows from the start, the middle (kernels, copies, memsets of the
    # steady state) and the end of the trace, 3 x 3,000 rows; the whole reports are checked against real nsys by
    # tests/test_golden_parity.py
    frame = full.rows.frame
    n = frame.height
    part = pl.concat([frame.head(3_000), frame.slice(max(0, n // 2 - 1_500), 3_000), frame.tail(3_000)])
    table = StatsTable(full.report, full.title, full.columns, FrameRows(part), full.skipped)
    units = [Units(), Units(time="us")] if report.endswith("base") else [Units(time="ms", mem="KiB")]
    for u in units:
        _check(table, u, (4_096, 1_000_000))  # chunk sizes 1 and 7: the synthetic frame above
