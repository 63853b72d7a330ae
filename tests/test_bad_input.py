"""Bad input: one line naming the problem and the fix, exit code 2, no traceback, input file untouched."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from nsys_doctor.cli.main import main

from .conftest import SAMPLE


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    return code, err


def _one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("nsys-doctor: error: ")
    assert "Traceback" not in err
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])


def _digest(p: Path) -> tuple[str, float]:
    return hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "copy.sqlite"
    shutil.copyfile(SAMPLE, dst)
    return dst


@pytest.mark.parametrize("command", ["stats", "info"])
def test_missing_path(capsys, tmp_path, command):
    code, err = _run(capsys, command, str(tmp_path / "nope.sqlite"))
    _one_line_error(code, err, "not found", "check the path")


def test_directory(capsys, tmp_path):
    _one_line_error(*_run(capsys, "stats", str(tmp_path)), "directory", ".sqlite")


def test_empty_file(capsys, tmp_path):
    p = tmp_path / "empty.sqlite"
    p.write_bytes(b"")
    _one_line_error(*_run(capsys, "info", str(p)), "empty", "nsys export")


def test_text_file(capsys, tmp_path):
    p = tmp_path / "notes.sqlite"
    p.write_text("Time (%)  Total Time (ns)\n 61.9  435240\n")
    _one_line_error(*_run(capsys, "stats", str(p)), "not a SQLite database", "nsys export")


def test_sqlite_but_not_nsys(capsys, tmp_path):
    p = tmp_path / "other.sqlite"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE users(id INTEGER, name TEXT)")
    con.commit()
    con.close()
    before = _digest(p)
    _one_line_error(*_run(capsys, "stats", str(p), "-r", "cuda_gpu_kern_sum"), "not an nsys export")
    assert _digest(p) == before


def test_export_cut_short(capsys, tmp_path):
    # what nsys 2025.3 wrote for a report recorded by nsys 2025.6 (a public .nsys-rep): its string table and two
    # tables of the file's own, no event or target table
    p = tmp_path / "cut_short.sqlite"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE StringIds(id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("CREATE TABLE ANALYSIS_FILE(id INTEGER PRIMARY KEY, filename TEXT)")
    con.execute("CREATE TABLE ProcessStreams(globalPid INTEGER, filenameId INTEGER, contentId INTEGER)")
    con.execute("INSERT INTO StringIds VALUES (1, 'x')")
    con.commit()
    con.close()
    before = _digest(p)
    for cmd in (["stats", str(p), "-r", "cuda_gpu_kern_sum"], ["report", str(p)], ["info", str(p)]):
        code, err = _run(capsys, *cmd)
        _one_line_error(code, err, "export cut short", "StringIds", "nsys export --type=sqlite")
        assert "not an nsys export" not in err
    assert _digest(p) == before


def test_truncated_copy(capsys, tmp_path):
    p = tmp_path / "cut.sqlite"
    data = SAMPLE.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    before = _digest(p)
    _one_line_error(*_run(capsys, "stats", str(p), "-r", "cuda_gpu_kern_sum"), "truncated")
    assert _digest(p) == before


def test_damaged_pages(capsys, tmp_path):
    """Right size, garbage inside: SQLite's own error is turned into the one-line form."""
    p = tmp_path / "garbled.sqlite"
    data = bytearray(SAMPLE.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for i in range(page, len(data) - page, 7):
        data[i] = 0xA5
    p.write_bytes(bytes(data))
    code, err = _run(capsys, "stats", str(p), "-r", "cuda_gpu_kern_sum")
    _one_line_error(code, err)


def test_locked_by_writer(capsys, sample_copy):
    writer = sqlite3.connect(sample_copy, timeout=0)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        _one_line_error(*_run(capsys, "stats", str(sample_copy), "-r", "cuda_api_sum"), "locked", "wait")
    finally:
        writer.rollback()
        writer.close()


def test_unknown_report(capsys):
    _one_line_error(*_run(capsys, "stats", str(SAMPLE), "-r", "cuda_gpu_kern_summ"), "unknown report", "did you mean")


def test_unknown_report_argument(capsys):
    _one_line_error(*_run(capsys, "stats", str(SAMPLE), "-r", "cuda_api_sum:base"), "no argument 'base'")


@pytest.mark.parametrize(
    "value", ["10s", "abc/2s", "1parsec/", "20s/10s", "-5s/10s", "1s/-2s", "99999999999999999999s/", "/1e999999s"]
)
def test_bad_filter_time(capsys, value):
    _one_line_error(
        *_run(capsys, "stats", str(SAMPLE), "--filter-time", value),
        "filter-time" if "/" not in value or value == "20s/10s" else "time",
    )


def test_missing_nvtx_range(capsys):
    _one_line_error(
        *_run(capsys, "stats", str(SAMPLE), "--filter-nvtx", "no_such_range"), "could not be found", "decode_step"
    )


def test_bad_format_and_units(capsys):
    _one_line_error(*_run(capsys, "stats", str(SAMPLE), "--format", "xml"), "unknown format")
    _one_line_error(*_run(capsys, "stats", str(SAMPLE), "--timeunit", "fortnight"), "time unit")


def test_unknown_flag(capsys):
    _one_line_error(*_run(capsys, "stats", str(SAMPLE), "--frobnicate"), "no such option")


def test_nsys_rep_without_nsys(capsys, tmp_path, monkeypatch):
    rep = tmp_path / "run.nsys-rep"
    rep.write_bytes(b"\x00" * 64)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NSYS", raising=False)
    monkeypatch.setattr("nsys_doctor.trace.nsysbin.CANDIDATE_GLOBS", ())
    code, err = _run(capsys, "info", str(rep))
    _one_line_error(code, err, "nsys is not installed", "nsys export --type=sqlite")
    assert not (tmp_path / "run.sqlite").exists()


def test_good_input_is_not_modified(capsys, sample_copy):
    before = _digest(sample_copy)
    assert main(["stats", str(sample_copy), "-r", "cuda_gpu_kern_sum", "-r", "nvtx_sum"]) == 0
    assert main(["info", str(sample_copy)]) == 0
    capsys.readouterr()
    assert _digest(sample_copy) == before
    assert sorted(p.name for p in sample_copy.parent.iterdir()) == ["copy.sqlite"]


@pytest.mark.parametrize(
    ("window", "words"), [("-5s/1s", "negative"), ("1e999999s/", "out of range"), ("3s/1s", "start is after end")]
)
def test_bad_report_window(capsys, window, words):
    _one_line_error(*_run(capsys, "report", str(SAMPLE), "--window", window), "--window", words)


@pytest.fixture
def symlink_loop(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "loop_a.sqlite", tmp_path / "loop_b.sqlite"
    a.symlink_to(b)
    b.symlink_to(a)
    return a, b


@pytest.mark.parametrize("command", ["nccl", "report", "stats", "diff"])
def test_symlink_loop(capsys, symlink_loop, command):
    a, b = symlink_loop
    args = [str(a), str(b)] if command != "report" else [str(a), str(SAMPLE)]
    _one_line_error(*_run(capsys, command, *args), "symbolic link loop")
    _one_line_error(*_run(capsys, "info", str(a)), "symbolic link loop")


def test_directory_with_a_symlink_loop_inside(capsys, tmp_path):
    """Entries of a rank directory that are link loops are not traces: the other traces are used."""
    d = tmp_path / "ranks"
    d.mkdir()
    (d / "x.sqlite").symlink_to(d / "y.sqlite")
    (d / "y.sqlite").symlink_to(d / "x.sqlite")
    _one_line_error(*_run(capsys, "nccl", str(d)), "no traces in directory")


def test_unreadable_rank_directory(capsys, tmp_path, monkeypatch):
    d = tmp_path / "ranks"
    d.mkdir()
    original = Path.iterdir

    def iterdir(self: Path):  # type: ignore[no-untyped-def]
        if self == d:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    for command in ("nccl", "report", "stats"):
        _one_line_error(*_run(capsys, command, str(d)), "cannot list directory", "permission denied")
