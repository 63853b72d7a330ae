"""The progress line: silent for quick work, one line on a terminal's standard error naming the stages, never on
standard output, off when piped, with --quiet or NSYS_DOCTOR_QUIET=1; the output itself does not change."""

from __future__ import annotations

import io
import sys
import time

import pytest

from nsys_doctor import progress
from nsys_doctor.cli.main import main

from .conftest import SAMPLE


class FakeTTY(io.StringIO):
    """Standard error as a terminal."""

    def isatty(self) -> bool:
        return True


def tty_stderr(monkeypatch: pytest.MonkeyPatch) -> FakeTTY:
    """Standard error replaced by a terminal, with no delay before the line (called in the test itself: pytest's
    capture sets sys.stderr again between the fixtures and the test)."""
    fake = FakeTTY()
    monkeypatch.setattr(sys, "stderr", fake)
    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    monkeypatch.delenv(progress.QUIET_ENV, raising=False)
    return fake


def _stdout_of(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 0
    return capsys.readouterr().out


def test_quick_work_shows_nothing() -> None:
    out = FakeTTY()
    with progress.task(stream=out, delay=60.0), progress.stage("reading"):
        pass
    assert out.getvalue() == ""


def test_line_names_the_stage_and_time_and_is_cleared() -> None:
    out = FakeTTY()
    with progress.task(stream=out, delay=0.0):
        with progress.stage("reading"):
            time.sleep(0.05)
        with progress.stage("rendering"):
            pass
    text = out.getvalue()
    assert "\rnsys-doctor: reading (" in text and " s)" in text
    assert "\rnsys-doctor: rendering (" in text
    assert "\n" not in text  # rewritten in place
    last = text.rsplit("\r", 2)  # ends by overwriting the line with spaces
    assert last[-1] == "" and last[-2].strip() == ""


def test_not_a_terminal_shows_nothing() -> None:
    out = io.StringIO()
    with progress.task(stream=out, delay=0.0), progress.stage("reading"):
        time.sleep(0.05)
    assert out.getvalue() == ""


def test_environment_silences_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.QUIET_ENV, "1")
    out = FakeTTY()
    with progress.task(stream=out, delay=0.0), progress.stage("reading"):
        pass
    assert out.getvalue() == ""


def test_other_messages_clear_the_line_first(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tty_stderr(monkeypatch)
    with progress.task(), progress.stage("reading"):
        sys.stderr.write("warning: something\n")
    text = fake.getvalue()
    before = text.partition("warning: something\n")[0]
    assert "nsys-doctor: reading" in before
    assert before.endswith("\r") and before.rsplit("\r", 2)[-2].strip() == ""  # the line was wiped first
    assert sys.stderr is fake  # standard error is given back


@pytest.mark.parametrize(
    ("args", "stages"),
    [
        (["report", str(SAMPLE)], ["reading", "structure", "analyses", "rendering"]),
        (["stats", str(SAMPLE), "-r", "cuda_gpu_kern_sum"], ["reading cuda_gpu_kern_sum", "rendering"]),
    ],
)
def test_commands_name_their_stages_on_stderr_only(
    args: list[str], stages: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tty_stderr(monkeypatch)
    out = _stdout_of(args, capsys)
    err = fake.getvalue()
    for name in stages:
        assert f"nsys-doctor: {name}" in err
    assert "nsys-doctor:" not in out and "\r" not in out


def test_quiet_option_silences_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tty_stderr(monkeypatch)
    _stdout_of(["report", str(SAMPLE), "--quiet"], capsys)
    assert fake.getvalue() == ""
    _stdout_of(["stats", str(SAMPLE), "-r", "cuda_gpu_kern_sum", "-q"], capsys)
    assert fake.getvalue() == ""
    _stdout_of(["stats", str(SAMPLE), "-r", "cuda_gpu_kern_sum"], capsys)  # --quiet holds for its command only
    assert "nsys-doctor: reading" in fake.getvalue()


def test_report_output_is_the_same_with_the_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tty_stderr(monkeypatch)
    shown = _stdout_of(["report", str(SAMPLE), "--format", "json"], capsys)
    assert "nsys-doctor: analyses" in fake.getvalue()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # piped
    piped = _stdout_of(["report", str(SAMPLE), "--format", "json"], capsys)
    assert shown == piped and shown.startswith("{")


def test_counter_shows_how_far_the_stage_is() -> None:
    out = FakeTTY()
    with progress.task(stream=out, delay=0.0), progress.stage("reading ranks"):
        progress.counter()(3, 8)
    assert "\rnsys-doctor: reading ranks 3/8 (" in out.getvalue()


def test_stages_nest_and_the_last_name_stays_until_the_next_stage() -> None:
    p = progress.Progress(stream=FakeTTY(), enabled=False)
    with p.stage("analyses"):
        with p.stage("roofline"):
            assert p.line().startswith("nsys-doctor: roofline (")
        assert p.line().startswith("nsys-doctor: analyses (")
    assert p.line().startswith("nsys-doctor: analyses (")  # writing the output is still its work
    with p.stage("reading"):
        pass
    with p.stage("structure"):
        pass
    assert p.line().startswith("nsys-doctor: structure (")
