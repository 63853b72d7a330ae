"""Every shared trace opens; schema detection; metadata; filters."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import polars as pl
import pytest

from nsys_doctor.cli.main import main
from nsys_doctor.errors import TraceError, UsageError
from nsys_doctor.trace import Trace
from nsys_doctor.trace.meta import describe, prompt_length, workload_shape
from nsys_doctor.trace.window import MAX_TS, parse_filter_nvtx, parse_filter_time

from .conftest import DATA, SAMPLE, TRACES, needs_shared, open_trace

ALL_TRACES = (
    sorted(TRACES.glob("*.sqlite"))
    + sorted(TRACES.glob("multigpu/*.sqlite"))
    + sorted(TRACES.glob("external/*/*.sqlite"))
)


@needs_shared
@pytest.mark.parametrize("path", ALL_TRACES, ids=[p.name for p in ALL_TRACES])
def test_every_shared_trace_opens_and_is_described(path: Path):
    info = describe(open_trace(path))
    assert info.gpus, "GPU table read"
    assert info.counts.get("CUPTI_ACTIVITY_KIND_KERNEL", 0) > 0
    if "external" in path.parts:
        assert info.era == "legacy"
        assert any("old export schema" in m for m in info.missing)
    else:
        assert info.schema_version == "3.20.3"
        assert info.product_version == "2025.3.2.0"


@needs_shared
def test_graph_level_capture_is_reported_missing():
    info = describe(open_trace(TRACES / "decode_graph_graph.sqlite"))
    assert info.capture["cuda_graph_trace"] == "graph"
    assert any("--cuda-graph-trace=node" in m for m in info.missing)
    node = describe(open_trace(TRACES / "decode_graph_node.sqlite"))
    assert node.capture["cuda_graph_trace"] == "node"
    assert node.capture["capture_range"] == "cudaProfilerApi"
    assert node.capture["command"].startswith("python3 /app/workload.py --impl mini")
    assert not any("graph" in m for m in node.missing)


@needs_shared
def test_whole_run_capture_and_gpu_peak():
    info = describe(open_trace(TRACES / "decode_pathologies.sqlite"))
    assert info.capture["capture_range"] == "none (whole run)"
    assert info.gpus[0]["memoryBandwidth"] == 3_352_320_000_000
    assert info.gpus[0]["smCount"] == 132


def test_sample_info_json(capsys):
    assert main(["info", str(SAMPLE), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "nsys-doctor/2"
    assert data["info"]["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert data["info"]["counts"]["CUPTI_ACTIVITY_KIND_KERNEL"] == 12086


def test_filter_parsing():
    f = parse_filter_time("10s/20s")
    assert (f.start, f.end) == (10_000_000_000, 20_000_000_000)
    f = parse_filter_time("1s2ms/")
    assert (f.start, f.end) == (1_002_000_000, MAX_TS)
    assert parse_filter_time("/5ms").start == 0
    assert parse_filter_nvtx("decode_step") == ("decode_step", None, 0)
    assert parse_filter_nvtx("decode_step@engine/3") == ("decode_step", "engine", 3)
    assert parse_filter_nvtx(r"a\@b/x") == ("a@b/x", None, 0)


def test_nsys_rep_is_exported_once_with_nsys(tmp_path, monkeypatch):
    """A .nsys-rep is converted with `nsys export --type=sqlite` (a stand-in nsys here), then the fresh .sqlite
    beside it is reused."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "nsys"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{calls}"\n'
        'for a in "$@"; do case "$a" in --output=*) out="${a#--output=}";; esac; done\n'
        f'cp "{SAMPLE}" "$out"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("NSYS", str(fake))
    rep = tmp_path / "run.nsys-rep"
    rep.write_bytes(b"not really a report")
    with Trace.open(rep) as t:
        assert t.path == tmp_path / "run.sqlite"
        assert t.count("CUPTI_ACTIVITY_KIND_KERNEL") == 12086
    first = calls.read_text().split()
    assert first[:2] == ["export", "--type=sqlite"] and first[-1] == str(rep)
    with Trace.open(rep):
        pass
    assert len(calls.read_text().splitlines()) == 1  # up to date: not exported again


# ---------------------------------------------------------------------------------------------- .nsys-rep inputs
def _fake_nsys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path = SAMPLE, fail: str = "") -> Path:
    """A stand-in nsys that logs its arguments and exports ``source`` (or fails with ``fail`` on stderr)."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "bin" / "nsys"
    fake.parent.mkdir(exist_ok=True)
    body = (
        f'echo "{fail}" >&2\nexit 1\n'
        if fail
        else 'for a in "$@"; do case "$a" in --output=*) out="${a#--output=}";; esac; done\n'
        + f'cp "{source}" "$out"\n'
    )
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\n' + body)
    fake.chmod(0o755)
    monkeypatch.setenv("NSYS", str(fake))
    return calls


def _rep_and_sqlite(tmp_path: Path, sqlite_age: float) -> tuple[Path, Path]:
    """run.nsys-rep and a run.sqlite beside it (a copy of the capture fixture) ``sqlite_age`` s newer than it."""
    rep = tmp_path / "run.nsys-rep"
    rep.write_bytes(b"not really a report")
    out = tmp_path / "run.sqlite"
    out.write_bytes((DATA / "capture_decode.sqlite").read_bytes())
    t = rep.stat().st_mtime
    os.utime(out, (t + sqlite_age, t + sqlite_age))
    return rep, out


@pytest.mark.parametrize("age", [10.0, 0.0], ids=["newer", "same-age"])
def test_nsys_rep_reuses_a_sqlite_at_least_as_new(tmp_path, monkeypatch, capsys, age):
    calls = _fake_nsys(tmp_path, monkeypatch)
    rep, out = _rep_and_sqlite(tmp_path, age)
    before = out.read_bytes()
    with Trace.open(rep) as t:
        assert t.path == out
        assert t.count("CUPTI_ACTIVITY_KIND_KERNEL") == 17774  # the capture fixture, not what nsys would export
    assert not calls.exists()
    assert out.read_bytes() == before
    assert capsys.readouterr().err == ""


def test_nsys_rep_with_an_older_sqlite_is_exported_again(tmp_path, monkeypatch, capsys):
    calls = _fake_nsys(tmp_path, monkeypatch)
    rep, out = _rep_and_sqlite(tmp_path, -100.0)
    with Trace.open(rep) as t:
        assert t.path == out
        assert t.count("CUPTI_ACTIVITY_KIND_KERNEL") == 12086  # the fresh export (the sample)
    args = calls.read_text().split()
    assert args[:3] == ["export", "--type=sqlite", "--force-overwrite=true"] and args[-1] == str(rep)
    assert capsys.readouterr().err == "nsys-doctor: note: run.sqlite is older than run.nsys-rep: exporting it again\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "calls.txt", "run.nsys-rep", "run.sqlite"]


def test_nsys_rep_failed_export_leaves_the_old_sqlite_alone(tmp_path, monkeypatch, capsys):
    _fake_nsys(tmp_path, monkeypatch, fail="FATAL ERROR: report file is corrupt")
    rep, out = _rep_and_sqlite(tmp_path, -100.0)
    before = out.read_bytes()
    code = main(["info", str(rep)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 2, lines
    assert lines[0].startswith("nsys-doctor: note: run.sqlite is older")
    assert "nsys export failed" in lines[1] and "report file is corrupt" in lines[1] and "run it by hand" in lines[1]
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "calls.txt", "run.nsys-rep", "run.sqlite"]


def test_nsys_rep_with_an_older_sqlite_and_no_nsys(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NSYS", raising=False)
    monkeypatch.setattr("nsys_doctor.trace.nsysbin.CANDIDATE_GLOBS", ())
    rep, out = _rep_and_sqlite(tmp_path, -100.0)
    with pytest.raises(TraceError, match=r"older than run\.nsys-rep") as err:
        Trace.open(rep)
    assert "nsys export --type=sqlite --force-overwrite=true" in err.value.hint
    os.utime(out, (rep.stat().st_mtime + 5, rep.stat().st_mtime + 5))
    with Trace.open(rep) as t:  # newer: used as it is, nsys or not
        assert t.path == out


# ---------------------------------------------------------------------------------------------- locks after the open
def test_a_lock_taken_after_the_open_is_a_trace_error_on_every_path(tmp_path):
    """Another process locks the file once it is open: metadata probes (PRAGMA table_info), stdlib queries and
    ADBC reads all report the lock the same way."""
    from .test_fuzz import Locker

    path = tmp_path / "t.sqlite"
    path.write_bytes(SAMPLE.read_bytes())
    locker = Locker()
    with Trace.open(path) as trace:
        locker.lock_once(path)
        try:
            for probe in (
                lambda: trace.schema.columns("CUPTI_ACTIVITY_KIND_MEMCPY"),
                lambda: trace.rows("SELECT count(*) FROM StringIds"),
                lambda: trace.read_table("CUPTI_ACTIVITY_KIND_KERNEL", {"start": pl.Int64}),
                lambda: trace.schema.enum_labels("ENUM_CUDA_MEM_KIND"),
            ):
                with pytest.raises(TraceError) as err:
                    probe()
                assert "database is locked" in err.value.one_line()
                assert "copy the file" in err.value.one_line()
        finally:
            locker.release()
        assert trace.count("CUPTI_ACTIVITY_KIND_KERNEL") == 12086  # and reads again once it is released


def test_filter_time_out_of_range():
    for text, words in (
        ("-5s/10s", "start time is negative"),
        ("1s/-1ns", "end time is negative"),
        ("99999999999999999999s/", "start time is out of range"),
        ("/1e999999s", "end time is out of range"),
        ("10s/5s", "start is after end"),
    ):
        with pytest.raises(UsageError, match=words):
            parse_filter_time(text)
    assert parse_filter_time("0/9223372036854775807").end == MAX_TS


def test_workload_shape_from_command_line():
    """Both spellings of every benchmark flag: the length flags and their short forms, inline or not."""
    assert workload_shape("bench --isl 512 --osl=64") == (512, 64)
    assert workload_shape("bench --prompt-length=2048 --max-tokens 9") == (2048, 9)
    assert workload_shape("serve --input_length 7 --output-len x") == (7, None)
    assert workload_shape("python x.py") == (None, None) and workload_shape(None) == (None, None)
    assert workload_shape("bench --prompt-len") == (None, None)  # no value after the flag
    assert prompt_length("serve --input-len=512") == 512 and prompt_length("bench --isl 128") == 128
    assert prompt_length("bench --prompt-len 0") is None  # a prompt of no tokens is no token count
    assert prompt_length("bench --prompt-len ²") is None  # a digit that is no ASCII number


def test_every_query_on_the_trace_connection_holds_its_one_lock() -> None:
    """The frames are read on several threads and a schema probe (PRAGMA) shares the connection with
    ``Trace.rows``: a probe waits while another thread holds the connection. (Unserialized, a Python whose SQLite
    is built multi-thread, not serialized, returned a table's columns empty under ``report --jobs 8``.)"""
    with Trace.open(SAMPLE) as trace:
        assert trace._lock is trace.schema.lock
        table = next(t for t in sorted(trace.schema.tables) if t not in trace.schema._columns)
        done = threading.Event()
        got: list[tuple[str, ...]] = []

        def probe() -> None:
            got.append(trace.schema.columns(table))
            done.set()

        with trace._lock:  # another thread is using the connection
            worker = threading.Thread(target=probe)
            worker.start()
            assert not done.wait(0.2)  # the probe waits for it
        worker.join(10)
        assert done.is_set() and got[0] == tuple(r[1] for r in trace.rows(f"PRAGMA table_info('{table}')"))


PIECE_CASES = [(5, 1 << 20), (5, 7), (1000, 1000), (10**9, 1 << 20), (10**9, 333)]


@pytest.mark.parametrize(("min_rows", "piece_rows"), PIECE_CASES)
def test_parallel_reads_give_one_chunk_per_column_and_the_same_rows(monkeypatch, min_rows: int, piece_rows: int):
    """A table read in rowid ranges on parallel connections, each range in queries of at most PIECE_ROWS rows (and
    in the driver's batches), comes back as one chunk per column, the rows in table order, as read in one query;
    adding a column then copies nothing else."""
    import sqlite3

    from nsys_doctor.trace import schema as S
    from nsys_doctor.trace import tables

    monkeypatch.setattr("nsys_doctor.trace.open.PARALLEL_MIN_ROWS", min_rows)
    monkeypatch.setattr("nsys_doctor.trace.open.PIECE_ROWS", piece_rows)
    with Trace.open(SAMPLE) as trace:
        api = tables.TraceFrames._api(trace, None)
        kernels = tables.load(trace, S.KERNEL, ["start", "end", "correlationId", "demangledName"])
    assert all(n == 1 for n in api.n_chunks("all")) and all(n == 1 for n in kernels.n_chunks("all"))
    con = sqlite3.connect(f"file:{SAMPLE}?mode=ro", uri=True)
    rows = con.execute(f'SELECT start, "end", correlationId, demangledName FROM {S.KERNEL} ORDER BY rowid').fetchall()
    ids = con.execute(f"SELECT correlationId FROM {S.RUNTIME} ORDER BY rowid").fetchall()
    con.close()
    assert kernels.rows() == rows and len(rows) > 1000
    assert api["correlationId"].to_list() == [i for (i,) in ids]


def test_release_native_heap_finds_glibc_where_there_is_one() -> None:
    import platform

    from nsys_doctor.native import libc_function
    from nsys_doctor.trace import open as trace_open

    trace_open.release_native_heap()
    misses = libc_function.cache_info().misses
    trace_open.release_native_heap()  # looked up once
    assert libc_function.cache_info().misses == misses
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert libc_function("malloc_trim") is not None


@pytest.mark.parametrize(("cores", "rows", "expected"), [(32, 10_000_000, 8), (4, 10_000_000, 4), (32, 250_000, 2)])
def test_parallel_parts_cover_the_range_once(monkeypatch, cores: int, rows: int, expected: int) -> None:
    """At most one part per core, per 100k rows and PARALLEL_MAX_PARTS (8: as fast as 16 on a 16-core host, and
    leaner); the parts tile lo..hi in order, without gap or overlap."""
    from itertools import pairwise

    from nsys_doctor.trace import open as trace_open

    monkeypatch.setattr(trace_open.os, "cpu_count", lambda: cores)
    lo, hi = 7, 7 + rows - 1
    parts = trace_open._parts(lo, hi)
    assert len(parts) == expected
    assert parts[0][0] == lo and parts[-1][1] == hi
    assert all(b[0] == a[1] + 1 for a, b in pairwise(parts))


def test_frame_names_are_categoricals_of_the_traces_texts() -> None:
    """Kernel and call names are held as categoricals (4 bytes a row, not a 16-byte view): the same texts, row for
    row, as SQLite gives."""
    import sqlite3

    from nsys_doctor.trace.tables import TraceFrames

    path = DATA / "runs" / "hf_llama_generate_whole.sqlite"
    with Trace.open(path) as trace:
        f = TraceFrames(trace)
        kernels, api = f.kernels, f.api
    assert kernels.schema["name"] == kernels.schema["short"] == api.schema["name"] == pl.Categorical
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        want_k = db.execute(
            "SELECT d.value, s.value FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds d ON d.id = k.demangledName "
            "JOIN StringIds s ON s.id = k.shortName ORDER BY k.rowid"
        ).fetchall()
        want_a = db.execute(
            "SELECT s.value FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON s.id = r.nameId ORDER BY r.rowid"
        ).fetchall()
    assert kernels.select(pl.col("name", "short").cast(pl.String)).rows() == want_k
    assert api.select(pl.col("name").cast(pl.String)).rows() == want_a
    assert len(want_k) > 1000 and len(want_a) > 1000


def test_call_frame_gives_process_and_thread_from_its_global_thread_id() -> None:
    """The call frame has no pid and tid columns (8 bytes a call); ``calls`` gives them from globalTid, as SQLite
    reads them, and the Python API's ``api()`` has them."""
    import sqlite3

    import nsys_doctor as nd
    from nsys_doctor.analysis.phases import LAUNCH_API, calls
    from nsys_doctor.trace.tables import TraceFrames

    path = DATA / "runs" / "hf_llama_generate_whole.sqlite"
    with Trace.open(path) as trace:
        api = TraceFrames(trace).api
    assert "pid" not in api.columns and "tid" not in api.columns
    got = calls(api, LAUNCH_API, columns=["correlationId", "pid", "tid"])
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        want = db.execute(
            "SELECT r.correlationId, (r.globalTid >> 24) & 16777215, r.globalTid & 16777215 "
            "FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON s.id = r.nameId "
            "WHERE s.value GLOB 'cudaLaunch*' OR s.value GLOB 'cuLaunch*' OR s.value GLOB 'cudaGraphLaunch*' "
            "OR s.value GLOB 'cuGraphLaunch*' ORDER BY r.rowid"
        ).fetchall()
    assert got.rows() == want and len(want) > 1000
    assert len({pid for _, pid, _ in want}) == 1 and got.schema["pid"] == got.schema["tid"] == pl.Int32
    with nd.open(path) as t:
        window = t.api()
    assert {"pid", "tid"} <= set(window.columns) and window["pid"].n_unique() == 1


def _record_connections(monkeypatch) -> list[str]:
    """The URIs of the stdlib connections the trace module opens from now on (a list that grows)."""
    import sqlite3

    from nsys_doctor.trace import open as trace_open

    opened: list[str] = []
    real = sqlite3.connect

    def connect(*args, **kwargs):
        opened.append(str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(trace_open.sqlite3, "connect", connect)
    return opened


def test_stdlib_reads_in_parts_use_at_most_two_connections(monkeypatch) -> None:
    """``rows_in_parts`` (Python's sqlite3) opens at most STDLIB_MAX_PARTS connections, even where ``read_table``
    would use 8 (the SQLite it links against may serialize threads), and gives the rows of one query, in order."""

    from nsys_doctor.trace import open as trace_open

    monkeypatch.setattr(trace_open.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(trace_open, "PARALLEL_MIN_ROWS", 1000)
    table = "CUPTI_ACTIVITY_KIND_KERNEL"  # 12,086 rows
    with Trace.open(SAMPLE) as trace:
        lo, hi = trace.rowid_range(table) or (0, 0)
        assert len(trace_open._parts(lo, hi)) == 8  # what read_table would use
        opened = _record_connections(monkeypatch)
        sql = f"SELECT correlationId, start FROM {table} WHERE {{range}} AND correlationId % 3 = 0 ORDER BY rowid"
        rows = trace.rows_in_parts(table, sql)
        assert len(opened) == trace_open.STDLIB_MAX_PARTS == 2
        assert rows == trace.rows(sql.format(range="1")) and len(rows) > 100


def test_a_check_beside_a_read(monkeypatch) -> None:
    """``rows_beside`` runs its check on a connection of its own while the read runs on the trace's, and gives both
    results as the two queries give them one after the other; a failure of the check is the trace's one-line
    error, never lost behind the read's rows."""

    table = "CUPTI_ACTIVITY_KIND_KERNEL"
    check = f'SELECT EXISTS (SELECT 1 FROM {table} WHERE "end" < "start")'
    read = f'SELECT "demangledName", "end" - "start" FROM {table} ORDER BY rowid'
    with Trace.open(SAMPLE) as trace:
        opened = _record_connections(monkeypatch)
        found, rows = trace.rows_beside(check, read)
        assert len(opened) == 1 and opened[0].endswith("?mode=ro")
        assert found == trace.rows(check) == [(0,)]
        assert rows == trace.rows(read) and len(rows) == 12_086
        with pytest.raises(TraceError, match="no such table"):
            trace.rows_beside("SELECT count(*) FROM NO_SUCH_TABLE", read)
        with pytest.raises(TraceError, match="no such table"):  # the read's own failure, after the check ended
            trace.rows_beside(check, "SELECT count(*) FROM NO_SUCH_TABLE")
