"""Damaged rows: counted per table and reason, left out of every number, reported in one warning line.

Each test damages a copy of the bundled sample in SQLite and compares with a second copy from which the same rows
were deleted: the numbers must be exactly those of the second copy, and the warning must count exactly the
damaged rows. Real exports have no damaged rows (checked on every shared trace).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from nsys_doctor.errors import TraceError
from nsys_doctor.trace import Trace
from nsys_doctor.trace.damage import DamageSummary, TableDamage, warning_line
from nsys_doctor.trace.schema import ROW_KEYS
from nsys_doctor.trace.tables import TraceFrames

from .conftest import DATA, SAMPLE, TRACES, needs_shared
from .test_fuzz import MC, MS, K, N, R, S, both, drop_column, md5, mutated_copy, rebuild, run_cli, set_values, sql


def set_where(table: str, column: str, value: str, where: str):  # type: ignore[no-untyped-def]
    """``column = value`` on the rows of ``table`` matching ``where`` (constraints dropped first)."""

    def mutate(con: sqlite3.Connection) -> None:
        rebuild(con, table)
        con.execute(f'UPDATE "{table}" SET "{column}" = {value} WHERE {where}')

    return mutate


def _count(path: Path, query: str) -> int:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(con.execute(query).fetchone()[0])
    finally:
        con.close()


def _pair(tmp_path: Path, damage: object, delete: list[str]) -> tuple[Path, Path]:
    """(the damaged copy, a copy with the same rows deleted instead)."""
    damaged = mutated_copy(SAMPLE, tmp_path / "damaged.sqlite", damage)  # type: ignore[arg-type]
    deleted = mutated_copy(SAMPLE, tmp_path / "deleted.sqlite", sql(*delete))
    return damaged, deleted


def _stdout_and_warnings(argv: list[str]) -> tuple[str, list[str]]:
    code, out, err = run_cli(argv)
    assert code == 0, err
    assert "Traceback" not in err
    return out, [line for line in err.splitlines() if line.startswith("nsys-doctor: warning: ")]


# Kernel rows damaged in every way, each on the rows whose rowid % 100 is the key.
KERNEL_DAMAGE = {
    1: ("start", "NULL", "NULL start"),
    2: ("start", "'abc'", "text start"),
    3: ("end", "start - 8500000", "with end < start"),
    4: ("end", "x'00'", "blob end"),
    5: ("demangledName", "987654321", "demangledName with no string"),
    6: ("shortName", "NULL", "NULL shortName"),
    7: ("deviceId", "NULL", "NULL deviceId"),
    8: ("start", "start + 0.5", "real start"),
}


@pytest.fixture
def kernel_pair(tmp_path: Path) -> tuple[Path, Path, dict[str, int]]:
    damage = both(*(set_values(K, col, value, 100, key) for key, (col, value, _) in KERNEL_DAMAGE.items()))
    damaged, deleted = _pair(tmp_path, damage, [f"DELETE FROM {K} WHERE rowid % 100 BETWEEN 1 AND 8"])
    expected = {
        why: _count(SAMPLE, f"SELECT count(*) FROM {K} WHERE rowid % 100 = {key}")
        for key, (_, _, why) in KERNEL_DAMAGE.items()
    }
    return damaged, deleted, expected


def test_kernel_damage_is_counted_per_reason_and_left_out(kernel_pair):
    damaged, _, expected = kernel_pair
    total = _count(SAMPLE, f"SELECT count(*) FROM {K}")
    with Trace.open(damaged) as trace:
        frames = TraceFrames(trace)
        summary = frames.damaged
    assert [t.table for t in summary.tables] == [K]
    assert dict(summary.tables[0].reasons) == expected
    assert summary.tables[0].rows == total
    assert frames.kernels.height == total - sum(expected.values())
    assert frames.kernels["dur"].min() >= 0
    data = summary.to_dict()
    assert data["damaged"] == sum(expected.values())
    assert data["tables"][0]["reasons"] == expected  # type: ignore[index]


KERNEL_REPORTS = [
    "cuda_gpu_kern_sum",
    "cuda_gpu_kern_sum:base",
    "cuda_gpu_kern_gb_sum",
    "cuda_kern_exec_sum",
    "nvtx_kern_sum",
    "nvtx_gpu_proj_sum",
    "cuda_gpu_sum",
    "cuda_gpu_trace",
    "gpu_gaps:gap=0",
    "gpu_time_util",
]


def test_kernel_numbers_are_those_without_the_damaged_rows(kernel_pair):
    damaged, deleted, expected = kernel_pair
    before = md5(damaged)
    for report in KERNEL_REPORTS:
        got, warnings = _stdout_and_warnings(["stats", str(damaged), "-r", report, "--format", "csv"])
        want, none = _stdout_and_warnings(["stats", str(deleted), "-r", report, "--format", "csv"])
        assert got == want, report
        assert none == []
        assert len(warnings) == 1
        assert warnings[0].startswith(f"nsys-doctor: warning: left out {sum(expected.values())} damaged rows ({K}: ")
        for why, n in expected.items():
            assert f"{n} {why}" in warnings[0]
    assert md5(damaged) == before


def _report_json(path: Path) -> dict[str, object]:
    out, _ = _stdout_and_warnings(["report", str(path), "--format", "json"])
    data = json.loads(out)
    for volatile in ("trace", "timing"):
        data.pop(volatile, None)
    return data


def test_report_with_end_before_start_matches_the_clean_copy(tmp_path):
    """A kernel ending before it starts once made the report print "-8500000.0% of GPU kernel time"."""
    damaged, deleted = _pair(
        tmp_path, set_values(K, "end", "start - 8500000", 10), [f"DELETE FROM {K} WHERE rowid % 10 = 0"]
    )
    assert _report_json(damaged) == _report_json(deleted)


def test_api_memop_and_nvtx_damage(tmp_path):
    damage = both(
        set_values(R, "start", "NULL", 50, 1),
        set_values(R, "end", "start - 1", 50, 2),
        set_values(R, "nameId", "'cudaLaunchKernel'", 50, 3),
        set_values(MC, "end", "NULL", 5, 1),
        set_values(MS, "start", "x'00'", 4, 2),
        set_values(N, "end", "start - 10", 6, 3),
        set_values(N, "end", "'e'", 6, 4),  # text, where NULL would be an open range: counted, not taken as open
    )
    delete = [
        f"DELETE FROM {R} WHERE rowid % 50 BETWEEN 1 AND 3",
        f"DELETE FROM {MC} WHERE rowid % 5 = 1",
        f"DELETE FROM {MS} WHERE rowid % 4 = 2",
        f"DELETE FROM {N} WHERE rowid % 6 IN (3, 4)",
    ]
    damaged, deleted = _pair(tmp_path, damage, delete)
    counts = {t: _count(deleted, f"SELECT count(*) FROM {t}") for t in (R, MC, MS, N)}
    for report in ("cuda_api_sum", "cuda_gpu_mem_time_sum", "cuda_gpu_mem_size_sum", "nvtx_sum", "cuda_api_gpu_sum"):
        got, warnings = _stdout_and_warnings(["stats", str(damaged), "-r", report, "--format", "csv"])
        want, _ = _stdout_and_warnings(["stats", str(deleted), "-r", report, "--format", "csv"])
        assert got == want, report
        assert len(warnings) == 1
    with Trace.open(damaged) as trace:
        frames = TraceFrames(trace)
        assert (frames.api.height, frames.memcpy.height, frames.memset.height) == (counts[R], counts[MC], counts[MS])
        found = {t.table: dict(t.reasons) for t in frames.damaged.tables}
    assert set(found) == {R, MC, MS, N}
    assert found[MC] == {"NULL end": _count(SAMPLE, f"SELECT count(*) FROM {MC} WHERE rowid % 5 = 1")}
    assert found[MS] == {"blob start": _count(SAMPLE, f"SELECT count(*) FROM {MS} WHERE rowid % 4 = 2")}
    assert set(found[R]) == {"NULL start", "with end < start", "text nameId"}
    assert found[N] == {
        "with end < start": _count(SAMPLE, f"SELECT count(*) FROM {N} WHERE rowid % 6 = 3"),
        "text end": _count(SAMPLE, f"SELECT count(*) FROM {N} WHERE rowid % 6 = 4"),
    }


def test_open_nvtx_ranges_and_zero_length_kernels_are_not_damage(tmp_path):
    path = mutated_copy(
        SAMPLE,
        tmp_path / "sound.sqlite",
        both(set_values(N, "end", "NULL", 6, 1), set_values(K, "end", "start", 9, 4)),
    )
    with Trace.open(path) as trace:
        frames = TraceFrames(trace)
        assert not frames.damaged
        assert frames.nvtx["end"].null_count() == _count(path, f"SELECT count(*) FROM {N} WHERE end IS NULL") > 0
    _, warnings = _stdout_and_warnings(["stats", str(path), "-r", "nvtx_sum", "-r", "cuda_gpu_kern_sum"])
    assert warnings == []


def test_null_and_blob_strings_leave_out_the_rows_naming_them(tmp_path):
    con = sqlite3.connect(f"file:{SAMPLE}?mode=ro", uri=True)
    api_id, n_api = con.execute(f"SELECT nameId, count(*) FROM {R} GROUP BY nameId ORDER BY 2 DESC LIMIT 1").fetchone()
    kern_id, n_kern = con.execute(
        f"SELECT demangledName, count(*) FROM {K} GROUP BY demangledName ORDER BY 2 LIMIT 1"
    ).fetchone()
    con.close()
    damaged, deleted = _pair(
        tmp_path,
        both(
            set_where(S, "value", "NULL", f"id = {api_id}"),
            set_where(S, "value", "x'c3'", f"id = {kern_id}"),
        ),
        [f"DELETE FROM {R} WHERE nameId = {api_id}", f"DELETE FROM {K} WHERE demangledName = {kern_id}"],
    )
    for report in ("cuda_api_sum", "cuda_gpu_kern_sum", "cuda_kern_exec_sum"):
        got, warnings = _stdout_and_warnings(["stats", str(damaged), "-r", report, "--format", "csv"])
        want, _ = _stdout_and_warnings(["stats", str(deleted), "-r", report, "--format", "csv"])
        assert got == want, report
        assert len(warnings) == 1 and f"{S}: 1 NULL value, 1 blob value" in warnings[0]
    with Trace.open(damaged) as trace:
        TraceFrames(trace)
        found = {t.table: dict(t.reasons) for t in trace.damaged.tables}
    assert found[S] == {"NULL value": 1, "blob value": 1}
    assert found[R] == {"nameId with no string": n_api}
    assert found[K] == {"demangledName with no string": n_kern}


def test_text_in_the_first_row_and_reals_are_read_and_counted(tmp_path):
    """SQLite's dynamic types in the first row of a column (where Arrow infers the column's type) and REAL
    timestamps take the slower read path, and are counted like the rest."""
    damaged, deleted = _pair(
        tmp_path,
        both(set_values(K, "start", "'abc'", 100_000, 1), set_values(R, "start", "start + 0.5", 3, 0)),
        [f"DELETE FROM {K} WHERE rowid = 1", f"DELETE FROM {R} WHERE rowid % 3 = 0"],
    )
    with Trace.open(damaged) as trace:
        frames = TraceFrames(trace)
        assert frames.kernels.height == _count(deleted, f"SELECT count(*) FROM {K}")
        assert frames.api.height == _count(deleted, f"SELECT count(*) FROM {R}")
    n_api = _count(SAMPLE, f"SELECT count(*) FROM {R} WHERE rowid % 3 = 0")
    for report in ("cuda_gpu_kern_sum", "cuda_api_sum", "cuda_kern_exec_sum"):
        got, warnings = _stdout_and_warnings(["stats", str(damaged), "-r", report, "--format", "csv"])
        want, _ = _stdout_and_warnings(["stats", str(deleted), "-r", report, "--format", "csv"])
        assert got == want, report
        assert len(warnings) == 1
    assert f"({K}: 1 text start; {R}: {n_api} real start)" in warnings[0] or f"{R}: {n_api} real start" in warnings[0]


def test_invalid_utf8_and_blob_text_in_nvtx(tmp_path):
    path = mutated_copy(
        SAMPLE,
        tmp_path / "text.sqlite",
        both(set_values(N, "text", "CAST(x'41ff42' AS TEXT)", 6, 1), set_values(N, "text", "x'00ff'", 6, 2)),
    )
    code, out, err = run_cli(["stats", str(path), "-r", "nvtx_sum", "--format", "csv"])
    assert code == 0, err
    assert ":A\ufffdB" in out
    assert "warning" not in err  # odd text is not damage: it names the range as well as it can


def test_mostly_damaged_tables_are_refused(tmp_path):
    path = mutated_copy(SAMPLE, tmp_path / "k.sqlite", set_values(K, "end", "start - 1", 3, 0))
    path2 = mutated_copy(
        SAMPLE,
        tmp_path / "k2.sqlite",
        both(set_values(K, "end", "start - 1", 3, 0), set_values(K, "start", "NULL", 3, 1)),
    )
    code, _, err = run_cli(["stats", str(path), "-r", "cuda_gpu_kern_sum"])
    assert code == 0 and "warning: left out" in err  # a third: left out
    # the default set on standard output too: the error alone, no report printed before it
    for argv in (["stats", str(path2), "-r", "cuda_gpu_kern_sum"], ["report", str(path2)], ["stats", str(path2)]):
        code, out, err = run_cli(argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and not out.strip(), (out, err)
        assert f"table {K} is mostly damaged" in lines[0] and "nsys export --type=sqlite" in lines[0]
    three_quarters = both(
        set_values(S, "value", "NULL", 4, 1),
        set_values(S, "value", "x'00'", 4, 2),
        set_values(S, "value", "NULL", 4, 3),
    )
    strings = mutated_copy(SAMPLE, tmp_path / "s.sqlite", three_quarters)
    with Trace.open(strings) as trace, pytest.raises(TraceError, match=f"{S} is mostly damaged"):
        _ = trace.strings


@pytest.mark.parametrize(
    ("mutation", "words"),
    [
        (drop_column(K, "start"), f"{K} has no start column"),
        (drop_column(R, "nameId"), f"{R} has no nameId column"),
        (drop_column(S, "value"), f"{S} has no id or value column"),
    ],
)
def test_tables_without_their_key_columns_are_refused(tmp_path, mutation, words):
    path = mutated_copy(SAMPLE, tmp_path / "cut.sqlite", mutation)
    code, _, err = run_cli(["stats", str(path), "-r", "cuda_gpu_kern_sum", "-r", "cuda_api_sum"])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and words in lines[0] and "nsys export" in lines[0], err


def test_one_warning_per_command_for_several_traces_and_reports(tmp_path):
    a = mutated_copy(SAMPLE, tmp_path / "a.sqlite", set_values(K, "start", "NULL", 100, 1))
    b = mutated_copy(DATA / "capture_decode.sqlite", tmp_path / "b.sqlite", set_values(R, "end", "start - 1", 100, 1))
    n_a = _count(SAMPLE, f"SELECT count(*) FROM {K} WHERE rowid % 100 = 1")
    n_b = _count(b, f"SELECT count(*) FROM {R} WHERE rowid % 100 = 1")
    code, _, err = run_cli(["diff", str(a), str(b)])
    warnings = [line for line in err.splitlines() if line.startswith("nsys-doctor: warning: ")]
    assert code == 0 and len(warnings) == 1, err
    assert f"left out {n_a + n_b} damaged rows" in warnings[0]
    assert f"a.sqlite {K}: {n_a} NULL start" in warnings[0] and f"b.sqlite {R}: {n_b} with end < start" in warnings[0]
    # several reports reading the same table, and a trace opened twice (rank discovery, then the report): once
    code, _, err = run_cli(["stats", str(a), "-r", "cuda_gpu_kern_sum", "-r", "cuda_gpu_trace", "-r", "gpu_gaps"])
    assert [line for line in err.splitlines() if line.startswith("nsys-doctor: warning: ")] == [
        f"nsys-doctor: warning: left out {n_a} damaged rows ({K}: {n_a} NULL start)"
    ]


def test_python_callers_get_data_not_output(tmp_path, capsys):
    path = mutated_copy(SAMPLE, tmp_path / "a.sqlite", set_values(K, "end", "NULL", 100, 1))
    with Trace.open(path) as trace:
        TraceFrames(trace)
        summary = trace.damaged
    assert capsys.readouterr().err == ""
    assert summary.damaged == _count(SAMPLE, f"SELECT count(*) FROM {K} WHERE rowid % 100 = 1")
    assert summary.path == str(path)


def test_warning_line_format():
    a = DamageSummary("/x/a.sqlite", (TableDamage(K, 100, (("with end < start", 10), ("NULL start", 2))),))
    assert warning_line([a]) == (
        f"nsys-doctor: warning: left out 12 damaged rows ({K}: 10 with end < start, 2 NULL start)"
    )
    b = DamageSummary("/y/b\nc.sqlite", (TableDamage(S, 9, (("blob value", 1),)),))
    assert warning_line([a, b]).endswith(f"; b c.sqlite {S}: 1 blob value)")  # one line, whatever the file name
    assert warning_line([DamageSummary("/x/a.sqlite")]) == ""
    assert TableDamage(K, 10, (("NULL start", 6),)).mostly_damaged
    assert not TableDamage(K, 10, (("NULL start", 5),)).mostly_damaged


def _assert_sound(path: Path) -> None:
    with Trace.open(path) as trace:
        for table in ROW_KEYS:
            if trace.schema.has(table):
                assert not trace.count_damage(table).damaged, (path.name, table)
        _ = trace.strings
        assert not trace.damaged, path.name


def test_the_bundled_traces_have_no_damaged_rows():
    for path in (SAMPLE, DATA / "capture_decode.sqlite"):
        _assert_sound(path)


@needs_shared
def test_the_shared_real_exports_have_no_damaged_rows():
    paths = sorted(TRACES.rglob("*.sqlite"))
    assert paths
    for path in paths:
        _assert_sound(path)


@pytest.mark.parametrize("min_bytes", [0, 1 << 62])  # processes, threads
def test_damage_found_by_workers_is_warned_once(tmp_path, monkeypatch, min_bytes):
    # report on two ranks with --jobs 2: each rank is read by its own worker (a process or a thread); what the
    # workers left out is still told, in this process's one warning line
    from nsys_doctor import parallel

    monkeypatch.setattr(parallel, "PROCESS_MIN_BYTES", min_bytes)
    monkeypatch.setattr(parallel, "THREAD_MIN_BYTES", 0)
    a = mutated_copy(SAMPLE, tmp_path / "a.sqlite", set_values(K, "start", "NULL", 100, 1))
    b = mutated_copy(SAMPLE, tmp_path / "b.sqlite", set_values(K, "start", "NULL", 100, 2))
    n_a = _count(SAMPLE, f"SELECT count(*) FROM {K} WHERE rowid % 100 = 1")
    n_b = _count(SAMPLE, f"SELECT count(*) FROM {K} WHERE rowid % 100 = 2")
    code, _, err = run_cli(["report", str(a), str(b), "--rank-from", "order", "--jobs", "2", "--format", "json"])
    warnings = [line for line in err.splitlines() if line.startswith("nsys-doctor: warning: ")]
    assert code == 0 and len(warnings) == 1, err
    assert f"left out {n_a + n_b} damaged rows" in warnings[0]


@pytest.mark.parametrize("hole", [True, False])
def test_references_to_a_missing_string_are_found_with_or_without_holes(tmp_path: Path, hole: bool) -> None:
    # the kernels whose short name is the string of id H: that string deleted (a hole in the ids: the lookup is a
    # lookup), or every kernel pointed past the last id (no hole: the check is a range test). Either way those
    # kernels are damaged ("shortName with no string"): the SQL count finds them, and a summary by short name
    # (``:base``) leaves them out; a summary by demangled name, which does not read the short names, keeps them
    # and warns of nothing, as nsys counts them (each table path tests the columns it reads)
    con = sqlite3.connect(f"file:{SAMPLE}?mode=ro", uri=True)
    sid, n = con.execute(f"SELECT shortName, count(*) FROM {K} GROUP BY shortName ORDER BY 2 LIMIT 1").fetchone()
    top = con.execute("SELECT max(id) FROM StringIds").fetchone()[0]
    con.close()
    if hole:
        mutation = sql(f"DELETE FROM StringIds WHERE id = {sid}")
    else:
        mutation = both(set_where(K, "shortName", str(top + 5), f"shortName = {sid}"))
    damaged = mutated_copy(SAMPLE, tmp_path / "damaged.sqlite", mutation)
    with Trace.open(damaged) as trace:
        assert (trace.string_span() is None) == hole
        found = trace.count_damage(K)
    assert dict(found.reasons) == {"shortName with no string": n}
    out, warnings = _stdout_and_warnings(["stats", "-r", "cuda_gpu_kern_sum:base", "--format", "csv", str(damaged)])
    assert len(warnings) == 1 and f"{n} shortName with no string" in warnings[0], warnings
    total = sum(int(line.split(",")[2]) for line in out.splitlines()[1:])
    assert total == _count(SAMPLE, f"SELECT count(*) FROM {K}") - n
    out, warnings = _stdout_and_warnings(["stats", "-r", "cuda_gpu_kern_sum", "--format", "csv", str(damaged)])
    assert not warnings
    assert sum(int(line.split(",")[2]) for line in out.splitlines()[1:]) == _count(SAMPLE, f"SELECT count(*) FROM {K}")


def test_info_tests_each_table_at_both_ends(tmp_path):
    """``info`` counts rows without reading them: a table damaged at its first or last row is counted then (a mostly
    damaged one is an error, some damaged rows a warning); a clean trace costs two lookups a table, no warning."""
    code, out, err = run_cli(["info", str(SAMPLE)])
    assert code == 0 and "warning" not in err and "kernels" in out
    whole = mutated_copy(SAMPLE, tmp_path / "whole.sqlite", set_values(K, "start", "'x'", 1, 0))
    code, out, err = run_cli(["info", str(whole)])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and f"table {K} is mostly damaged" in lines[0], err
    first = mutated_copy(
        SAMPLE, tmp_path / "first.sqlite", set_where(K, "start", "NULL", f"rowid = (SELECT min(rowid) FROM {K})")
    )
    code, out, err = run_cli(["info", str(first)])
    warnings = [line for line in err.splitlines() if line.startswith("nsys-doctor: warning: ")]
    assert code == 0 and "kernels" in out and len(warnings) == 1 and K in warnings[0] and "1 " in warnings[0], err


@pytest.mark.parametrize("mutation", ["sound", "hole", "blob value"])
def test_strings_read_in_one_pass_agree_with_sqlites_counts(tmp_path: Path, mutation: str) -> None:
    # a sound StringIds is read once, its damage (none) and its span of ids taken from the rows read; a damaged
    # one is counted in SQL first. Either way, what is found must be what SQLite's own queries find when asked
    # before any string is read (the span) or afterwards (the damage)
    con = sqlite3.connect(f"file:{SAMPLE}?mode=ro", uri=True)
    mid = con.execute("SELECT id FROM StringIds ORDER BY id LIMIT 1 OFFSET 5").fetchone()[0]
    con.close()
    path = SAMPLE
    if mutation == "hole":
        path = mutated_copy(SAMPLE, tmp_path / "hole.sqlite", sql(f"DELETE FROM StringIds WHERE id = {mid}"))
    elif mutation == "blob value":
        blob = sql(f"UPDATE StringIds SET value = CAST(value AS BLOB) WHERE id = {mid}")
        path = mutated_copy(SAMPLE, tmp_path / "blob.sqlite", blob)
    with Trace.open(path) as first_span:
        span = first_span.string_span()
        strings = first_span.strings
        damage = first_span.damaged
    with Trace.open(path) as first_strings:
        assert first_strings.strings == strings and list(first_strings.strings) == list(strings)
        assert first_strings.string_span() == span
        assert first_strings.damaged == damage
    ids = sorted(strings)
    assert (span is None) == (mutation != "sound")
    assert span is None or span == (ids[0], ids[-1])
    assert (mid in strings) == (mutation == "sound")
    described = [t for t in damage.tables if t.table == "StringIds"]
    assert [dict(t.reasons) for t in described] == ([{"blob value": 1}] if mutation == "blob value" else [])


def test_kernel_grid_is_int32_unless_a_value_does_not_fit(tmp_path):
    """The kernel frame keeps the launch grid in 32 bits (12 bytes a kernel less); a dimension with a value past
    32 bits (not a real launch) stays 64 bits with that value, and the other dimensions are still narrowed."""
    want = _count(SAMPLE, f"SELECT count(*) FROM {K}")
    with Trace.open(SAMPLE) as trace:
        k = TraceFrames(trace).kernels
    assert [k.schema[g] for g in ("gridX", "gridY", "gridZ")] == [pl.Int32] * 3
    raw = sqlite3.connect(f"file:{SAMPLE}?mode=ro", uri=True)
    try:
        grids = raw.execute(f"SELECT gridX, gridY, gridZ FROM {K} ORDER BY rowid").fetchall()
    finally:
        raw.close()
    assert k.height == want and k.select("gridX", "gridY", "gridZ").rows() == grids
    wide = mutated_copy(SAMPLE, tmp_path / "wide.sqlite", set_where(K, "gridY", str(1 << 40), "rowid = 5"))
    with Trace.open(wide) as trace:
        k = TraceFrames(trace).kernels
    assert (k.schema["gridX"], k.schema["gridY"], k.schema["gridZ"]) == (pl.Int32, pl.Int64, pl.Int32)
    assert k.height == want and int(k["gridY"].max()) == 1 << 40  # type: ignore[arg-type]


IDS = ("deviceId", "streamId", "correlationId", "pid")


def _kernel_ids(path):
    """The kernels' ids as SQLite gives them (the pid out of globalPid by hand: bits 24-47; null for a non-integer)."""
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return raw.execute(
            f"SELECT deviceId, streamId, correlationId, CASE WHEN typeof(globalPid) = 'integer' "
            f"THEN (globalPid / 16777216) % 16777216 END FROM {K} ORDER BY rowid"
        ).fetchall()
    finally:
        raw.close()


@pytest.mark.parametrize("piece", [100, 1 << 20])
def test_kernel_ids_are_int32_per_piece_unless_a_value_does_not_fit(tmp_path, monkeypatch, piece):
    """The kernel frame holds its ids in 32 bits and no globalPid (its pid is read); each piece of the table is
    narrowed as it is read: a value past 32 bits in one piece makes the whole column 64 bits, values unchanged."""
    from nsys_doctor.trace import open as trace_open

    monkeypatch.setattr(trace_open, "PIECE_ROWS", piece)  # pieces of 100 rows, or one piece
    with Trace.open(SAMPLE) as trace:
        k = TraceFrames(trace).kernels
    assert "globalPid" not in k.columns and [k.schema[c] for c in IDS] == [pl.Int32] * 4
    assert k.select(IDS).rows() == _kernel_ids(SAMPLE)
    wide = mutated_copy(SAMPLE, tmp_path / "wide.sqlite", set_where(K, "correlationId", str(1 << 40), "rowid = 150"))
    text = mutated_copy(wide, tmp_path / "text.sqlite", set_where(K, "globalPid", "'x'", "rowid = 3"))
    with Trace.open(text) as trace:
        k = TraceFrames(trace).kernels
    assert [k.schema[c] for c in IDS] == [pl.Int32, pl.Int32, pl.Int64, pl.Int32]
    rows = k.select(IDS).rows()
    assert rows == _kernel_ids(text) and rows[149][2] == 1 << 40 and rows[2][3] is None
