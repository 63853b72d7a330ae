"""Every command on damaged copies of small real traces: never an internal error, one-line errors, inputs untouched.

The bases are the bundled sample and the capture fixture, cut to their first ~44 ms (a prefill and enough decode
steps for ``diff --gate``: each command runs in a fraction of a second). Copies are then damaged the ways real
files get damaged or edited: NULLs and wrong storage classes (text, blob, real) in times, ids and names,
``end < start``, dropped tables and columns, deleted or odd strings (empty, huge, non-ASCII, NUL and control
characters), and a lock taken by another process after the trace was opened. Each command runs in-process
through ``main()``; the checks:

* the exit code is 0, 1 or 2 (3 is an internal error, i.e. a bug);
* everything on standard error is one line per message (a known prefix on each line), no traceback;
* the input file's bytes are unchanged.

``test_matrix`` is a scripted, deterministic grid (each mutation x each command); ``test_random_damage`` lets
hypothesis combine damages (derandomized, so CI sees the same cases on every run).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsys_doctor.cli.main import main
from nsys_doctor.trace import Trace

from .conftest import DATA, SAMPLE, TRACES, needs_shared

CAPTURE = DATA / "capture_decode.sqlite"
MODEL = DATA / "llama_mini_config.json"
K = "CUPTI_ACTIVITY_KIND_KERNEL"
R = "CUPTI_ACTIVITY_KIND_RUNTIME"
MC = "CUPTI_ACTIVITY_KIND_MEMCPY"
MS = "CUPTI_ACTIVITY_KIND_MEMSET"
N = "NVTX_EVENTS"
S = "StringIds"

Mutation = Callable[[sqlite3.Connection], None]


# ------------------------------------------------------------------------------------------------ building copies
def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def trim(src: Path, dst: Path, t_end: int) -> Path:
    """A copy of ``src`` keeping only rows that start before ``t_end`` ns (every table with a start column)."""
    shutil.copyfile(src, dst)
    con = sqlite3.connect(dst)
    try:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            if "start" in columns(con, table):
                con.execute(f'DELETE FROM "{table}" WHERE start >= ?', (t_end,))
        con.commit()
        con.execute("VACUUM")
    finally:
        con.close()
    return dst


def columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in con.execute(f"PRAGMA table_info('{table}')")]


def rebuild(con: sqlite3.Connection, table: str, keep: list[str] | None = None) -> None:
    """Rebuild ``table`` without its constraints (NOT NULL, types), and with only the ``keep`` columns if given,
    so that any value fits."""
    cols = keep if keep is not None else columns(con, table)
    con.execute(f'CREATE TABLE "_rebuilt" AS SELECT {", ".join(f"{chr(34)}{c}{chr(34)}" for c in cols)} FROM "{table}"')
    con.execute(f'DROP TABLE "{table}"')
    con.execute(f'ALTER TABLE "_rebuilt" RENAME TO "{table}"')


def set_values(table: str, column: str, value: str, every: int = 7, offset: int = 0) -> Mutation:
    """``column = value`` (an SQL expression) on every ``every``-th row of ``table``."""

    def mutate(con: sqlite3.Connection) -> None:
        if column not in columns(con, table):
            return
        rebuild(con, table)
        con.execute(f'UPDATE "{table}" SET "{column}" = {value} WHERE rowid % {every} = {offset % every}')

    return mutate


def drop_table(table: str) -> Mutation:
    return lambda con: con.execute(f'DROP TABLE IF EXISTS "{table}"')


def drop_column(table: str, column: str) -> Mutation:
    def mutate(con: sqlite3.Connection) -> None:
        if column in columns(con, table):
            rebuild(con, table, [c for c in columns(con, table) if c != column])

    return mutate


def sql(*statements: str) -> Mutation:
    def mutate(con: sqlite3.Connection) -> None:
        for s in statements:
            con.execute(s)

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(con: sqlite3.Connection) -> None:
        for m in mutations:
            m(con)

    return mutate


def mutated_copy(base: Path, dst: Path, mutation: Mutation) -> Path:
    shutil.copyfile(base, dst)
    con = sqlite3.connect(dst)
    try:
        mutation(con)
        con.commit()
    finally:
        con.close()
    return dst


# Strings that break naive code: empty, control characters and NUL, non-ASCII, very long. Very long names are given
# to API calls and NVTX ranges only: labelling a generic kernel (elementwise_kernel<...>) scans its demangled name
# with a backtracking regex whose time grows with the square of the name's length.
ODD_STRINGS = {
    "empty": "''",
    "nul_and_controls": "char(0) || 'nul' || char(7, 8, 27, 10, 13, 9) || 'x'",
    "unicode": "'ünï€😀 ' || value",
    "newlines": "'line one' || char(10) || 'line two' || char(13, 10) || 'three'",
}
API_NAME_IDS = f"(SELECT nameId FROM {R})"


MUTATIONS: dict[str, Mutation] = {
    "clean": sql(),
    # kernels: several kinds of damage on different rows of one copy
    "kernel_bad_times": both(
        set_values(K, "start", "NULL", 7),
        set_values(K, "start", "'abc'", 11, 3),
        set_values(K, "end", "x'00ff'", 13, 5),
        set_values(K, "end", "start - 8500000", 17, 8),
    ),
    "kernel_real_start": set_values(K, "start", "start + 0.5"),
    "kernel_text_start_first_row": set_values(K, "start", "'abc'", every=100_000, offset=1),
    "kernel_bad_names": both(
        set_values(K, "demangledName", "NULL", 7),
        set_values(K, "shortName", "'gemv'", 11, 3),
        set_values(K, "demangledName", "987654321", 13, 5),
    ),
    "kernel_all_starts_null": set_values(K, "start", "NULL", every=1),
    "kernel_bad_ids": both(
        set_values(K, "deviceId", "NULL", 3),
        set_values(K, "globalPid", "NULL", 5),
        set_values(K, "correlationId", "'c'", 7),
    ),
    "kernel_huge_and_negative_times": both(
        set_values(K, "start", "9223372036854775807", 50), set_values(K, "start", "-start", 51)
    ),
    "kernel_rows_deleted": sql(f"DELETE FROM {K}"),
    # CUDA API calls, memory operations, NVTX
    "api_bad_rows": both(
        set_values(R, "start", "NULL", 7),
        set_values(R, "nameId", "'cudaLaunchKernel'", 11, 3),
        set_values(R, "end", "start - 1000", 13, 5),
        set_values(R, "start", "x'01'", 17, 8),
        set_values(R, "globalTid", "NULL", 5, 1),
    ),
    "memops_bad_rows": both(set_values(MC, "end", "NULL", 3), set_values(MS, "end", "start - 5", 4, 1)),
    "nvtx_bad_rows": both(
        set_values(N, "start", "NULL", 9, 5),
        set_values(N, "textId", "'x'", 9, 3),
        set_values(N, "end", "start - 5", 9, 6),
    ),
    "nvtx_blob_and_bad_utf8_text": both(
        set_values(N, "text", "x'ff00'", every=3), set_values(N, "text", "CAST(x'41ff42' AS TEXT)", every=3, offset=1)
    ),
    "nvtx_odd_text": sql(
        f"UPDATE {N} SET text = char(0) || char(10) || 'décode😀' WHERE rowid % 2 = 0",
        f"UPDATE {N} SET text = '' WHERE rowid % 3 = 0",
        f"UPDATE {N} SET text = printf('%.*c', 100000, 'n') WHERE rowid % 5 = 0",
    ),
    # strings
    "strings_null_and_blob_values": both(set_values(S, "value", "NULL", 23), set_values(S, "value", "x'c3'", 29, 3)),
    "strings_deleted": sql(f"DELETE FROM {S} WHERE id % 31 = 0"),
    "strings_odd": sql(*(f"UPDATE {S} SET value = {v} WHERE id % 9 = {i}" for i, v in enumerate(ODD_STRINGS.values()))),
    "strings_huge_api_names": sql(
        f"UPDATE {S} SET value = value || printf('%.*c', 200000, 'a') WHERE id IN {API_NAME_IDS}"
    ),
    # tables and columns gone
    "no_kernel_table": drop_table(K),
    "no_runtime_table": drop_table(R),
    "no_strings_table": drop_table(S),
    "no_nvtx_table": drop_table(N),
    "no_metadata_tables": both(
        drop_table("TARGET_INFO_GPU"),
        drop_table("META_DATA_EXPORT"),
        drop_table("TARGET_INFO_SESSION_START_TIME"),
        drop_table("ANALYSIS_DETAILS"),
    ),
    "kernel_without_short_name": drop_column(K, "shortName"),
    "kernel_without_end": drop_column(K, "end"),
    "kernel_without_device": drop_column(K, "deviceId"),
    "optional_columns_gone": both(
        drop_column(K, "globalPid"),
        drop_column(K, "correlationId"),
        drop_column(N, "textId"),
        drop_column(R, "globalTid"),
    ),
    "runtime_without_name": drop_column(R, "nameId"),
    "strings_without_value": drop_column(S, "value"),
    # metadata of the wrong type
    "metadata_wrong_types": both(
        set_values("TARGET_INFO_GPU", "memoryBandwidth", "'fast'", 1),
        set_values("TARGET_INFO_GPU", "smCount", "NULL", 1),
        set_values("TARGET_INFO_SESSION_START_TIME", "utcEpochNs", "'now'", 1),
        sql("UPDATE META_DATA_EXPORT SET value = 'x.y' WHERE name LIKE 'EXPORT_SCHEMA_VERSION%'"),
    ),
}

# Mutations after which the trace cannot be analysed at all: stats and report refuse it (exit 2). After any other
# mutation they succeed, leaving the damaged rows out.
REFUSED = {
    "kernel_all_starts_null",
    "no_strings_table",
    "kernel_without_short_name",
    "kernel_without_end",
    "kernel_without_device",
    "runtime_without_name",
    "strings_without_value",
}
STATS_REPORTS = ["cuda_gpu_kern_sum", "cuda_api_sum", "nvtx_sum", "cuda_gpu_trace", "gpu_gaps:gap=1"]


def command_lines(a: Path, b: Path) -> dict[str, list[str]]:
    """The commands run on trace ``a`` (``b``: a second, undamaged trace for the two-trace commands)."""
    sa, sb = str(a), str(b)
    stats = ["stats", sa]
    for r in STATS_REPORTS:
        stats += ["-r", r]
    return {
        "info": ["info", sa],
        "stats": stats,
        "report": ["report", sa],
        "report_json": ["report", sa, "--format", "json"],
        "diff": ["diff", sb, sa],
        "diff_gate": ["diff", "--gate", "5", sa, sb],
        "nccl": ["nccl", sa, sb],
        "roofline": ["roofline", sa, "--model", str(MODEL)],
        "explain": ["explain", sa],
    }


COMMANDS = list(command_lines(Path("a"), Path("b")))

# What a line on standard error may start with: each message is one line.
STDERR_PREFIXES = ("nsys-doctor: error: ", "nsys-doctor: warning: ", "nsys-doctor: note: ", "SKIPPED: ", "note: ")


SQL_SLIPS = (
    "syntax error",
    "no such column",
    "no such table",
    "lacks a table or column",
    "complete nsys SQLite export",
)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def check_run(argv: list[str], code: int, err: str) -> None:
    where = " ".join(argv)
    assert code in (0, 1, 2), f"exit {code} for `{where}`:\n{err}"
    assert "Traceback" not in err and "internal error" not in err, f"`{where}`:\n{err}"
    lines = [line for line in err.splitlines() if line.strip()]
    stray = [line for line in lines if not line.startswith(STDERR_PREFIXES)]
    assert not stray, f"`{where}`: stderr lines that are not one-line messages: {stray[:3]}"
    errors = [line for line in lines if line.startswith("nsys-doctor: error: ")]
    assert len(errors) == (1 if code == 2 else 0), f"`{where}`:\n{err}"
    for line in errors:  # SQL of our own that SQLite rejected, or an SQLite error nobody turned into advice
        assert not any(w in line for w in SQL_SLIPS), f"`{where}`: {line}"
    assert sum(line.startswith("nsys-doctor: warning: ") for line in lines) <= 1, f"`{where}`:\n{err}"


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def bases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("fuzz_bases")
    # enough decode steps on both sides (5 or more) for `diff --gate` to test significance
    return trim(SAMPLE, d / "base_a.sqlite", 44_000_000), trim(CAPTURE, d / "base_b.sqlite", 43_000_000)


@pytest.fixture(scope="session")
def damaged(bases: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The damaged copy for a mutation name, made once per session (commands never write to it)."""
    made: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("fuzz_damaged")

    def get(name: str) -> Path:
        if name not in made:
            d = root / name
            d.mkdir()
            made[name] = mutated_copy(bases[0], d / "trace_rank0.sqlite", MUTATIONS[name])
        return made[name]

    return get


def _matrix_params() -> Iterator[object]:
    for m in MUTATIONS:
        for c in COMMANDS:
            yield pytest.param(m, c, id=f"{m}-{c}")


@pytest.mark.parametrize(("mutation", "command"), list(_matrix_params()))
def test_matrix(damaged: Callable[[str], Path], bases: tuple[Path, Path], mutation: str, command: str) -> None:
    trace = damaged(mutation)
    before = md5(trace), md5(bases[1])
    argv = command_lines(trace, bases[1])[command]
    code, _, err = run_cli(argv)
    check_run(argv, code, err)
    if command in ("stats", "report", "report_json"):
        assert code == (2 if mutation in REFUSED else 0), err
    assert (md5(trace), md5(bases[1])) == before, "an input file changed"
    assert sorted(p.name for p in trace.parent.iterdir()) == [trace.name], "something was written beside the input"


def test_matrix_sees_the_damage(damaged: Callable[[str], Path], bases: tuple[Path, Path]) -> None:
    """The grid is not vacuous: damaged rows are reported, a mostly damaged table or a missing column refused,
    and the clean copy runs without a warning."""
    code, _, err = run_cli(command_lines(damaged("clean"), bases[1])["stats"])
    assert code == 0 and "warning" not in err
    code, _, err = run_cli(command_lines(damaged("kernel_bad_times"), bases[1])["stats"])
    assert code == 0 and f"({K}: " in err
    for reason in ("NULL start", "text start", "blob end", "with end < start"):
        assert reason in err
    code, _, err = run_cli(command_lines(damaged("kernel_all_starts_null"), bases[1])["report"])
    assert code == 2 and "mostly damaged" in err and "nsys export" in err
    code, _, err = run_cli(command_lines(damaged("kernel_without_end"), bases[1])["stats"])
    assert code == 2 and f"{K} has no end column" in err


# ------------------------------------------------------------------------------------------------ rank sets
RANK_MUTATIONS = [
    "clean",
    "kernel_bad_times",
    "kernel_bad_ids",
    "nvtx_bad_rows",
    "optional_columns_gone",
    "kernel_without_device",
]


@pytest.fixture(scope="session")
def rank_bases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The first 80 ms of a real two-rank run with NCCL collectives (rank 1 is the straggler)."""
    d = tmp_path_factory.mktemp("fuzz_ranks")
    src = TRACES / "multigpu"
    return (
        trim(src / "tp2_straggler_rank0.sqlite", d / "rank0.sqlite", 80_000_000),
        trim(src / "tp2_straggler_rank1.sqlite", d / "rank1.sqlite", 80_000_000),
    )


@needs_shared
@pytest.mark.parametrize("mutation", RANK_MUTATIONS)
def test_rank_set_matrix(rank_bases: tuple[Path, Path], tmp_path: Path, mutation: str) -> None:
    """Damage in one rank of a real two-rank NCCL run: `nccl` and the rank-set `report` go through collective
    matching, skew and per-rank steps."""
    rank0 = mutated_copy(rank_bases[0], tmp_path / "trace_rank0.sqlite", MUTATIONS[mutation])
    before = md5(rank0), md5(rank_bases[1])
    for argv in (
        ["nccl", str(rank0), str(rank_bases[1])],
        ["report", str(rank0), str(rank_bases[1]), "--format", "json"],
    ):
        code, _, err = run_cli(argv)
        check_run(argv, code, err)
        assert code == (2 if mutation in REFUSED else 0), err
    assert (md5(rank0), md5(rank_bases[1])) == before


# ------------------------------------------------------------------------------------------------ random damage
COLUMN_VALUES: dict[tuple[str, str], list[str]] = {
    (K, "start"): ["NULL", "'abc'", "x'00'", "start + 0.25", "-1", "9223372036854775807"],
    (K, "end"): ["NULL", "''", "x'ff'", "start - 1", "start - 8500000", "end + 0.5"],
    (K, "demangledName"): ["NULL", "'k'", "123456789", "-1", "1.5"],
    (K, "shortName"): ["NULL", "x'00'", "987654321"],
    (K, "deviceId"): ["NULL", "'gpu'", "7"],
    (K, "correlationId"): ["NULL", "'c'", "0"],
    (K, "globalPid"): ["NULL", "x'01'", "-1"],
    (R, "start"): ["NULL", "'t'", "start + 0.5"],
    (R, "end"): ["NULL", "start - 10", "x'00'"],
    (R, "nameId"): ["NULL", "'cudaLaunchKernel_v7000'", "424242"],
    (R, "correlationId"): ["NULL", "'x'"],
    (R, "globalTid"): ["NULL", "'tid'", "0"],
    (MC, "start"): ["NULL", "'s'"],
    (MC, "end"): ["start - 1", "NULL"],
    (MC, "bytes"): ["NULL", "-5", "'many'"],
    (MS, "end"): ["start - 1", "x'00'"],
    (N, "start"): ["NULL", "'n'"],
    (N, "end"): ["NULL", "start - 1", "'e'"],
    (N, "text"): ["NULL", "''", "x'ff'", "char(0) || 'a' || char(10)"],
    (N, "textId"): ["'x'", "99999", "NULL"],
    (N, "globalTid"): ["NULL", "'g'"],
    (N, "eventType"): ["NULL", "75", "'t'"],
    (S, "value"): ["NULL", "x'c3'", "''", "char(0)", "'ü' || value", "5"],
    ("TARGET_INFO_GPU", "smCount"): ["NULL", "'many'", "0"],
    ("TARGET_INFO_GPU", "name"): ["NULL", "x'00'"],
    ("TARGET_INFO_SESSION_START_TIME", "utcEpochNs"): ["NULL", "'now'"],
    ("META_DATA_CAPTURE", "value"): ["NULL", "x'00'", "''"],
}
DROPPABLE_TABLES = [K, R, MC, MS, N, "TARGET_INFO_GPU", "META_DATA_EXPORT", "META_DATA_CAPTURE", "ENUM_CUDA_MEM_KIND"]
DROPPABLE_COLUMNS = [(K, "shortName"), (K, "globalPid"), (K, "correlationId"), (R, "globalTid"), (N, "textId")]

edit = st.one_of(
    st.builds(
        lambda target, pick, every, offset: (
            "set",
            *target,
            COLUMN_VALUES[target][pick % len(COLUMN_VALUES[target])],
            every,
            offset,
        ),
        st.sampled_from(sorted(COLUMN_VALUES)),
        st.integers(0, 5),
        st.integers(1, 40),
        st.integers(0, 39),
    ),
    st.builds(lambda t: ("drop_table", t), st.sampled_from(DROPPABLE_TABLES)),
    st.builds(lambda tc: ("drop_column", *tc), st.sampled_from(DROPPABLE_COLUMNS)),
    st.builds(lambda every: ("delete_strings", every), st.integers(2, 30)),
)


def apply_edit(con: sqlite3.Connection, e: tuple) -> None:  # type: ignore[type-arg]
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if e[0] == "set":
        _, table, column, value, every, offset = e
        if table in tables and column in columns(con, table):
            set_values(table, column, value, every, offset)(con)
    elif e[0] == "drop_table":
        drop_table(e[1])(con)
    elif e[0] == "drop_column":
        if e[1] in tables and e[2] in columns(con, e[1]):
            drop_column(e[1], e[2])(con)
    elif e[0] == "delete_strings":
        con.execute(f"DELETE FROM {S} WHERE id % {e[1]} = 0")


RANDOM_COMMANDS = ["stats", "report_json", "diff", "roofline"]


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=st.lists(edit, min_size=1, max_size=3))
def test_random_damage(bases: tuple[Path, Path], edits: list[tuple]) -> None:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as d:
        trace = Path(d) / "trace.sqlite"
        shutil.copyfile(bases[0], trace)
        con = sqlite3.connect(trace)
        try:
            for e in edits:
                apply_edit(con, e)
            con.commit()
        finally:
            con.close()
        before = md5(trace)
        lines = command_lines(trace, bases[1])
        for name in RANDOM_COMMANDS:
            code, _, err = run_cli(lines[name])
            check_run(lines[name], code, err)
        assert md5(trace) == before


# ------------------------------------------------------------------------------------------------ locks
LOCKER = (
    "import sqlite3, sys\n"
    "con = sqlite3.connect(sys.argv[1], timeout=5)\n"
    "con.execute('BEGIN EXCLUSIVE')\n"
    "print('locked', flush=True)\n"
    "sys.stdin.read()\n"
    "con.rollback()\n"
)


class Locker:
    """Another process holding an exclusive lock on a file until ``release()``."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self._mutex = threading.Lock()  # commands read tables on several threads: lock once

    def lock_once(self, path: Path) -> None:
        with self._mutex:
            if self.procs:
                return
            proc = subprocess.Popen(
                [sys.executable, "-c", LOCKER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            self.procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=30)
        self.procs.clear()


@pytest.fixture
def locker() -> Iterator[Locker]:
    lk = Locker()
    yield lk
    lk.release()


LOCK_CASES = [("after_open", c) for c in ("info", "stats", "report_json", "diff", "nccl", "roofline")] + [
    ("before_first_read", c) for c in ("stats", "report_json", "nccl")
]


@pytest.mark.parametrize(("when", "command"), LOCK_CASES)
def test_lock_taken_mid_run(
    bases: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    locker: Locker,
    when: str,
    command: str,
) -> None:
    """Another process takes an exclusive lock on the trace after nsys-doctor opened it (right after the open,
    or just before the first activity table is read, by polars or by the stdlib driver): one line naming the lock,
    exit 2."""
    trace = tmp_path / "locked.sqlite"
    shutil.copyfile(bases[0], trace)
    before = md5(trace)
    target = trace.resolve()
    if when == "after_open":
        original = Trace.open.__func__  # type: ignore[attr-defined]

        def open_then_lock(cls: type[Trace], path: object) -> Trace:
            t = original(cls, path)
            if Path(t.path).resolve() == target:
                locker.lock_once(target)
            return t

        monkeypatch.setattr(Trace, "open", classmethod(open_then_lock))
    else:
        original_read = Trace.read_table

        def lock_then_read(self: Trace, *args: object, **kwargs: object) -> object:
            if Path(self.path).resolve() == target:
                locker.lock_once(target)
            return original_read(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Trace, "read_table", lock_then_read)
        original_rows = Trace.rows

        def lock_then_rows(self: Trace, sql: str, *args: object, **kwargs: object) -> object:
            # the stdlib driver's reads of a small trace's activity tables (the summaries, a small cuda_gpu_trace)
            if "CUPTI_ACTIVITY_KIND" in sql and Path(self.path).resolve() == target:
                locker.lock_once(target)
            return original_rows(self, sql, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Trace, "rows", lock_then_rows)
    argv = command_lines(trace, bases[1])[command]
    code, _, err = run_cli(argv)
    check_run(argv, code, err)
    assert locker.procs, "the command never reached the point where the lock is taken"
    assert code == 2 and "database is locked" in err and "copy the file" in err, err
    locker.release()
    assert md5(trace) == before
