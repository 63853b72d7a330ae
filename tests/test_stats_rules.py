"""nsys analyze rules on a tiny hand-built trace: options (rows=, gap=, threshold=, chunks=, start=/end=,
process=/thread=) and nsys's quirks, each checked against values worked out by hand."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from nsys_doctor.errors import UsageError
from nsys_doctor.stats import ReportContext, core, parse_report_arg, run_report
from nsys_doctor.stats.core import StatsTable
from nsys_doctor.stats.gpu_rules import sqlite_sum
from nsys_doctor.stats.rulebase import like_regex
from nsys_doctor.trace import Trace
from nsys_doctor.trace.window import EventFilter

MS = 1_000_000
PID, PID2 = 10, 20
G = (PID << 24) | PID  # main thread of pid 10
G_WORKER = (PID << 24) | 11
G2 = (PID2 << 24) | PID2
P, P2 = PID << 24, PID2 << 24

# names: id -> text
NAMES = {
    0: "k",
    1: "cudaMemcpyAsync_v3020",
    2: "cudaMemcpy_v3020",
    3: "cuMemcpyHtoDAsync_v2",
    4: "CUDAMEMCPYASYNC_x",
    5: "cudaMemset_v3020",
    6: "cudaMemsetAsync_v3020",
    7: "cudaDeviceSynchronize_v3020",
    8: "cudaStreamSynchronize_v3020",
    9: "cudaEventSynchronize_v3020",
    10: "cudaLaunchKernel_v7000",
}


@pytest.fixture
def tiny(tmp_path: Path):
    """Device 0 of pid 10: kernels [1,100], [50,3ms] (covers a nested one at [200,300]), [5ms,5ms+100],
    [8ms+100, 8ms+200]; so its idle gaps are 2 ms (from 3 ms) and 3 ms (from 5ms+100). A kernel [0, 4ms] is
    ignored (nsys keeps only ops with start > 0). Device 1 of pid 10: kernels [1,10] and [9ms, 9ms+10] in
    context 7 (a 9 ms gap, less 10 ns). Memcpy/memset rows lie inside [50,3ms] so they don't change the gaps."""
    path = tmp_path / "tiny.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE StringIds (id INTEGER PRIMARY KEY, value TEXT);
        CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INT, end INT, deviceId INT, contextId INT, greenContextId INT,
            streamId INT, correlationId INT, globalPid INT, demangledName INT, shortName INT);
        CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME (start INT, end INT, eventClass INT, globalTid INT,
            correlationId INT, nameId INT, returnValue INT);
        CREATE TABLE CUPTI_ACTIVITY_KIND_MEMCPY (start INT, end INT, deviceId INT, contextId INT, greenContextId INT,
            streamId INT, correlationId INT, globalPid INT, bytes INT, copyKind INT, srcKind INT, dstKind INT,
            srcDeviceId INT, dstDeviceId INT);
        CREATE TABLE CUPTI_ACTIVITY_KIND_MEMSET (start INT, end INT, deviceId INT, contextId INT, greenContextId INT,
            streamId INT, correlationId INT, globalPid INT, value INT, bytes INT, memKind INT);
    """)
    con.executemany("INSERT INTO StringIds VALUES (?, ?)", NAMES.items())
    kernels = [
        (1, 100, 0, 1),
        (50, 3 * MS, 0, 1),
        (200, 300, 0, 1),
        (0, 4 * MS, 0, 1),
        (5 * MS, 5 * MS + 100, 0, 1),
        (8 * MS + 100, 8 * MS + 200, 0, 1),
        (1, 10, 1, 7),
        (9 * MS, 9 * MS + 10, 1, 7),
    ]
    con.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?,?,?,?,0,7,100,?,0,0)",
        [(s, e, d, c, P) for s, e, d, c in kernels],
    )
    # API calls (corr -> name); corr 21 has no API call at all
    api = [
        (1, 1, G),
        (2, 1, G),
        (3, 3, G),
        (4, 4, G),
        (5, 1, G),
        (11, 2, G),
        (12, 2, G),
        (13, 2, G),
        (14, 2, G),
        (31, 5, G),
        (32, 6, G),
        (33, 5, G),
        (34, 5, G),
    ]
    con.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES (?,?,0,?,?,?,0)",
        [(10 * MS + c, 10 * MS + c + 5, g, c, n) for c, n, g in api],
    )
    syncs = [(100, 50, 7, G), (200, 70, 8, G_WORKER), (300, 90, 9, G), (400, 60, 8, G2), (500, 40, 7, G)]
    con.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES (?,?,0,?,0,?,0)", [(s, s + d, g, n) for s, d, n, g in syncs]
    )
    # memcpy: (start, dur, corr, bytes, copyKind, srcKind, dstKind, srcDev, dstDev, green)
    memcpy = [
        (1000, 30, 1, 10, 1, 0, 2, None, None, 0),  # pageable async: flagged (async rule)
        (2000, 50, 2, 10, 2, 2, 0, None, None, 5),  # pageable async (dst): flagged, green context 5
        (3000, 90, 3, 10, 1, 0, 2, None, None, 0),  # driver API cuMemcpy*: never flagged
        (4000, 40, 4, 10, 1, 0, 2, None, None, 0),  # LIKE is case-insensitive: flagged
        (5000, 20, 5, 10, 1, 1, 2, None, None, 0),  # pinned async: not flagged
        (6000, 70, 21, 10, 1, 0, 2, None, None, 0),  # no API call: not flagged
        (7000, 11, 11, 64_000, 1, 1, 2, None, None, 0),  # sync HtoD of 64 000 B: small, skipped
        (7100, 12, 12, 64_001, 1, 1, 2, None, None, 0),  # sync HtoD of 64 001 B: flagged
        (7200, 13, 13, 100, 8, 2, 2, 0, 0, 0),  # sync DtoD on one device: skipped
        (7300, 14, 14, 100, 8, 2, 2, 0, 1, 0),  # sync DtoD across devices: flagged
    ]
    con.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_MEMCPY VALUES (?,?,0,1,?,3,?,?,?,?,?,?,?,?)",
        [(s, s + d, gr, c, P, b, k, sk, dk, sd, dd) for s, d, c, b, k, sk, dk, sd, dd, gr in memcpy],
    )
    memset = [(8000, 25, 31, 1), (8100, 35, 32, 1), (8200, 45, 33, 2), (8300, 55, 34, 4)]
    con.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_MEMSET VALUES (?,?,0,1,0,3,?,?,0,4096,?)",
        [(s, s + d, c, P, k) for s, d, c, k in memset],
    )
    con.commit()
    con.close()
    trace = Trace.open(path)
    yield trace
    trace.close()


def _run(trace: Trace, text: str, flt: EventFilter | None = None) -> StatsTable:
    return run_report(ReportContext(trace, flt or EventFilter()), parse_report_arg(text))


# ---------------------------------------------------------------------------------------------- gpu_gaps
def test_gpu_gaps_default_500ms_finds_nothing(tiny: Trace) -> None:
    table = _run(tiny, "gpu_gaps")
    assert table.rows == [] and not table.skipped
    assert table.labels == ["Row#", "Duration", "Start", "PID", "Device ID", "Context ID"]


def test_gpu_gaps_per_device_sorted_by_duration(tiny: Trace) -> None:
    # the nested kernel [200,300] inside [50,3ms] opens no gap; device 1's gap is reported with its context
    assert _run(tiny, "gpu_gaps:gap=1").rows == [
        (1, 9 * MS - 10, 10, PID, 1, 7),
        (2, 3 * MS, 5 * MS + 100, PID, 0, 1),
        (3, 2 * MS, 3 * MS, PID, 0, 1),
    ]


def test_gpu_gaps_threshold_is_strict_and_rows_limits(tiny: Trace) -> None:
    assert [r[1] for r in _run(tiny, "gpu_gaps:gap=2").rows] == [9 * MS - 10, 3 * MS]  # 2 ms is not > 2 ms
    assert _run(tiny, "gpu_gaps:gap=1:rows=1").rows == [(1, 9 * MS - 10, 10, PID, 1, 7)]
    assert len(_run(tiny, "gpu_gaps:gap=1:rows=-1").rows) == 3


def test_gpu_gaps_start_end_override_the_window(tiny: Trace) -> None:
    # only ops overlapping [4ms, 8.5ms) remain on device 0: [5ms, 5ms+100] and [8ms+100, 8ms+200]
    flt = EventFilter(start=0, end=1)  # a CLI window that start=/end= replace
    rows = _run(tiny, f"gpu_gaps:gap=1:start={4 * MS}:end={8 * MS + 500_000}", flt).rows
    assert rows == [(1, 3 * MS, 5 * MS + 100, PID, 0, 1)]


# ---------------------------------------------------------------------------------------------- gpu_time_util
def _util_trace(tmp_path: Path, kernels: list[tuple[int, int]]) -> Trace:
    path = tmp_path / "util.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE StringIds (id INTEGER PRIMARY KEY, value TEXT);
        CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INT, end INT, deviceId INT, contextId INT,
            correlationId INT, globalPid INT, demangledName INT, shortName INT, streamId INT);
        INSERT INTO StringIds VALUES (0, 'k');
    """)
    con.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?,?,0,1,0,?,0,0,7)", [(s, e, P) for s, e in kernels]
    )
    con.commit()
    con.close()
    return Trace.open(path)


def test_gpu_time_util_coalesces_low_chunks(tmp_path: Path) -> None:
    with _util_trace(tmp_path, [(1000, 1100), (1150, 1200), (1900, 2000)]) as trace:
        # chunks of 100 ns: #0 100 %, #1 50 %, #2..#8 0 %, #9 100 %
        assert _run(trace, "gpu_time_util:chunks=10").rows == [(1, 0.0, 700, 1200, PID, 0, 1)]  # 50 % is not < 50
        # with #1 included: (100*50 + 700*0) / 800 = 6.25, rounded half away from zero like SQLite -> 6.3
        assert _run(trace, "gpu_time_util:chunks=10:threshold=51").rows == [(1, 6.3, 800, 1100, PID, 0, 1)]
        assert _run(trace, "gpu_time_util:chunks=10:threshold=0").rows == []


def test_gpu_time_util_float_ceil_chunks_and_sort(tmp_path: Path) -> None:
    # range [1000, 2001], chunks=10 -> size ceil(100.1) = 101: the last chunk [1909, 2001) is 92 ns long
    ops = [(1000, 1101), (1111, 1141), (1202, 1303), (1404, 1505), (1606, 1707), (1808, 1909), (1960, 2001)]
    with _util_trace(tmp_path, ops) as trace:
        rows = _run(trace, "gpu_time_util:chunks=10:threshold=60").rows
        # low chunks: #1 30/101 = 29.7 %, #3 #5 #7 0 %, #9 41/92 = 44.6 %; none adjacent, so one row each
        assert rows == [
            (1, 0.0, 101, 1303, PID, 0, 1),
            (2, 0.0, 101, 1505, PID, 0, 1),
            (3, 0.0, 101, 1707, PID, 0, 1),
            (4, 29.7, 101, 1101, PID, 0, 1),
            (5, 44.6, 92, 1909, PID, 0, 1),
        ]
        # rows= applies to the groups in time order first (as nsys's inner LIMIT does), then to the sorted rows:
        # not the two lowest, but the first two, sorted
        assert _run(trace, "gpu_time_util:chunks=10:threshold=60:rows=2").rows == [
            (1, 0.0, 101, 1303, PID, 0, 1),
            (2, 29.7, 101, 1101, PID, 0, 1),
        ]


def test_gpu_time_util_chunks_range_is_checked(tmp_path: Path) -> None:
    with _util_trace(tmp_path, [(10, 20), (100, 110)]) as trace:
        with pytest.raises(UsageError):
            _run(trace, "gpu_time_util:chunks=1001")
        assert _run(trace, "gpu_time_util:chunks=0").rows == []  # nsys lets 0 through and finds nothing
        assert _run(trace, "gpu_time_util:chunks=1").rows == [(1, 20.0, 100, 10, PID, 0, 1)]


# ---------------------------------------------------------------------------------------------- memory rules
# Each memory rule has two engines: sqlite3 alone for small tables (no polars import), polars otherwise. Every
# hand-worked answer below is checked on both.
MEMORY_RULES = ("cuda_memcpy_async", "cuda_memcpy_sync", "cuda_memset_sync")


def _refuse_polars_reads(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the polars loader was used")


@pytest.fixture(params=["stdlib", "polars"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The memory rules' engine under test: the stdlib one (which must not read through polars), or polars (the
    stdlib one declining every table)."""
    if request.param == "stdlib":
        monkeypatch.setattr(Trace, "read_table", _refuse_polars_reads)
    else:
        monkeypatch.setattr(core, "SMALL_ROWS", 0)
    return str(request.param)


def test_cuda_memcpy_async_flags_pageable_runtime_copies(tiny: Trace, engine: str) -> None:
    table = _run(tiny, "cuda_memcpy_async")
    assert table.labels == [
        "Duration",
        "Start",
        "Src Kind",
        "Dst Kind",
        "Bytes",
        "PID",
        "Device ID",
        "Context ID",
        "Green Context ID",
        "Stream ID",
        "API Name",
    ]
    assert table.rows == [
        (50, 2000, "Device", "Pageable", 10, PID, 0, 1, 5, 3, "cudaMemcpyAsync_v3020"),
        (40, 4000, "Pageable", "Device", 10, PID, 0, 1, None, 3, "CUDAMEMCPYASYNC_x"),
        (30, 1000, "Pageable", "Device", 10, PID, 0, 1, None, 3, "cudaMemcpyAsync_v3020"),
    ]
    assert [r[0] for r in _run(tiny, "cuda_memcpy_async:rows=1").rows] == [50]


def test_memcpy_rule_joins_api_calls_outside_the_window(tiny: Trace, engine: str) -> None:
    # the API calls sit at 10 ms, outside [0, 2500): nsys joins them from the unfiltered runtime table
    assert [r[1] for r in _run(tiny, "cuda_memcpy_async:start=0:end=2500").rows] == [2000, 1000]


def test_cuda_memcpy_sync_skips_small_htod_and_same_device(tiny: Trace, engine: str) -> None:
    assert [(r[0], r[1], r[10]) for r in _run(tiny, "cuda_memcpy_sync").rows] == [
        (14, 7300, "cudaMemcpy_v3020"),
        (12, 7100, "cudaMemcpy_v3020"),
    ]


def test_cuda_memset_sync_pinned_or_managed_only(tiny: Trace, engine: str) -> None:
    table = _run(tiny, "cuda_memset_sync")
    assert table.rows == [
        (55, 8300, "Managed", 4096, PID, 0, 1, None, 3, "cudaMemset_v3020"),
        (25, 8000, "Pinned", 4096, PID, 0, 1, None, 3, "cudaMemset_v3020"),
    ]


ODD_MEMORY_ROWS = {
    # what each engine must treat alike: NULLs in the tested columns, operations without a call or with two calls,
    # a call recorded twice, and a text where an integer belongs (the stdlib engine declines; polars decides)
    "NULL kinds, bytes and devices": [
        "UPDATE CUPTI_ACTIVITY_KIND_MEMCPY SET srcKind = NULL WHERE start = 1000",
        "UPDATE CUPTI_ACTIVITY_KIND_MEMCPY SET bytes = NULL WHERE start = 7000",
        "UPDATE CUPTI_ACTIVITY_KIND_MEMCPY SET srcDeviceId = NULL WHERE start = 7200",
        "UPDATE CUPTI_ACTIVITY_KIND_MEMSET SET memKind = NULL WHERE start = 8000",
        "UPDATE CUPTI_ACTIVITY_KIND_MEMSET SET greenContextId = NULL, globalPid = NULL WHERE start = 8300",
    ],
    "NULL correlation ids": [
        "UPDATE CUPTI_ACTIVITY_KIND_MEMCPY SET correlationId = NULL WHERE start IN (2000, 7300)",
        "UPDATE CUPTI_ACTIVITY_KIND_MEMSET SET correlationId = NULL WHERE start = 8300",
    ],
    "a call recorded twice, two operations of one call": [
        "INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME SELECT start + 1, end + 1, eventClass, globalTid, correlationId, "
        "nameId, returnValue FROM CUPTI_ACTIVITY_KIND_RUNTIME WHERE correlationId IN (1, 12, 34)",
        "INSERT INTO CUPTI_ACTIVITY_KIND_MEMCPY SELECT start + 5, end + 5, deviceId, contextId, greenContextId, "
        "streamId, correlationId, globalPid, bytes, copyKind, srcKind, dstKind, srcDeviceId, dstDeviceId "
        "FROM CUPTI_ACTIVITY_KIND_MEMCPY WHERE correlationId IN (2, 14)",
    ],
    "equal durations": [
        "UPDATE CUPTI_ACTIVITY_KIND_MEMCPY SET end = start + 40",
        "UPDATE CUPTI_ACTIVITY_KIND_MEMSET SET end = start + 40",
    ],
    "a text correlation id in the runtime table": [
        "UPDATE CUPTI_ACTIVITY_KIND_RUNTIME SET correlationId = 'x' WHERE correlationId = 1",
    ],
}


DECLINED_MEMORY_ROWS = {"a text correlation id in the runtime table"}


@pytest.mark.parametrize("case", ODD_MEMORY_ROWS)
def test_memory_rules_engines_agree_on_odd_rows(case: str, tiny: Trace, monkeypatch: pytest.MonkeyPatch) -> None:
    with sqlite3.connect(tiny.path) as con:
        for statement in ODD_MEMORY_ROWS[case]:
            con.execute(statement)
    trace = Trace.open(tiny.path)
    try:
        for rule in MEMORY_RULES:
            for args in ("", ":rows=1", ":rows=-1", ":start=0:end=7150"):
                with monkeypatch.context() as m:
                    if case not in DECLINED_MEMORY_ROWS:  # the stdlib engine answers: polars may not read
                        m.setattr(Trace, "read_table", _refuse_polars_reads)
                    fast = _run(trace, rule + args).rows
                with monkeypatch.context() as m:
                    m.setattr(core, "SMALL_ROWS", 0)
                    slow = _run(trace, rule + args).rows
                assert fast == slow, f"{case}: {rule}{args}"
                assert [tuple(map(type, r)) for r in fast] == [tuple(map(type, r)) for r in slow]
    finally:
        trace.close()


def test_memory_rules_stdlib_engine_declines_a_big_table(tiny: Trace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "SMALL_ROWS", 3)  # the memcpy table's 10 rows are too many; the memset table's 4 too
    reads: list[str] = []
    real = Trace.read_table

    def spy(self: Trace, table: str, *args: object, **kwargs: object) -> object:
        reads.append(table)
        return real(self, table, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Trace, "read_table", spy)
    assert [r[0] for r in _run(tiny, "cuda_memcpy_sync").rows] == [14, 12]
    assert "CUPTI_ACTIVITY_KIND_MEMCPY" in reads


# ---------------------------------------------------------------------------------------------- cuda_api_sync
def test_cuda_api_sync_process_and_thread(tiny: Trace) -> None:
    everything = [(r[0], r[2], r[3]) for r in _run(tiny, "cuda_api_sync").rows]
    assert everything == [(70, PID, 11), (60, PID2, PID2), (50, PID, PID), (40, PID, PID)]  # no EventSynchronize
    assert [r[0] for r in _run(tiny, f"cuda_api_sync:process={PID}").rows] == [70, 50, 40]
    assert [r[0] for r in _run(tiny, "cuda_api_sync:thread=11").rows] == [70]
    assert [r[0] for r in _run(tiny, "cuda_api_sync:rows=2").rows] == [70, 60]


# ---------------------------------------------------------------------------------------------- skips, helpers
def test_rules_skip_without_their_tables(tmp_path: Path) -> None:
    with _util_trace(tmp_path, [(0, 10)]) as trace:
        for rule in ("cuda_memcpy_async", "cuda_memcpy_sync", "cuda_memset_sync", "cuda_api_sync", "dx12_mem_ops"):
            table = _run(trace, rule)
            assert table.rows == [] and table.skipped, rule


def test_like_and_sqlite_sum() -> None:
    assert like_regex("cudaMemcpy%Async%").fullmatch("CUDAmemcpy2DAsync_v3020")
    assert not like_regex("cudaMemcpy%Async%").fullmatch("cudaMemcpy_v3020")
    assert like_regex("a_c").fullmatch("abc") and not like_regex("a_c").fullmatch("abbc")
    # compensated summation keeps the small terms that a naive left-to-right sum loses
    assert sqlite_sum([1e16, 1.0, -1e16, 1.0]) == 2.0
