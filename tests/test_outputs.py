"""Outputs never touch inputs: -o onto each input of each command, symlinks, folders, special files, closed
streams, and the exit-code contract of the entry point."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nsys_doctor.cli.main import main
from nsys_doctor.errors import UsageError
from nsys_doctor.safe_io import is_trace_file, write_atomic

from .conftest import DATA, SAMPLE


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, Path]:
    a = tmp_path / "a.sqlite"
    b = tmp_path / "b.sqlite"
    shutil.copy(SAMPLE, a)
    shutil.copy(SAMPLE, b)
    return a, b


def _refused(argv: list[str], protected: list[Path], capsys: pytest.CaptureFixture[str]) -> str:
    before = {p: _md5(p) for p in protected}
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nsys-doctor: error:"), err
    for p, digest in before.items():
        assert _md5(p) == digest, f"{p} was modified"
    return err


@pytest.mark.parametrize(
    ("argv", "target"),
    [
        (["report", "{a}"], "{a}"),
        (["report", "{a}", "-f", "json"], "{a}"),
        (["stats", "{a}", "-r", "cuda_gpu_kern_sum", "--format", "csv"], "{b}.csv"),
        (["diff", "{a}", "{b}"], "{b}"),
        (["diff", "{a}", "{b}"], "{a}"),
        (["nccl", "{a}", "{b}"], "{b}"),
        (["roofline", "{a}", "--model", "{model}"], "{a}"),
        (["roofline", "{a}", "--model", "{model}"], "{model}"),
        (["scaling", "{a}", "{b}", "--ctx", "1,2048"], "{b}"),
    ],
)
def test_output_onto_an_input_is_refused(
    argv: list[str], target: str, pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = pair
    model = tmp_path / "config.json"
    shutil.copy(DATA / "llama_mini_config.json", model)
    names = {"a": str(a), "b": str(b), "model": str(model)}
    if target == "{b}.csv":  # a CSV that is really a trace
        shutil.copy(SAMPLE, str(b) + ".csv")
    full = [x.format(**names) for x in argv] + ["-o", target.format(**names)]
    err = _refused(full, [a, b, model, *(p for p in [Path(str(b) + ".csv")] if p.exists())], capsys)
    assert "input" in err or "existing trace" in err


def test_output_through_a_symlink_to_the_input_is_refused(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = pair
    link = tmp_path / "report.txt"
    link.symlink_to(a)
    _refused(["report", str(a), "-o", str(link)], [a], capsys)
    hard = tmp_path / "hard.txt"
    os.link(a, hard)
    _refused(["report", str(a), "-o", str(hard)], [a], capsys)


def test_explain_output_onto_its_paste_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paste = tmp_path / "p.txt"
    shutil.copy(next(iter(sorted((DATA / "pasted").glob("*.txt")))), paste)
    _refused(["explain", str(paste), "-o", str(paste)], [paste], capsys)


def test_stats_output_is_a_base_name_as_in_nsys(pair: tuple[Path, Path]) -> None:
    a, _ = pair
    digest = _md5(a)
    assert main(["stats", str(a), "-r", "cuda_gpu_kern_sum", "--format", "csv", "-o", str(a)]) == 0
    assert _md5(a) == digest
    assert Path(f"{a}_cuda_gpu_kern_sum.csv").read_text().startswith("Time (%)")


def test_an_existing_trace_is_never_overwritten(pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = pair
    err = _refused(["report", str(a), "-o", str(b)], [a, b], capsys)
    assert "existing trace" in err
    renamed = b.with_name("trace.bin")  # SQLite content under any name
    b.rename(renamed)
    _refused(["report", str(a), "-o", str(renamed)], [a, renamed], capsys)


def test_output_folder_gets_the_default_name(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = pair
    out = tmp_path / "out"
    assert main(["report", str(a), "-f", "json", "-o", f"{out}/"]) == 2  # missing folder: refused
    assert "does not exist" in capsys.readouterr().err
    out.mkdir()
    assert main(["report", str(a), "-f", "json", "-o", f"{out}/"]) == 0
    assert (out / "a.report.json").read_text().startswith("{")
    assert main(["stats", str(a), "-r", "cuda_gpu_kern_sum", "-o", str(out)]) == 0
    assert (out / "a_cuda_gpu_kern_sum.txt").is_file()


@pytest.mark.parametrize(
    ("where", "expect"),
    [("missing/x.txt", "does not exist"), ("/dev/full", "no space left"), ("{tmp}", "folder")],
)
def test_unwritable_outputs_are_one_line_errors(
    where: str, expect: str, pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if where == "/dev/full" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    a, _ = pair
    target = where.format(tmp=tmp_path) if "{" in where else (where if where.startswith("/") else str(tmp_path / where))
    argv = ["report", str(a), "-o", target]
    if where == "{tmp}":
        # an existing folder without a trailing slash is a folder too: the report goes inside it
        assert main(argv) == 0
        assert (tmp_path / "a.report.txt").is_file()
        return
    err = _refused(argv, [a], capsys)
    assert expect in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = pair
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        err = _refused(["report", str(a), "-o", str(ro / "r.txt")], [a], capsys)
        assert "permission denied" in err
    finally:
        ro.chmod(0o700)


def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "r.txt"
    dest.write_text("old")
    dest.chmod(0o640)

    def boom(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(UsageError, match="no space left"):
        write_atomic(dest, "new")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.txt"]  # no temporary file left behind
    monkeypatch.undo()
    write_atomic(dest, "new")
    assert dest.read_text() == "new"
    assert dest.stat().st_mode & 0o777 == 0o640  # the file's mode is kept


def test_write_atomic_refuses_a_symlink_when_asked(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    link = tmp_path / "base.json"
    link.symlink_to(victim)
    with pytest.raises(UsageError, match="symlink"):
        write_atomic(link, "{}", refuse_symlink=True)
    assert victim.read_text() == "keep"


def test_is_trace_file(tmp_path: Path) -> None:
    assert is_trace_file(SAMPLE)
    txt = tmp_path / "r.txt"
    txt.write_text("SQLite? no")
    assert not is_trace_file(txt)
    assert not is_trace_file(tmp_path / "missing.sqlite")


def _cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nsys_doctor.cli.main", *args], capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def test_closed_stdout_is_a_one_line_error(pair: tuple[Path, Path]) -> None:
    a, _ = pair
    r = subprocess.run(
        [sys.executable, "-c", "import sys; from nsys_doctor.cli.main import entry; entry()", "report", str(a)],
        capture_output=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        close_fds=True,
        pass_fds=(),
        preexec_fn=lambda: os.close(1),
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "nsys-doctor: error: standard output is closed: redirect it to a file, or use -o FILE"
    ]


def test_internal_error_is_one_line_exit_3(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import nsys_doctor.cli.info_run as info_mod

    def broken(*_a: object, **_k: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(info_mod, "describe", broken)
    assert main(["info", str(SAMPLE)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("nsys-doctor: internal error: KeyError: 'boom' at nsys_doctor/cli/info_run.py:")
    assert "--debug" in err
    with pytest.raises(KeyError):
        main(["info", str(SAMPLE), "--debug"])
