"""`session stop` signals only the nsys that `session start` launched: the state file's PID is checked against the
command line and start time recorded at the start, and damaged values (0, 1, negative, strings, our own PID) are
refused before anything is signalled. Live processes are real (`sleep`, a stand-in nsys); nothing here needs nsys."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import nsys_doctor.cli.capture as cli_capture
from nsys_doctor.capture import session
from nsys_doctor.cli.main import main
from nsys_doctor.errors import UsageError

linux_only = pytest.mark.skipif(not os.path.isfile("/proc/self/stat"), reason="needs /proc")

# A stand-in for nsys: `launch` runs the command as its child and records both PIDs; `shutdown` either fails (as when
# nsys no longer knows the session) or ends the application the way nsys does; SIGTERM to the launcher is recorded.
FAKE_NSYS = """#!{python}
import os, signal, subprocess, sys
a, d = sys.argv[1:], os.environ["FAKE_NSYS_DIR"]
if a[:1] == ["launch"]:
    def term(signum, frame):
        open(os.path.join(d, "launcher.sigterm"), "w").close()
        sys.exit(143)
    signal.signal(signal.SIGTERM, term)
    i = 1
    while i < len(a) and a[i].startswith("-"):
        i += 1
    child = subprocess.Popen(a[i:])
    with open(os.path.join(d, "pids.tmp"), "w") as f:
        f.write(f"{{os.getpid()}} {{child.pid}}")
    os.replace(os.path.join(d, "pids.tmp"), os.path.join(d, "pids"))
    sys.exit(child.wait())
if a[:1] == ["shutdown"]:
    if os.environ.get("FAKE_SHUTDOWN") != "works":
        print("no such session"); sys.exit(1)
    launcher, child = open(os.path.join(d, "pids")).read().split()
    os.kill(int(child), signal.SIGTERM)
    sys.exit(0)
if a[:2] == ["sessions", "list"]:
    print("ID TIME STATE LAUNCH NAME"); sys.exit(0)
sys.exit(2)
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch) -> Path:
    """A project directory with no nsys at all (stop then only checks and signals)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_capture, "find_nsys", lambda env=None: None)
    return tmp_path


@pytest.fixture
def fake_nsys(tmp_path: Path, monkeypatch) -> Path:
    """The stand-in nsys first on PATH; returns its path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    nsys = bin_dir / "nsys"
    nsys.write_text(FAKE_NSYS.format(python=sys.executable))
    nsys.chmod(nsys.stat().st_mode | stat.S_IEXEC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("NSYS", raising=False)
    monkeypatch.setenv("FAKE_NSYS_DIR", str(tmp_path))
    monkeypatch.setattr(session, "LAUNCH_WAIT_S", 0.3)
    return nsys


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    """An unrelated live process leading its own process group (so a wrong killpg would end it)."""
    p = subprocess.Popen(["sleep", "30"], start_new_session=True)
    # the child runs `sleep` once it has exec'd: until then its command line reads as empty
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and Path(f"/proc/{p.pid}/cmdline").is_file():
        if Path(f"/proc/{p.pid}/cmdline").read_bytes():
            break
        time.sleep(0.01)
    yield p
    p.kill()
    p.wait()


def gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if session.process_identity(pid) is None:
            return True
        time.sleep(0.05)
    return False


STATE_FILE = Path("target/profiling/.sessions/srv.json")
LAUNCH = ["/opt/nvidia/nsight-systems/bin/nsys", "launch", "--session-new=srv", "--trace=cuda,nvtx", "./server"]


def write_state(**values: object) -> Path:
    data: dict[str, object] = {
        "name": "srv",
        "pid": 4242,
        "command": ["./server"],
        "launch_command": LAUNCH,
        "log": "target/profiling/.sessions/srv.log",
        "started_utc": "2026-01-01T00:00:00Z",
        "cwd": "/p",
        "captures": 0,
    }
    data.update(values)
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps(data))
    return STATE_FILE


def stop(capsys) -> tuple[int, str, str]:
    rc = main(["session", "stop", "srv"])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("nsys-doctor: error: "), err
    return err


def own_identity(pid: int) -> dict[str, object]:
    ident = session.process_identity(pid)
    assert ident is not None
    return {"nsys_cmdline": list(ident.cmdline), "nsys_start_time": ident.start_time, "nsys_start_clock": ident.clock}


# --------------------------------------------------------------------------------- values that are never signalled


@pytest.mark.parametrize(
    ("pid", "shown"),
    [
        (0, "key 'pid' is 0, not the process id of a launched nsys"),  # os.killpg(0) is our own process group
        (1, "key 'pid' is 1, not the process id of a launched nsys"),
        (-1, "key 'pid' is -1, not the process id of a launched nsys"),  # kill(-1) reaches every process we may signal
        (-4242, "key 'pid' is -4242, not the process id"),
        ("4242", "key 'pid' is \"4242\" (str), not an integer"),
        (True, "key 'pid' is true (bool), not an integer"),
        (4242.0, "key 'pid' is 4242.0 (float), not an integer"),
        (None, "key 'pid' is null (NoneType), not an integer"),
    ],
)
def test_stop_refuses_a_pid_that_is_not_a_process_id(here: Path, capsys, pid: object, shown: str):
    path = write_state(pid=pid)
    rc, out, err = stop(capsys)
    assert rc == 2 and out == ""
    assert one_error_line(err).startswith(f"nsys-doctor: error: session state file {path}: {shown}")
    assert err.endswith(f": the file is damaged, so nothing was done; if the session is over, remove it: rm {path}\n")
    assert path.exists()  # refused, so nothing was cleaned up either


def test_stop_refuses_our_own_pid_and_group(here: Path, capsys):
    for pid in {os.getpid(), os.getpgrp()}:
        path = write_state(pid=pid, **own_identity(os.getpid()))
        rc, _, err = stop(capsys)
        assert rc == 2
        assert one_error_line(err).startswith(
            f"nsys-doctor: error: session state file {path}: key 'pid' is {pid}, nsys-doctor's own process (group)"
        )
    # still here, which a SIGTERM to our group would have prevented


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("nsys_cmdline", "nsys launch", "key 'nsys_cmdline' is \"nsys launch\" (str), not a list of strings"),
        ("nsys_start_time", "123", "key 'nsys_start_time' is \"123\" (str), not a number or null"),
        ("nsys_start_clock", "wall", "key 'nsys_start_clock' is \"wall\" (str), not 'proc-stat-ticks'"),
        ("launch_command", [1, 2], "key 'launch_command' is [1, 2] (list), not a list of strings"),
        ("name", "other", "key 'name' is 'other', not the file's session 'srv'"),
    ],
)
def test_other_damaged_values_name_the_file_and_key(here: Path, capsys, key: str, value: object, shown: str):
    path = write_state(**{key: value})
    rc, _, err = stop(capsys)
    assert rc == 2
    assert one_error_line(err).startswith(f"nsys-doctor: error: session state file {path}: {shown}")


def test_damaged_files_as_a_whole(here: Path, capsys):
    STATE_FILE.parent.mkdir(parents=True)
    for text, shown in [
        (b"{not json", "not JSON"),
        (b'{"name": "srv\xff"}', "not JSON ('utf-8' codec can't decode byte 0xff"),
        (b"[4242]", "holds list, not a JSON object"),
        (b"{}", "key 'name' is missing"),
        (b'{"name": "srv", "pid": 4242}', "key 'command' is missing"),
    ]:
        STATE_FILE.write_bytes(text)
        rc, _, err = stop(capsys)
        assert rc == 2
        assert one_error_line(err).startswith(f"nsys-doctor: error: session state file {STATE_FILE}: {shown}")
    assert session.load_state(Path("target/profiling"), "srv") is None  # the lenient reader skips it
    assert main(["session", "capture", "srv", "--seconds", "1"]) == 2  # capture names the damage too
    assert "key 'command' is missing" in capsys.readouterr().err


# --------------------------------------------------------------------------------- a PID that is someone else's now


@linux_only
def test_stop_leaves_an_unrelated_process_alive(here: Path, capsys, sleeper: subprocess.Popen):
    """The recorded nsys exited and its PID went to an unrelated process: different start time and command line."""
    mine = session.process_identity(sleeper.pid)
    assert mine is not None and mine.cmdline == ("sleep", "30")
    path = write_state(
        pid=sleeper.pid,
        nsys_cmdline=LAUNCH,
        nsys_start_time=mine.start_time - 500,
        nsys_start_clock=session.CLOCK_PROC,
    )
    rc, out, err = stop(capsys)
    assert rc == 2 and out == ""
    assert one_error_line(err) == (
        f"nsys-doctor: error: not signalling pid {sleeper.pid}: it is no longer session srv's nsys (pid {sleeper.pid} "
        f"started at {mine.start_time}, the session's nsys at {mine.start_time - 500} (proc-stat-ticks): the pid now "
        f"belongs to another process): the session's state file {path} is stale; if the session is over, remove it: "
        f"rm {path}\n"
    )
    time.sleep(0.2)
    assert sleeper.poll() is None  # still running
    assert path.exists()
    assert main(["session", "list"]) == 0
    assert f"srv  pid {sleeper.pid} (exited, pid reused)" in capsys.readouterr().out


@linux_only
def test_stop_refuses_a_process_whose_identity_matches_but_is_no_nsys_launch(here: Path, capsys, sleeper):
    """Command line and start time copied from the live `sleep`: still not the session's `nsys launch`."""
    write_state(pid=sleeper.pid, **own_identity(sleeper.pid))
    rc, _, err = stop(capsys)
    assert rc == 2
    assert f"it is no longer session srv's nsys (the recorded command line of pid {sleeper.pid} is not" in err
    assert sleeper.poll() is None


@linux_only
def test_stop_refuses_a_pid_without_a_recorded_identity(here: Path, capsys, sleeper):
    """A state file from before identities were recorded: the PID alone is not enough to signal."""
    path = write_state(pid=sleeper.pid)
    rc, _, err = stop(capsys)
    assert rc == 2
    assert one_error_line(err) == (
        f"nsys-doctor: error: not signalling pid {sleeper.pid}: cannot check that it is still session srv's nsys "
        f"(no command line and start time were recorded for pid {sleeper.pid}): if it is, end it yourself "
        f"(kill {sleeper.pid}); then remove the state file: rm {path}\n"
    )
    assert sleeper.poll() is None


def test_without_proc_or_psutil_nothing_is_signalled(here: Path, capsys, sleeper, monkeypatch):
    monkeypatch.setattr(session, "identity_clock", lambda: None)
    state = session.record_identity(session.SessionState("srv", sleeper.pid, ["x"], LAUNCH, "l", "t", "/p"))
    assert (state.nsys_cmdline, state.nsys_start_time, state.nsys_start_clock) == (None, None, None)
    assert session.check_process(state).status == "unknown"
    with pytest.raises(UsageError, match=f"not signalling pid {sleeper.pid}: cannot check"):
        session.terminate(state, STATE_FILE)
    assert sleeper.poll() is None


def test_an_exiting_launcher_is_gone_not_another_process(monkeypatch):
    """While a process exits the kernel has already dropped its command line (/proc/PID/cmdline is empty) but not
    its start time: with the recorded start time that is the launcher on its way out, not a reused PID."""
    state = session.SessionState("srv", 4242, ["./server"], LAUNCH, "l", "t", "/p", 0, LAUNCH, 100, session.CLOCK_PROC)
    monkeypatch.setattr(session, "identity_clock", lambda: session.CLOCK_PROC)
    now = {"identity": session.ProcessIdentity((), 100, session.CLOCK_PROC)}
    monkeypatch.setattr(session, "process_identity", lambda pid, clock=None: now["identity"])
    assert session.check_process(state) == session.ProcessCheck("gone", "pid 4242 is exiting")
    now["identity"] = session.ProcessIdentity((), 101, session.CLOCK_PROC)
    assert session.check_process(state).status == "other"
    now["identity"] = session.ProcessIdentity(tuple(LAUNCH), 100, session.CLOCK_PROC)
    assert session.check_process(state).status == "nsys"


# --------------------------------------------------------------------------------- a launcher like the real one


def launched(pids: Path) -> tuple[int, int]:
    """The stand-in's PID and its child's, once it has written them (its SIGTERM handler is set by then)."""
    deadline = time.monotonic() + 10
    while not pids.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    launcher, child = (int(x) for x in pids.read_text().split())
    return launcher, child


def launch_fake(nsys: Path, tmp_path: Path) -> tuple[subprocess.Popen, list[str]]:
    """The stand-in nsys launching `sleep 30` in its own session, as session start does."""
    argv = [str(nsys), "launch", "--session-new=srv", "--trace=cuda,nvtx", "sleep", "30"]
    p = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL)
    assert launched(tmp_path / "pids")[0] == p.pid
    return p, argv


def state_for(p: subprocess.Popen, argv: list[str], **values: object) -> session.SessionState:
    s = session.record_identity(session.SessionState("srv", p.pid, ["sleep", "30"], argv, "l", "t", "/p"))
    for k, v in values.items():
        setattr(s, k, v)
    return s


@linux_only
def test_start_time_or_command_line_mismatch_is_refused(fake_nsys: Path, tmp_path: Path):
    p, argv = launch_fake(fake_nsys, tmp_path)
    try:
        good = state_for(p, argv)
        assert good.nsys_start_clock == session.CLOCK_PROC and isinstance(good.nsys_start_time, int)
        assert good.nsys_cmdline == [sys.executable, *argv]  # a #! script: the interpreter comes first
        assert session.check_process(good).status == "nsys"
        later = state_for(p, argv, nsys_start_time=good.nsys_start_time + 1)
        with pytest.raises(UsageError, match=f"it is no longer session srv's nsys \\(pid {p.pid} started at"):
            session.terminate(later, STATE_FILE)
        other = state_for(p, argv, nsys_cmdline=[*good.nsys_cmdline[:-1], "31"])
        with pytest.raises(UsageError, match=f"pid {p.pid} runs '.*sleep 30', not '.*sleep 31'"):
            session.terminate(other, STATE_FILE)
        time.sleep(0.2)
        assert p.poll() is None and not (tmp_path / "launcher.sigterm").exists()
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def test_psutil_identity_where_there_is_no_proc(fake_nsys: Path, tmp_path: Path, monkeypatch):
    psutil = pytest.importorskip("psutil")
    monkeypatch.setattr(session, "identity_clock", lambda: session.CLOCK_PSUTIL)
    p, argv = launch_fake(fake_nsys, tmp_path)
    try:
        good = state_for(p, argv)
        assert good.nsys_start_clock == session.CLOCK_PSUTIL
        assert good.nsys_start_time == pytest.approx(psutil.Process(p.pid).create_time())
        assert session.check_process(good).status == "nsys"
        assert session.check_process(state_for(p, argv, nsys_start_time=good.nsys_start_time - 2)).status == "other"
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert session.check_process(good).status == "gone"


@linux_only
def test_a_dead_pid_is_never_signalled(here: Path, capsys, fake_nsys: Path, tmp_path: Path):
    p, argv = launch_fake(fake_nsys, tmp_path)
    state = state_for(p, argv)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert session.check_process(state).status == "gone"
    with pytest.raises(UsageError, match=f"it is no longer session srv's nsys \\(no process has pid {p.pid} any more"):
        session.terminate(state, STATE_FILE)
    # the command: nothing to signal, and the state of a session that is over goes away
    session.save_state(Path("target/profiling"), state)
    rc, out, err = stop(capsys)
    assert (rc, out, err) == (0, f"session srv stopped (its nsys, pid {p.pid}, had already exited)\n", "")
    assert not STATE_FILE.exists()


# --------------------------------------------------------------------------------- the whole path: start, stop


def started(capsys) -> tuple[int, int, dict]:
    assert main(["session", "start", "srv", "--", "sleep", "30"]) == 0
    out = capsys.readouterr().out
    data = json.loads(STATE_FILE.read_text())
    assert out.startswith(f"session srv started (pid {data['pid']}, log target/profiling/.sessions/srv.log)")
    launcher, child = launched(Path("pids"))
    assert launcher == data["pid"]
    return launcher, child, data


@linux_only
def test_start_records_the_identity_and_stop_signals_that_process_group(fake_nsys: Path, capsys):
    launcher, child, data = started(capsys)
    assert data["nsys_cmdline"] == [sys.executable, str(fake_nsys), *data["launch_command"][1:]]
    assert data["launch_command"][1:] == ["launch", "--session-new=srv", "--trace=cuda,nvtx", "--cuda-graph-trace=node",
                                          "sleep", "30"]  # fmt: skip
    assert data["nsys_start_clock"] == "proc-stat-ticks"
    stat_fields = Path(f"/proc/{launcher}/stat").read_text().rsplit(")", 1)[1].split()
    assert data["nsys_start_time"] == int(stat_fields[19])  # field 22
    assert os.getpgid(launcher) == launcher  # it leads its own group: the group stop may signal
    assert main(["session", "list"]) == 0
    assert f"srv  pid {launcher} (running, unknown to nsys)" in capsys.readouterr().out
    # a second start while it runs is refused
    assert main(["session", "start", "srv", "--", "sleep", "30"]) == 2
    assert f"session srv is running (pid {launcher}): nsys-doctor session stop srv first" in capsys.readouterr().err

    rc, out, err = stop(capsys)  # the stand-in's shutdown fails, so stop ends the launcher's group itself
    assert rc == 0, err
    assert out == f"session srv stopped (sent SIGTERM to process group {launcher})\n"
    assert gone(launcher) and gone(child)
    assert Path("launcher.sigterm").exists()  # the launcher got SIGTERM, and its child with it
    assert not STATE_FILE.exists()


@linux_only
def test_stop_signals_nothing_when_nsys_shutdown_ends_the_session(fake_nsys: Path, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_SHUTDOWN", "works")
    launcher, child, _ = started(capsys)
    rc, out, err = stop(capsys)
    assert rc == 0, err
    assert out == "session srv stopped\n"
    assert err == f"nsys-doctor: {fake_nsys} shutdown --session=srv\n"
    assert gone(launcher) and gone(child)
    assert not Path("launcher.sigterm").exists()  # it exited on its own after its application ended
    assert not STATE_FILE.exists()
