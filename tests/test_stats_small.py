"""Summary reports on small traces: the stdlib path (``core.small_rows`` + ``aggregate.small_grouped_stats``, no
polars) gives the very rows of the polars path (``grouped_stats``, which the nsys goldens check; standard deviations
to the last bits, ``STD_REL``), on every small trace at hand, with and without filters; it declines (the polars
path decides) on damaged or unusual tables, and a summary of the bundled sample imports no polars at all."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nsys_doctor.stats import ReportContext, aggregate, core, parse_report_arg, run_report
from nsys_doctor.stats.api import small_api_calls, small_api_named
from nsys_doctor.stats.exec import _small_launch_stats
from nsys_doctor.stats.gpu_rules import _small_sources
from nsys_doctor.stats.kernels import small_kernels, small_kernels_named
from nsys_doctor.stats.memops import small_memory_groups, small_memory_named, small_memory_ops
from nsys_doctor.stats.nvtx import _small_ranges
from nsys_doctor.trace import Trace
from nsys_doctor.trace.schema import nsys_api_name
from nsys_doctor.trace.window import EventFilter, event_filter, parse_filter_nvtx

from .conftest import DATA, SAMPLE, TRACES, needs_shared, open_trace
from .test_fuzz import MC, MS, K, N, R, both, mutated_copy, set_values, sql

OSRT = "OSRT_API"
GPU_OPS = ((K, 5), (MC, 5), (MS, 5), ("PROFILER_OVERHEAD", 4))
# every report given a stdlib path: the tables it reads, each with the number of values a row gives (see is_small)
REPORTS: dict[str, tuple[tuple[str, int], ...]] = {
    "cuda_gpu_kern_sum": ((K, 2),),
    "cuda_gpu_kern_sum:base": ((K, 2),),
    "cuda_gpu_kern_sum:mangled": ((K, 2),),
    "cuda_gpu_kern_gb_sum": ((K, 8),),
    "cuda_gpu_kern_gb_sum:base": ((K, 8),),
    "cuda_api_sum": ((R, 2),),
    "cuda_gpu_mem_time_sum": ((MC, 2), (MS, 1)),
    "cuda_gpu_mem_size_sum": ((MC, 2), (MS, 1)),
    "cuda_gpu_sum": ((K, 2), (MC, 2), (MS, 1)),
    "cuda_gpu_sum:mangled": ((K, 2), (MC, 2), (MS, 1)),
    "cuda_api_gpu_sum": ((R, 2), (K, 2), (MC, 2), (MS, 1)),
    "osrt_sum": ((OSRT, 3),),
    "nvtx_sum": ((N, 7),),
    "cuda_api_sync": ((R, 4),),
    "cuda_api_sync:rows=2": ((R, 4),),
    "cuda_api_sync:process=0": ((R, 4),),
    "cuda_api_sync:rows=-1:thread=1": ((R, 4),),
    "cuda_kern_exec_sum": ((K, 6), (R, 5)),
    "cuda_kern_exec_sum:base": ((K, 6), (R, 5)),
    "cuda_kern_exec_sum:mangled": ((K, 6), (R, 5)),
    "nvtx_kern_sum": ((N, 8), (K, 5), (R, 4)),
    "nvtx_kern_sum:base": ((N, 8), (K, 5), (R, 4)),
    "nvtx_gpu_proj_sum": ((N, 8), (K, 4), (MC, 4), (MS, 4), (R, 4)),
    "gpu_gaps": GPU_OPS,
    "gpu_gaps:gap=0": GPU_OPS,
    "gpu_gaps:gap=0:rows=3": GPU_OPS,
    "gpu_time_util": GPU_OPS,
    "gpu_time_util:threshold=90:chunks=7": GPU_OPS,
    "gpu_time_util:threshold=100:chunks=1000:rows=-1": GPU_OPS,
    "gpu_time_util:threshold=80:rows=2": GPU_OPS,
}
MAX_FILE = 64 << 20  # traces above this size are not "small"


def _rows(path: Path, table: str) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        try:
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.Error:
            return 0


def _traces() -> list[Path]:
    found = [SAMPLE, *sorted(DATA.rglob("*.sqlite"))]
    if TRACES.is_dir():
        found += sorted(p for p in TRACES.rglob("*.sqlite") if p.stat().st_size <= MAX_FILE)
    return found


def _small(path: Path, report: str) -> bool:
    """Whether every table ``report`` reads is within the stdlib path's limit (absent or empty tables are)."""
    return all(core.is_small(_rows(path, table), width) for table, width in REPORTS[report])


def _refuse_polars_reads(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the polars loader was used")


class Rows(list):  # type: ignore[type-arg]
    """A report's rows, with the positions of its standard deviation columns (``std``)."""

    std: frozenset[int] = frozenset()


def _rows_of(table: core.StatsTable) -> Rows:
    rows = Rows(table.rows)
    rows.std = frozenset(i for i, c in enumerate(table.columns) if "StdDev" in c.label)
    return rows


def _both(ctx: ReportContext, report: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple], list[tuple]]:
    """(rows of the stdlib path, which must not read a table through polars; rows of the polars path)."""
    req = parse_report_arg(report)
    with monkeypatch.context() as m:
        m.setattr(Trace, "read_table", _refuse_polars_reads)
        fast = _rows_of(run_report(ctx, req))
    with monkeypatch.context() as m:
        m.setattr(core, "SMALL_ROWS", 0)
        slow = _rows_of(run_report(ctx, req))
    return fast, slow


STD_REL = 1e-12
"""How far a float cell of the two paths may differ: the standard deviations. The stdlib path runs Welford's update
in table order, as nsys's SQLite ``stdev`` does; polars' ``std`` may differ in the last bits (27 memsets of
``train_gpt2_whole``: 4870.885875072133 against 4870.885875072131, exactly 4870.885875072132). Every other cell
is equal."""


def _same(fast: list[tuple], slow: list[tuple], what: str) -> None:
    std = getattr(fast, "std", frozenset())  # the standard deviation columns, when the rows came from ``_both``
    if fast != slow and len(fast) == len(slow):
        off = [
            (i, a, b)
            for r, q in zip(fast, slow, strict=True)
            for i, (a, b) in enumerate(zip(r, q, strict=True))
            if a != b and not (i in std and type(a) is type(b) is float and abs(a - b) <= STD_REL * max(abs(a), abs(b)))
        ]
        assert not off and all(len(r) == len(q) for r, q in zip(fast, slow, strict=True)), (what, off[:3])
    else:
        assert fast == slow, what
    # the very same Python types too (an int total is not a float total: renderers print them differently)
    assert [tuple(map(type, r)) for r in fast] == [tuple(map(type, r)) for r in slow], what


def _nvtx_filter(trace: Trace) -> EventFilter | None:
    """The --filter-nvtx of a range in the middle of the trace (a name that --filter-nvtx can spell), or None."""
    from nsys_doctor.trace.tables import nvtx_ranges

    ranges = nvtx_ranges(trace, S_all=True)
    if not ranges.height:
        return None
    ranges = ranges.sort("start", maintain_order=True)
    for row in ranges.slice(ranges.height // 2).iter_rows(named=True):
        text, domain = row["text"], row["domain"]
        if not text or any(c in text + (domain or "") for c in "@/\\"):
            continue
        spec = text if domain is None else f"{text}@{domain}"
        same = ranges.filter(
            (ranges["text"] == text) & (ranges["domain"].is_null() if domain is None else ranges["domain"] == domain)
        )
        index = same["start"].to_list().index(row["start"])
        assert parse_filter_nvtx(f"{spec}/{index}")[0] == text
        return event_filter(trace, None, f"{spec}/{index}")
    return None


def _filters(trace: Trace) -> Iterator[tuple[str, EventFilter]]:
    yield "no filter", EventFilter()
    lo, hi = trace.rows(f'SELECT min(start), max("end") FROM {K}')[0] if trace.schema.has(K) else (None, None)
    if lo is not None and hi is not None and hi > lo:
        third = (hi - lo) // 3
        yield "--filter-time", event_filter(trace, f"{lo + third}ns/{hi - third}ns", None)
    flt = _nvtx_filter(trace)
    if flt is not None:
        yield "--filter-nvtx", flt


@pytest.mark.parametrize("path", _traces(), ids=lambda p: p.name)
def test_stdlib_rows_are_the_polars_rows(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reports = [r for r in REPORTS if _small(path, r)]
    if not reports:
        pytest.skip(f"{path.name}: no table small enough")
    trace = open_trace(path)
    for label, flt in _filters(trace):
        for report in reports:
            fast, slow = _both(ReportContext(trace, flt), report, monkeypatch)
            _same(fast, slow, f"{path.name} {report} ({label})")


def _empty_on_sample(report: str) -> bool:
    """The sample has no OS runtime table, no synchronization call (its token is read back in a graph) and no GPU
    idle for 500 ms."""
    return report in ("osrt_sum", "gpu_gaps") or report.startswith("cuda_api_sync")


def test_the_sample_takes_the_stdlib_path_for_every_report_with_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    trace = open_trace(SAMPLE)
    for report in REPORTS:
        fast, _ = _both(ReportContext(trace, EventFilter()), report, monkeypatch)
        assert fast or _empty_on_sample(report), report


def test_large_tables_take_the_polars_path(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = ReportContext(open_trace(SAMPLE), EventFilter())
    monkeypatch.setattr(core, "SMALL_ROWS", 10)
    assert small_kernels(ctx) is None
    assert small_api_calls(ctx) is None
    assert small_memory_ops(ctx, "dur") is None
    assert _small_ranges(ctx) is None
    assert _small_launch_stats(ctx) is None
    assert _small_sources(ctx) is None
    for report in REPORTS:
        assert run_report(ctx, parse_report_arg(report)).rows or _empty_on_sample(report), report


def test_engine_declines_what_it_cannot_reproduce() -> None:
    assert aggregate.small_grouped_stats([("a", 1), ("a", 2**52)], ["k"]) is None  # not exact in a double
    assert aggregate.small_grouped_stats([("a", 1), ("a", -(2**52))], ["k"]) is None
    assert aggregate.small_grouped_stats([("a", 1), (None, 2)], ["k"]) is None  # a NULL key
    assert aggregate.small_grouped_stats([("a", 1.5)], ["k"]) is None  # not an integer
    assert aggregate.small_grouped_stats([("a", "7")], ["k"]) is None
    big = [("a", 2**52 - 1)] * 2100  # a sum beyond 64 bits
    assert aggregate.small_grouped_stats(big, ["k"]) is None
    groups = aggregate.small_grouped_stats([("a", "x", None), ("a", "y", 4), ("b", "z", None)], ["k"], ["f"], "len")
    assert groups == [
        {"k": "a", "f": "x", "n": 1, "total": 4, "med": 4.0, "min": 4, "max": 4, "std": None, "len": 2},
        {"k": "b", "f": "z", "n": 0, "total": 0, "med": None, "min": None, "max": None, "std": None, "len": 1},
    ]


def test_engine_is_polars_bit_for_bit() -> None:
    """Medians and the (unrounded) standard deviation, as cuda_gpu_mem_size_sum prints them, equal polars'."""
    import random

    import polars as pl

    rng = random.Random(7)
    rows = [(rng.randrange(40), rng.choice([rng.randrange(10 ** rng.randrange(1, 13)), 4096])) for _ in range(20_000)]
    small = aggregate.small_grouped_stats(rows, ["k"])
    df = pl.DataFrame(rows, schema={"k": pl.Int64, "v": pl.Int64}, orient="row")
    assert small == list(aggregate.grouped_stats(df, ["k"], "v").iter_rows(named=True))


def test_engine_on_two_keys_from_an_iterator_and_groups_of_one() -> None:
    """Rows of two keys, given as a generator (read twice by the engine's two-key path, so it must hold them),
    most groups a single row (the shortcut for one value): the same groups as polars, in the same order."""
    import random

    import polars as pl

    rng = random.Random(11)
    rows = [(f"r{rng.randrange(3000)}", rng.choice("ab"), rng.randrange(10**9)) for _ in range(4000)]
    small = aggregate.small_grouped_stats((r for r in rows), ["name", "style"])
    df = pl.DataFrame(rows, schema={"name": pl.Utf8, "style": pl.Utf8, "v": pl.Int64}, orient="row")
    assert small == list(aggregate.grouped_stats(df, ["name", "style"], "v").iter_rows(named=True))
    assert sum(g["n"] == 1 for g in small or []) > 1000
    # a group of one value declines as a longer group does: not an integer, or not exact in a double
    assert aggregate.small_grouped_stats([("a", "b", 1.0)], ["k", "j"]) is None
    assert aggregate.small_grouped_stats([("a", 2**52)], ["k"]) is None
    assert aggregate.small_grouped_stats([("a", None, 3)], ["k", "j"]) is None  # a NULL in a key of two


COPY_KINDS = {
    # copyKind values set on every third copy (the sample's copies are all device to device, kind 8)
    "another kind": ("1", ["[CUDA memcpy Device-to-Device]", "[CUDA memcpy Host-to-Device]"]),
    "NULL kind": ("NULL", ["[CUDA memcpy Device-to-Device]", "[CUDA memcpy Unknown]"]),
    "two unknown numbers": ("98 + rowid % 2", ["[CUDA memcpy Device-to-Device]", "[CUDA memcpy Unknown]"]),
}


@pytest.mark.parametrize("case", COPY_KINDS)
def test_memory_groups_by_kind_are_the_groups_by_name(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stdlib path groups copies by their kind's number and names each group once; where a kind is NULL or two
    numbers share a label ("Unknown") it groups by the label, as the polars path does: the same rows either way."""
    value, names = COPY_KINDS[case]
    trace = Trace.open(mutated_copy(SAMPLE, tmp_path / "kinds.sqlite", set_values(MC, "copyKind", value, every=3)))
    try:
        ctx = ReportContext(trace, EventFilter())
        for column in ("bytes", "dur"):
            groups = small_memory_groups(ctx, column)
            assert groups is not None, case  # still the stdlib path
            assert sorted(g["name"] for g in groups) == [*names, "[CUDA memset]"], case
        for report in ("cuda_gpu_mem_time_sum", "cuda_gpu_mem_size_sum"):
            fast = run_report(ReportContext(trace, EventFilter()), parse_report_arg(report)).rows
            with monkeypatch.context() as m:
                m.setattr(core, "SMALL_ROWS", 0)
                slow = run_report(ReportContext(trace, EventFilter()), parse_report_arg(report)).rows
            assert len(fast) == 3
            _same(fast, slow, f"{case}: {report}")
    finally:
        trace.close()


# ------------------------------------------------------------------------------------------- damaged or odd tables
def test_groups_read_in_parts_are_the_groups_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A table grouped in rowid ranges on parallel connections (``GROUP_PART_ROWS``): the same groups in the same
    order with their values in table order, as grouped in one query."""
    ctx = ReportContext(open_trace(SAMPLE), EventFilter())
    whole = core.small_kernel_groups(ctx), core.small_groups(ctx, MS, None)
    monkeypatch.setattr(core, "GROUP_PART_ROWS", 8)  # 17 memsets: two parts too
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    parts = ctx.trace.rows_in_parts(K, "SELECT count(*) FROM " + K + " WHERE {range}", core.GROUP_PART_ROWS)
    assert len(parts) == 2  # two parts, one row each
    assert (core.small_kernel_groups(ctx), core.small_groups(ctx, MS, None)) == whole


def _no_affinity(table: str, column: str, to: str = "{c} * 1.0") -> Callable[[sqlite3.Connection], None]:
    """``column`` moved to a column of no type (no affinity: a REAL 5.0 or a TEXT '5' stays what it is), the last
    of its most frequent value's rows set to ``to`` (of ``{c}``, the column; default: that value as a REAL): a group
    of integer 5s with one REAL 5.0 among them, which SQLite's grouping names by an integer (the value of its first
    row)."""
    c = f'"{column}"'
    return sql(
        f'ALTER TABLE {table} RENAME COLUMN {c} TO "_old"',
        f"ALTER TABLE {table} ADD COLUMN {c}",
        f'UPDATE {table} SET {c} = "_old"',
        f"UPDATE {table} SET {c} = {to.format(c=c)} WHERE rowid = (SELECT max(rowid) FROM {table} WHERE "
        f"{c} = (SELECT {c} FROM {table} GROUP BY 1 ORDER BY count(*) DESC LIMIT 1))",
    )


DECLINED = {
    # (mutation, what declines: one path or several): damaged rows, NULL or mistyped values, values not exact in a
    # double
    "kernel end < start": (set_values(K, "end", '"start" - 5'), ("kernels", "kern_groups")),
    "kernel NULL name": (set_values(K, "demangledName", "NULL"), ("kernels", "kern_groups")),
    "kernel name with no string": (set_values(K, "demangledName", "987654321"), ("kernels", "kern_groups")),
    "kernel huge duration": (set_values(K, "end", '"start" + 4503599627370496'), "kern_sum"),
    "kernel NULL grid": (set_values(K, "gridX", "NULL"), "kern_gb"),
    "kernel text grid": (set_values(K, "blockY", "'x'"), "kern_gb"),
    "string NULL value": (
        both(
            set_values("StringIds", "value", "value", every=1),  # rebuilt without NOT NULL
            sql(f"UPDATE StringIds SET value = NULL WHERE id IN (SELECT demangledName FROM {K} LIMIT 1)"),
        ),
        "kernels",
    ),
    "api NULL nameId": (set_values(R, "nameId", "NULL"), ("api", "api_groups")),
    "api text start": (set_values(R, "start", "'soon'"), ("api", "api_groups")),
    "memcpy NULL bytes": (set_values(MC, "bytes", "NULL", every=3), ("mem_bytes", "copy_groups")),
    "memset text bytes": (set_values(MS, "bytes", "'many'", every=3), ("mem_bytes", "set_groups")),
    "memcpy huge bytes": (set_values(MC, "bytes", "4503599627370496", every=3), "mem_bytes"),
    "memcpy real copyKind": (set_values(MC, "copyKind", "1.5", every=3), "mem_dur"),
    "nvtx text domain": (set_values(N, "domainId", "'d'", every=3), "nvtx"),
    "nvtx missing string": (set_values(N, "textId", "987654321", every=5), "nvtx"),
    "nvtx real end": (set_values(N, "end", '"end" + 0.5', every=5), "nvtx"),
    "kernel negative globalPid": (set_values(K, "globalPid", '-"globalPid"', every=7), "launches"),
    "api negative globalTid": (set_values(R, "globalTid", '-"globalTid"', every=7), "launches"),
    "api NULL correlationId": (set_values(R, "correlationId", "NULL", every=7), "launches"),
    "kernel NULL deviceId": (set_values(K, "deviceId", "NULL", every=7), "gpu_ops"),
    "memcpy negative globalPid": (set_values(MC, "globalPid", '-"globalPid"', every=3), "gpu_ops"),
    # the damage that ``small_groups`` tests on the groups, not on the rows (and the cases above marked so)
    "kernel REAL start": (set_values(K, "start", '"start" + 0.5'), "kern_groups"),
    "kernel TEXT end": (set_values(K, "end", "'later'"), "kern_groups"),
    "kernel BLOB start": (set_values(K, "start", "x'00ff'"), "kern_groups"),
    "kernel NULL end": (set_values(K, "end", "NULL"), "kern_groups"),
    "kernel NULL end, a whole group": (
        both(
            set_values(K, "end", '"end"'),
            sql(
                f'UPDATE {K} SET "end" = NULL WHERE demangledName = '
                f"(SELECT demangledName FROM {K} ORDER BY rowid LIMIT 1)"
            ),
        ),
        "kern_groups",
    ),
    "kernel REAL name": (set_values(K, "demangledName", '"demangledName" + 0.5'), "kern_groups"),
    "kernel REAL name equal to an integer": (_no_affinity(K, "demangledName"), "kern_groups"),
    "kernel TEXT name": (set_values(K, "demangledName", "'k'"), "kern_groups"),
    "kernel name below the strings": (set_values(K, "demangledName", "-1"), "kern_groups"),
    "api REAL end": (set_values(R, "end", '"end" + 0.25'), "api_groups"),
    "api REAL nameId equal to an integer": (_no_affinity(R, "nameId"), "api_groups"),
    "memcpy REAL bytes": (set_values(MC, "bytes", '"bytes" + 0.5', every=3), "copy_groups"),
    "memcpy TEXT bytes of digits": (_no_affinity(MC, "bytes", "CAST({c} AS TEXT)"), "copy_groups"),
    "memcpy REAL copyKind equal to an integer": (_no_affinity(MC, "copyKind"), "copy_groups"),
    "memcpy end < start": (set_values(MC, "end", '"start" - 1', every=3), ("copy_groups", "copy_time_groups")),
    "memset REAL start": (set_values(MS, "start", '"start" + 0.5', every=3), "set_groups"),
}
SMALL_PATHS = {
    "kernels": lambda ctx: small_kernels(ctx),
    "kern_sum": lambda ctx: aggregate.small_grouped_stats(small_kernels(ctx) or [], ["name"]),
    "kern_gb": lambda ctx: small_kernels(ctx, ("gridX", "blockY")),
    "api": lambda ctx: small_api_calls(ctx),
    "mem_bytes": lambda ctx: _grouped(small_memory_ops(ctx, "bytes")),
    "mem_dur": lambda ctx: small_memory_ops(ctx, "dur"),
    "nvtx": lambda ctx: _small_ranges(ctx),
    "launches": lambda ctx: _small_launch_stats(ctx),
    "gpu_ops": lambda ctx: _small_sources(ctx),
    "kern_groups": lambda ctx: core.small_kernel_groups(ctx),
    "api_groups": lambda ctx: core.small_groups(ctx, R, "nameId"),
    "copy_groups": lambda ctx: core.small_groups(ctx, MC, "copyKind", "bytes"),
    "copy_time_groups": lambda ctx: core.small_groups(ctx, MC, "copyKind"),
    "set_groups": lambda ctx: core.small_groups(ctx, MS, None, "bytes"),
}


def _outcome(run: Callable[[], list[tuple]]) -> list[tuple] | type[BaseException]:
    """The rows, or the type of the exception raised."""
    try:
        return run()
    except Exception as exc:
        return type(exc)


def _grouped(rows: list[tuple] | None) -> object:
    return None if rows is None else aggregate.small_grouped_stats(rows, ["name"])


def _as_the_polars_path(trace: Trace, reports: Iterable[str], name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each report gives what the polars path gives (its rows, or its error)."""
    for report in reports:
        req = parse_report_arg(report)
        fast = _outcome(lambda r=req: run_report(ReportContext(trace, EventFilter()), r).rows)
        with monkeypatch.context() as m:
            m.setattr(core, "SMALL_ROWS", 0)
            slow = _outcome(lambda r=req: run_report(ReportContext(trace, EventFilter()), r).rows)
        if isinstance(slow, list) and isinstance(fast, list):
            _same(fast, slow, f"{name}: {report}")
        else:
            assert fast == slow, f"{name}: {report}"


@pytest.mark.parametrize("name", DECLINED)
def test_guards_decline_damaged_or_odd_tables(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mutation, paths = DECLINED[name]
    trace = Trace.open(mutated_copy(SAMPLE, tmp_path / "damaged.sqlite", mutation))
    try:
        ctx = ReportContext(trace, EventFilter())
        for path in (paths,) if isinstance(paths, str) else paths:
            assert SMALL_PATHS[path](ctx) is None, (name, path)
        _as_the_polars_path(trace, REPORTS, name, monkeypatch)
    finally:
        trace.close()


def _grouped_in_python(rows: list[tuple] | None) -> list[tuple[Any, list[int]]] | None:
    """Rows ``(key, value)`` grouped here: (key, values in table order) in order of each key's first row."""
    if rows is None:
        return None
    groups: dict[Any, list[int]] = {}
    for key, value in rows:
        groups.setdefault(key, []).append(value)
    return list(groups.items())


@pytest.mark.parametrize("variant", ["", "base"])
def test_summaries_grouped_by_sqlite_are_the_rows_grouped_here(variant: str) -> None:
    """The sample's kernels, calls, copies and memsets grouped by SQLite (``small_groups``): the groups of the rows
    read one by one (``small_rows``), grouped here: the same groups in the same order, their values in table
    order."""
    ctx = ReportContext(open_trace(SAMPLE), EventFilter(), frozenset({variant} - {""}))
    kernels = core.small_kernel_groups(ctx)
    assert kernels is not None and len(kernels) > 10
    assert kernels == _grouped_in_python(core.small_kernel_rows(ctx, [core.DURATION]))
    calls = core.small_groups(ctx, R, "nameId")
    assert calls is not None and len(calls) > 3
    assert calls == _grouped_in_python(core.small_rows(ctx, R, ["nameId", core.DURATION]))
    copies = core.small_groups(ctx, MC, "copyKind", "bytes")
    assert copies and copies == _grouped_in_python(core.small_rows(ctx, MC, ["copyKind", "bytes"], names=False))
    sets = core.small_groups(ctx, MS, None)
    assert sets and sets == _grouped_in_python([(0, d) for (d,) in core.small_rows(ctx, MS, [core.DURATION]) or []])
    # and per name: kernels (their names), calls (as nsys shows them), copies and memsets (their operation names)
    assert small_kernels_named(ctx) == _grouped_in_python(small_kernels(ctx))
    shown = [(nsys_api_name(name), dur) for _, name, dur in small_api_calls(ctx) or []]
    assert small_api_named(ctx) == _grouped_in_python(shown)
    assert small_memory_named(ctx, "bytes") == _grouped_in_python(small_memory_ops(ctx, "bytes"))
    # the mangled name (a coalesce of two columns) and a filter are read row by row
    assert core.small_kernel_groups(ReportContext(ctx.trace, EventFilter(), frozenset({"mangled"}))) is None
    lo, hi = ctx.trace.rows(f'SELECT min(start), max("end") FROM {K}')[0]
    window = event_filter(ctx.trace, f"{lo}ns/{(lo + hi) // 2}ns", None)
    assert core.small_kernel_groups(ReportContext(ctx.trace, window)) is None


REPRODUCED = {
    # what the polars path treats in a way the stdlib path reproduces exactly: it takes these
    "memcpy NULL copyKind": (set_values(MC, "copyKind", "NULL", every=3), ["cuda_gpu_mem_time_sum", "cuda_gpu_sum"]),
    "nvtx open ranges": (set_values(N, "end", "NULL", every=4), ["nvtx_sum"]),
    "nvtx every range open": (sql(f'UPDATE {N} SET "end" = NULL'), ["nvtx_sum"]),
    "nvtx domains on two threads": (
        sql(
            f"INSERT INTO {N} (start, eventType, globalTid, domainId, text) "
            f"SELECT min(start), 75, globalTid, 7, 'dom' FROM {N} WHERE eventType = 59 GROUP BY globalTid",
            f"INSERT INTO {N} (start, eventType, globalTid, domainId, text) "
            f"SELECT min(start) + 1, 75, globalTid + 1, 7, 'dom2' FROM {N} WHERE eventType = 59 GROUP BY globalTid",
            f"UPDATE {N} SET domainId = 7 WHERE eventType = 59 AND rowid % 3 = 0",
        ),
        ["nvtx_sum"],
    ),
    "nvtx ranges nested, twinned and empty": (
        sql(
            # a parent around every range, a twin of every range (the two contain each other: a cycle of parents),
            # and a child range without GPU work at the start of every range
            f'INSERT INTO {N} (start, "end", eventType, globalTid, text, domainId) '
            f"SELECT start - 1, \"end\" + 1, 59, globalTid, 'outer', domainId FROM {N} WHERE eventType = 59",
            f'INSERT INTO {N} (start, "end", eventType, globalTid, text, domainId) SELECT start, "end", 59, '
            f"globalTid, 'twin', domainId FROM {N} WHERE eventType = 59 AND text IS NOT 'outer'",
            f'INSERT INTO {N} (start, "end", eventType, globalTid, text, domainId) SELECT start, start + 1, 59, '
            f"globalTid, 'empty', domainId FROM {N} WHERE eventType = 59 AND text NOT IN ('outer', 'twin')",
        ),
        ["nvtx_gpu_proj_sum", "nvtx_kern_sum", "nvtx_sum"],
    ),
    # damage in a column the report does not read: the polars path does not see it either (it tests the columns it
    # reads), so both give every row
    "kernel short name with no string": (
        set_values(K, "shortName", "987654321"),
        ["cuda_gpu_kern_sum", "cuda_gpu_kern_gb_sum", "cuda_gpu_kern_sum:mangled"],
    ),
    "short name's string NULL": (
        both(
            set_values("StringIds", "value", "value", every=1),  # rebuilt without NOT NULL
            sql(f"UPDATE StringIds SET value = NULL WHERE id IN (SELECT shortName FROM {K} LIMIT 1)"),
        ),
        ["cuda_gpu_kern_sum", "cuda_gpu_kern_gb_sum"],
    ),
    # the kernel summaries group by name id, then name the groups: two ids of one name must make one group
    "kernel names shared by two ids": (
        sql(
            "INSERT INTO StringIds (id, value) SELECT 900000 + id, value FROM StringIds "
            f"WHERE id IN (SELECT demangledName FROM {K})",
            f"UPDATE {K} SET demangledName = 900000 + demangledName WHERE rowid % 2 = 0",
        ),
        ["cuda_gpu_kern_sum", "cuda_gpu_kern_gb_sum"],
    ),
    # a kernel named as nsys names memsets: one group in cuda_gpu_sum, its kernels' values then the memsets'
    "a kernel named [CUDA memset]": (
        sql(f"UPDATE StringIds SET value = '[CUDA memset]' WHERE id = (SELECT demangledName FROM {K} LIMIT 1)"),
        ["cuda_gpu_sum", "cuda_api_gpu_sum"],
    ),
    "api names shared by two ids": (
        sql(
            "INSERT INTO StringIds (id, value) SELECT 900000 + id, value FROM StringIds "
            f"WHERE id IN (SELECT nameId FROM {R})",
            f"UPDATE {R} SET nameId = 900000 + nameId WHERE rowid % 2 = 0",
        ),
        ["cuda_api_sum", "cuda_api_gpu_sum"],
    ),
}


@pytest.mark.parametrize("name", REPRODUCED)
def test_stdlib_path_reproduces_nulls_and_duplicates(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutation, reports = REPRODUCED[name]
    trace = Trace.open(mutated_copy(SAMPLE, tmp_path / "odd.sqlite", mutation))
    try:
        for report in reports:
            fast, slow = _both(ReportContext(trace, EventFilter()), report, monkeypatch)
            assert fast, f"{name}: {report}"
            _same(fast, slow, f"{name}: {report}")
    finally:
        trace.close()


# ------------------------------------------------------------------------------------------------- no polars at all
@pytest.mark.parametrize(
    "report",
    [
        *REPORTS,
        "nvtx_kern_sum/no NVTX",
        "nvtx_gpu_proj_sum/no NVTX",
        "cuda_memcpy_async",
        "cuda_memcpy_sync",
        "cuda_memset_sync",
    ],
)
def test_summary_of_the_sample_needs_no_polars(report: str, tmp_path: Path) -> None:
    """`stats -r REPORT SAMPLE` in a fresh interpreter imports no polars (nor numpy, pyarrow); the reports whose
    table is absent (osrt_sum on the sample; the NVTX reports on a trace without NVTX) decide SKIPPED without it."""
    sample = SAMPLE
    if report.endswith("/no NVTX"):
        report = report.split("/")[0]
        sample = mutated_copy(SAMPLE, tmp_path / "no_nvtx.sqlite", sql(f"DROP TABLE {N}"))
    code = (
        "import sys; from nsys_doctor.cli.main import main; rc = main(sys.argv[1:]); "
        "print('LOADED', ' '.join(m for m in ('polars', 'numpy', 'pyarrow') if m in sys.modules), file=sys.stderr); "
        "sys.exit(rc)"
    )
    for fmt in ("column", "csv"):
        proc = subprocess.run(
            [sys.executable, "-c", code, "stats", str(sample), "-r", report, "-f", fmt],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout or "SKIPPED" in proc.stderr
        assert proc.stderr.rsplit("LOADED", 1)[1].split() == [], f"{report} -f {fmt}"


def test_engines_decline_past_their_work_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of ranges left open on one thread, or operations that each span many chunks, would make the stdlib
    sweeps quadratic: past their bound they decline, and the reports give the polars path's rows."""
    from nsys_doctor.stats import gpu_rules, nvtx

    trace = open_trace(SAMPLE)
    ctx = ReportContext(trace, EventFilter())
    assert nvtx._small_kernel_groups(ctx) is not None
    monkeypatch.setattr(nvtx, "SMALL_SWEEP", 5)
    monkeypatch.setattr(gpu_rules, "SMALL_CHUNK_VISITS", 5)
    assert nvtx._small_kernel_groups(ctx) is None
    assert nvtx._small_projection_groups(ctx, [K, MC, MS]) is None
    sources = gpu_rules._small_sources(ctx)
    assert sources and gpu_rules._small_low_chunks(sources[0][1], 30, 50) is None
    for report in ("nvtx_kern_sum", "nvtx_gpu_proj_sum", "gpu_time_util", "gpu_time_util:chunks=1000:threshold=100"):
        req = parse_report_arg(report)
        fast = run_report(ReportContext(trace, EventFilter()), req).rows
        with monkeypatch.context() as m:
            m.setattr(core, "SMALL_ROWS", 0)
            slow = run_report(ReportContext(trace, EventFilter()), req).rows
        assert fast, report
        _same(fast, slow, report)


# ------------------------------------------------------------------------------------ a few kept rows of a big table
SYNC_CALLS = (
    "SELECT count(*) FROM {R} r JOIN StringIds s ON s.id = r.nameId WHERE s.value LIKE 'cuda{what}Synchronize%'"
)


def _sync_calls(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        return sum(int(con.execute(SYNC_CALLS.format(R=R, what=w)).fetchone()[0]) for w in ("Device", "Stream"))


@needs_shared
@pytest.mark.parametrize("name", ["decode_eager.sqlite", "decode_pathologies.sqlite"])
def test_few_kept_rows_of_a_big_table_need_no_polars(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule keeping a few rows of a big table (the synchronization calls among 0.19-0.30M runtime calls) reads
    them with sqlite3 alone and gives the polars path's rows, with and without filters."""
    path = TRACES / name
    trace = open_trace(path)
    assert not core.is_small(_rows(path, R), 4)  # the runtime table is big; the calls kept are few
    calls = _sync_calls(path)
    assert 100 < calls < core.SMALL_ROWS // 2
    for label, flt in _filters(trace):
        for report in ("cuda_api_sync", "cuda_api_sync:rows=-1", "cuda_api_sync:rows=3", "cuda_memcpy_sync"):
            fast, slow = _both(ReportContext(trace, flt), report, monkeypatch)
            _same(fast, slow, f"{name} {report} ({label})")
            if label == "no filter" and report == "cuda_api_sync:rows=-1":
                assert len(fast) == calls


@needs_shared
def test_few_kept_rows_of_a_big_memcpy_table_need_no_polars(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pageable copies among decode_pathologies' copies, with the limit set so that the copies' table is big
    and the kept rows are not: the stdlib path reads them and gives the polars path's rows."""
    path = TRACES / "decode_pathologies.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        kept = int(con.execute(f'SELECT count(*) FROM {MC} WHERE "srcKind" = 0 OR "dstKind" = 0').fetchone()[0])
    assert kept == 794  # of 1174 copies
    monkeypatch.setattr(core, "SMALL_ROWS", 7 * kept)  # 14 values a row: 794 rows are small, 1174 are not
    assert core.is_small(kept, 14) and not core.is_small(_rows(path, MC), 14)
    fast, slow = _both(ReportContext(open_trace(path), EventFilter()), "cuda_memcpy_async:rows=-1", monkeypatch)
    _same(fast, slow, "cuda_memcpy_async")
    assert len(fast) == kept
    monkeypatch.setattr(core, "SMALL_ROWS", 7 * kept - 7)  # one row too many: the polars path decides
    with pytest.raises(AssertionError, match="polars loader"):
        _both(ReportContext(open_trace(path), EventFilter()), "cuda_memcpy_async", monkeypatch)


@needs_shared
@pytest.mark.parametrize("kept", [True, False])
def test_damage_among_the_kept_rows_declines(kept: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged synchronization call (end < start) sends cuda_api_sync to the polars path, which leaves it out; a
    damaged call that the rule does not keep does not (the polars path reads only the kept rows too)."""
    base = TRACES / "decode_eager.sqlite"
    with sqlite3.connect(f"file:{base}?mode=ro", uri=True) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM StringIds WHERE value LIKE 'cudaStreamSynchronize%'")]
    test = f"nameId IN ({','.join(map(str, ids))})"
    rowid = f"(SELECT min(rowid) FROM {R} WHERE {'' if kept else 'NOT '}{test})"
    path = mutated_copy(
        base, tmp_path / "damaged.sqlite", sql(f'UPDATE {R} SET "end" = start - 5 WHERE rowid = {rowid}')
    )
    trace = Trace.open(path)
    try:
        req = parse_report_arg("cuda_api_sync:rows=-1")
        if kept:  # the stdlib path declines; the command's rows are the polars path's, without the damaged call
            with monkeypatch.context() as m, pytest.raises(AssertionError, match="polars loader"):
                m.setattr(Trace, "read_table", _refuse_polars_reads)
                run_report(ReportContext(trace, EventFilter()), req)
            rows = run_report(ReportContext(trace, EventFilter()), req).rows
            assert trace.damaged.damaged == 1
        else:
            rows, slow = _both(ReportContext(trace, EventFilter()), "cuda_api_sync:rows=-1", monkeypatch)
            _same(rows, slow, "cuda_api_sync")
        assert len(rows) == _sync_calls(base) - kept
    finally:
        trace.close()


@pytest.mark.parametrize("read", [True, False])
def test_damage_among_calls_not_read_declines(read: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """nvtx_gpu_proj_sum's stdlib path reads only the calls whose correlation id is a GPU operation's (the others
    match none), but seeks damage in all of them, as the polars path, which reads them all: a damaged call of
    either kind sends the report to the polars path, which leaves it out and counts it."""
    ops = " UNION ALL ".join(f"SELECT correlationId FROM {t}" for t in (K, MC, MS))
    test = f"correlationId {'' if read else 'NOT '}IN ({ops})"
    path = mutated_copy(
        SAMPLE,
        tmp_path / "damaged.sqlite",
        sql(f'UPDATE {R} SET "end" = start - 5 WHERE rowid = (SELECT min(rowid) FROM {R} WHERE {test})'),
    )
    trace = Trace.open(path)
    try:
        req = parse_report_arg("nvtx_gpu_proj_sum")
        with monkeypatch.context() as m, pytest.raises(AssertionError, match="polars loader"):
            m.setattr(Trace, "read_table", _refuse_polars_reads)
            run_report(ReportContext(trace, EventFilter()), req)
        rows = run_report(ReportContext(trace, EventFilter()), req).rows
        assert rows and trace.damaged.damaged == 1
    finally:
        trace.close()


def test_a_text_that_is_not_utf8_is_read_with_replacement(tmp_path: Path) -> None:
    """sqlite3 decodes texts in C as UTF-8; an export whose texts carry another encoding (a label, a kernel name) is
    read again with each such byte replaced, wherever the query runs (the schema's enum labels, the rows)."""
    path = mutated_copy(
        SAMPLE,
        tmp_path / "latin.sqlite",
        sql(
            "UPDATE ENUM_CUDA_MEMCPY_OPER SET label = CAST(x'4465766963652d746fff446576696365' AS TEXT) WHERE id = 8",
            "UPDATE StringIds SET value = CAST(x'6b65726e656cff' AS TEXT) WHERE id = "
            "(SELECT demangledName FROM CUPTI_ACTIVITY_KIND_KERNEL LIMIT 1)",
        ),
    )
    trace = Trace.open(path)
    try:
        assert trace.schema.enum_labels("ENUM_CUDA_MEMCPY_OPER")[8] == "Device-to\ufffdDevice"
        rows = run_report(ReportContext(trace, EventFilter()), parse_report_arg("cuda_gpu_mem_time_sum")).rows
        assert any(r[-1] == "[CUDA memcpy Device-to\ufffdDevice]" for r in rows)
        names = [
            r[-1] for r in run_report(ReportContext(trace, EventFilter()), parse_report_arg("cuda_gpu_kern_sum")).rows
        ]
        assert "kernel\ufffd" in names
    finally:
        trace.close()
