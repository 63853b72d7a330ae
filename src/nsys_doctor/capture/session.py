"""Interactive sessions: ``nsys launch`` a long-running process once, then ``nsys start``/``nsys stop`` around the
moments worth tracing, and ``nsys shutdown`` at the end.

Application-scope flags (what is traced, graph granularity) go to ``nsys launch``; collection-scope flags
(output, export, sampling) go to ``nsys start``. A small JSON state file per session under
``target/profiling/.sessions/`` remembers the launcher's PID, the commands and the log, so ``session list`` and
``session stop`` work from any shell.

A PID alone does not name a process: once nsys exits, the kernel hands its PID to the next process, and a damaged
state file can hold 0 (our own process group), 1 or a string. So the state also records the launcher's identity
as the kernel reports it right after the start (its command line from ``/proc/PID/cmdline`` and its start time,
field 22 of ``/proc/PID/stat``: clock ticks since boot; psutil's equivalents where there is no ``/proc`` and psutil
is installed). ``session stop`` signals only a process whose identity is still the recorded one, and the process
group only when that process leads it; anything else is refused with a one-line error.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .command import DEFAULT_TRACE

STATE_DIR = ".sessions"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")  # nsys: a session name starts with a letter


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"bad session name {name!r}", "start with a letter; then letters, digits, '.', '_' or '-' (at most 64)"
        )
    return name


def launch_argv(
    nsys: str,
    name: str,
    command: Sequence[str],
    trace: Sequence[str] = DEFAULT_TRACE,
    graph_trace: str = "node",
    memory_usage: bool = False,
    backtrace: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    if not command:
        raise UsageError("no command to launch", "nsys-doctor session start NAME -- COMMAND ...")
    argv = [nsys, "launch", f"--session-new={check_name(name)}", f"--trace={','.join(trace)}"]
    argv.append(f"--cuda-graph-trace={graph_trace}")
    if memory_usage:
        argv.append("--cuda-memory-usage=true")
    if backtrace:
        argv.append(f"--cudabacktrace={backtrace}")
    return [*argv, *extra, *command]


def start_argv(
    nsys: str, name: str, output: str, lighter: bool = False, gpu_metrics: bool = False, stats: bool = False
) -> list[str]:
    argv = [nsys, "start", f"--session={check_name(name)}", "--force-overwrite=true", "--export=sqlite", "-o", output]
    if lighter:
        argv += ["--sample=none", "--cpuctxsw=none"]
    if gpu_metrics:
        argv.append("--gpu-metrics-devices=all")
    if stats:
        argv.append("--stats=true")
    return argv


def stop_argv(nsys: str, name: str) -> list[str]:
    return [nsys, "stop", f"--session={check_name(name)}"]


def shutdown_argv(nsys: str, name: str) -> list[str]:
    return [nsys, "shutdown", f"--session={check_name(name)}"]


def list_argv(nsys: str) -> list[str]:
    return [nsys, "sessions", "list"]


def parse_sessions_list(text: str) -> list[str]:
    """Session names from ``nsys sessions list``: a table ``ID TIME STATE LAUNCH NAME`` (names may hold spaces,
    so the name is everything from the NAME column on)."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = next((i for i, line in enumerate(lines) if re.search(r"\bNAME\s*$", line)), None)
    if header is None:
        return []
    at = len(lines[header].split()) - 1
    names = []
    for line in lines[header + 1 :]:
        parts = line.split()
        if len(parts) > at:
            names.append(" ".join(parts[at:]))
    return names


LAUNCH_WAIT_S = 3.0  # how long `session start` watches the launcher for an early exit
CLOCK_PROC = "proc-stat-ticks"  # start time: field 22 of /proc/PID/stat, clock ticks since boot
CLOCK_PSUTIL = "psutil-create-time"  # start time: psutil's Process.create_time(), seconds since the epoch


@dataclass
class SessionState:
    name: str
    pid: int
    command: list[str]
    launch_command: list[str]
    log: str
    started_utc: str
    cwd: str
    captures: int = 0
    # who `pid` was right after the start: its command line and start time, and which clock that time is on
    nsys_cmdline: list[str] | None = None
    nsys_start_time: int | float | None = None
    nsys_start_clock: str | None = None


def state_path(output_dir: Path, name: str) -> Path:
    return output_dir / STATE_DIR / f"{check_name(name)}.json"


def save_state(output_dir: Path, state: SessionState) -> Path:
    p = state_path(output_dir, state.name)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    return p


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


_CHECKS: dict[str, tuple[str, Any]] = {
    "name": ("a string", lambda v: isinstance(v, str)),
    "pid": ("an integer", _is_int),
    "command": ("a list of strings", _is_str_list),
    "launch_command": ("a list of strings", _is_str_list),
    "log": ("a string", lambda v: isinstance(v, str)),
    "started_utc": ("a string", lambda v: isinstance(v, str)),
    "cwd": ("a string", lambda v: isinstance(v, str)),
    "captures": ("an integer", _is_int),
    "nsys_cmdline": ("a list of strings or null", lambda v: v is None or _is_str_list(v)),
    "nsys_start_time": ("a number or null", lambda v: v is None or _is_int(v) or isinstance(v, float)),
    "nsys_start_clock": (f"{CLOCK_PROC!r}, {CLOCK_PSUTIL!r} or null", lambda v: v in (None, CLOCK_PROC, CLOCK_PSUTIL)),
}


def _damaged(path: Path, problem: str) -> UsageError:
    return UsageError(
        f"session state file {path}: {problem}",
        f"the file is damaged, so nothing was done; if the session is over, remove it: rm {path}",
    )


def parse_state(path: Path, data: object) -> SessionState:
    """A state file's JSON as a SessionState, every key checked: a wrong type is a UsageError naming file and key."""
    if not isinstance(data, dict):
        raise _damaged(path, f"holds {type(data).__name__}, not a JSON object")
    missing = [f.name for f in fields(SessionState) if f.default is MISSING and f.name not in data]
    if missing:
        raise _damaged(path, f"key {missing[0]!r} is missing")
    values: dict[str, Any] = {}
    for key, (want, ok) in _CHECKS.items():
        if key not in data:
            continue
        v = data[key]
        if not ok(v):
            shown = json.dumps(v)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise _damaged(path, f"key {key!r} is {shown} ({type(v).__name__}), not {want}")
        values[key] = v
    if values["pid"] <= 1:
        raise _damaged(path, f"key 'pid' is {values['pid']}, not the process id of a launched nsys (those are > 1)")
    if values["name"] != path.stem:
        raise _damaged(path, f"key 'name' is {values['name']!r}, not the file's session {path.stem!r}")
    return SessionState(**values)


def read_state(output_dir: Path, name: str) -> SessionState | None:
    """The session's state; None when there is no state file, a UsageError when it cannot be trusted."""
    p = state_path(output_dir, name)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read session state file {p}: {exc.strerror}", f"check the file: ls -l {p}") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise _damaged(p, f"not JSON ({exc})") from exc
    return parse_state(p, data)


def load_state(output_dir: Path, name: str) -> SessionState | None:
    """Like read_state, but a missing, unreadable or damaged file is None."""
    try:
        return read_state(output_dir, name)
    except UsageError:
        return None


def all_states(output_dir: Path) -> list[SessionState]:
    d = output_dir / STATE_DIR
    out = []
    for p in sorted(d.glob("*.json")) if d.is_dir() else []:
        s = load_state(output_dir, p.stem) if _NAME.match(p.stem) else None
        if s is not None:
            out.append(s)
    return out


def remove_state(output_dir: Path, name: str) -> None:
    state_path(output_dir, name).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ process identity


@dataclass(frozen=True)
class ProcessIdentity:
    """What tells one process from a later one with the same PID."""

    cmdline: tuple[str, ...]
    start_time: int | float
    clock: str


def identity_clock() -> str | None:
    """How processes can be identified here: /proc (Linux), else psutil when it is installed, else not at all."""
    if os.path.isfile("/proc/self/stat"):
        return CLOCK_PROC
    try:
        import psutil  # noqa: F401  # optional: only whether it is installed
    except ImportError:
        return None
    return CLOCK_PSUTIL


def _proc_identity(pid: int) -> ProcessIdentity | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    # the command name (field 2) is in parentheses and may hold spaces or ')': fields 3.. follow the last ')'
    rest = stat[stat.rindex(b")") + 2 :].split()
    if rest[0] in (b"Z", b"X"):  # a zombie has exited; only its exit status is left
        return None
    cmdline = tuple(os.fsdecode(a) for a in raw.split(b"\0")[:-1]) if raw else ()
    return ProcessIdentity(cmdline, int(rest[19]), CLOCK_PROC)


def _psutil_identity(pid: int) -> ProcessIdentity | None:
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return ProcessIdentity(tuple(p.cmdline()), p.create_time(), CLOCK_PSUTIL)
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:  # it exists but cannot be inspected: an identity that matches nothing
        return ProcessIdentity((), -1, CLOCK_PSUTIL)


def process_identity(pid: int, clock: str | None = None) -> ProcessIdentity | None:
    """The identity of the live process ``pid``; None when there is none (or only a zombie) or no way to tell."""
    clock = clock or identity_clock()
    if pid <= 0:
        return None
    with contextlib.suppress(ChildProcessError, OSError):  # a child of ours that exited: collect it
        os.waitpid(pid, os.WNOHANG)
    if clock == CLOCK_PROC:
        return _proc_identity(pid)
    if clock == CLOCK_PSUTIL:
        try:
            return _psutil_identity(pid)
        except ImportError:
            return None
    return None


def record_identity(state: SessionState) -> SessionState:
    """Fill in the launcher's identity (right after the start, while its PID is surely still its own)."""
    ident = process_identity(state.pid)
    if ident is not None:
        state.nsys_cmdline = list(ident.cmdline)
        state.nsys_start_time = ident.start_time
        state.nsys_start_clock = ident.clock
    return state


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ProcessCheck:
    """Is the state's PID still the session's nsys? status: "nsys" (yes), "gone" (no process has that PID any
    more), "other" (another process has it), "unknown" (a process has it, but its identity cannot be checked)."""

    status: str
    reason: str


def _short(argv: Sequence[str], limit: int = 120) -> str:
    """A command line for a message; a long one keeps its start and its end (where the launched command is)."""
    text = " ".join(argv) or "(no command line)"
    return text if len(text) <= limit else f"{text[: limit // 3]} ... {text[-(limit - limit // 3 - 5) :]}"


def _same_time(a: int | float, b: int | float, clock: str) -> bool:
    return a == b if clock == CLOCK_PROC else abs(a - b) < 0.01  # psutil derives seconds from ticks: allow rounding


def check_process(state: SessionState) -> ProcessCheck:
    pid = state.pid
    if state.nsys_start_clock is None or state.nsys_cmdline is None or state.nsys_start_time is None:
        if pid > 1 and _exists(pid):
            return ProcessCheck("unknown", f"no command line and start time were recorded for pid {pid}")
        return ProcessCheck("gone", f"no process has pid {pid}")
    clock = state.nsys_start_clock
    if clock != identity_clock():
        if pid > 1 and _exists(pid):
            return ProcessCheck("unknown", f"the recorded start time ({clock}) cannot be checked here")
        return ProcessCheck("gone", f"no process has pid {pid}")
    now = process_identity(pid, clock)
    if now is None:
        return ProcessCheck("gone", f"no process has pid {pid} any more")
    if not _same_time(now.start_time, state.nsys_start_time, clock):
        return ProcessCheck(
            "other",
            f"pid {pid} started at {now.start_time}, the session's nsys at {state.nsys_start_time} ({clock}): "
            "the pid now belongs to another process",
        )
    if not now.cmdline and state.nsys_cmdline:  # same process, memory already released: it is exiting
        return ProcessCheck("gone", f"pid {pid} is exiting")
    if list(now.cmdline) != state.nsys_cmdline:
        return ProcessCheck("other", f"pid {pid} runs {_short(now.cmdline)!r}, not {_short(state.nsys_cmdline)!r}")
    tail = state.launch_command[1:]
    if not tail or state.nsys_cmdline[-len(tail) :] != tail:
        return ProcessCheck(
            "other", f"the recorded command line of pid {pid} is not the session's `nsys {_short(tail)}`"
        )
    return ProcessCheck("nsys", f"pid {pid} is the session's nsys")


def check_pid(pid: int, state_file: Path) -> None:
    """Refuse a PID that must never be signalled: not a positive process id, or nsys-doctor's own process/group."""
    if not _is_int(pid) or pid <= 1:
        raise _damaged(state_file, f"key 'pid' is {pid!r}, not the process id of a launched nsys (those are > 1)")
    if pid in (os.getpid(), os.getpgrp()):
        raise _damaged(state_file, f"key 'pid' is {pid}, nsys-doctor's own process (group)")


def terminate(state: SessionState, state_file: Path, sig: int = signal.SIGTERM) -> str:
    """Send ``sig`` to the session's nsys after checking that ``state.pid`` still is that nsys; to its process group
    when it leads one (it was started in a new session, so it does) other than ours, else to it alone.
    Returns what was signalled; refuses (UsageError) anything that is not the recorded nsys."""
    check_pid(state.pid, state_file)
    c = check_process(state)
    stale = f"the session's state file {state_file} is stale; if the session is over, remove it: rm {state_file}"
    if c.status == "unknown":
        raise UsageError(
            f"not signalling pid {state.pid}: cannot check that it is still session {state.name}'s nsys ({c.reason})",
            f"if it is, end it yourself (kill {state.pid}); then remove the state file: rm {state_file}",
        )
    if c.status != "nsys":
        raise UsageError(
            f"not signalling pid {state.pid}: it is no longer session {state.name}'s nsys ({c.reason})", stale
        )
    try:
        pgid = os.getpgid(state.pid)
    except ProcessLookupError as exc:
        raise UsageError(f"not signalling pid {state.pid}: it exited just now", stale) from exc
    try:
        if pgid == state.pid and pgid != os.getpgrp():
            os.killpg(pgid, sig)
            return f"process group {pgid}"
        os.kill(state.pid, sig)
        return f"process {state.pid}"
    except ProcessLookupError as exc:
        raise UsageError(f"not signalling pid {state.pid}: it exited just now", stale) from exc
    except PermissionError as exc:
        raise UsageError(
            f"not allowed to signal pid {state.pid} (session {state.name}'s nsys)", "run as the user who started it"
        ) from exc


def start_launcher(argv: Sequence[str], log: Path, wait_s: float | None = None) -> int:
    """Start ``nsys launch`` detached (own process group, output to ``log``); fail if it dies at once."""
    import subprocess
    import time

    from ..errors import NsysDoctorError

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as fh:
        proc = subprocess.Popen(
            list(argv), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + (LAUNCH_WAIT_S if wait_s is None else wait_s)
    while time.monotonic() < deadline:
        rc = proc.poll()
        if rc is not None:
            if rc != 0:
                tail = " | ".join(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:])
                raise NsysDoctorError(f"nsys launch exited with {rc}: {tail or 'no output'}", f"see {log}")
            break
        time.sleep(0.1)
    return proc.pid
