"""Interactive sessions: ``nsys launch`` a long-running process once, then ``nsys start``/``nsys stop`` around the
moments worth tracing, and ``nsys shutdown`` at the end.

Application-scope flags (what is traced, graph granularity) go to ``nsys launch``; collection-scope flags
(output, export, sampling) go to ``nsys start``. A small JSON state file per session under
``target/profiling/.sessions/`` remembers the launcher's PID, the commands and the log, so ``session list`` and
``session stop`` work from any shell.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

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


def state_path(output_dir: Path, name: str) -> Path:
    return output_dir / STATE_DIR / f"{check_name(name)}.json"


def save_state(output_dir: Path, state: SessionState) -> Path:
    p = state_path(output_dir, state.name)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    return p


def load_state(output_dir: Path, name: str) -> SessionState | None:
    p = state_path(output_dir, name)
    try:
        return SessionState(**json.loads(p.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def all_states(output_dir: Path) -> list[SessionState]:
    d = output_dir / STATE_DIR
    out = []
    for p in sorted(d.glob("*.json")) if d.is_dir() else []:
        s = load_state(output_dir, p.stem)
        if s is not None:
            out.append(s)
    return out


def remove_state(output_dir: Path, name: str) -> None:
    state_path(output_dir, name).unlink(missing_ok=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def terminate(pid: int) -> None:
    """End the process group this session's launcher leads (it was started in a new session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)


def start_launcher(argv: Sequence[str], log: Path, wait_s: float = 3.0) -> int:
    """Start ``nsys launch`` detached (own process group, output to ``log``); fail if it dies at once."""
    import subprocess
    import time

    from ..errors import NsysDoctorError

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as fh:
        proc = subprocess.Popen(
            list(argv), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        rc = proc.poll()
        if rc is not None:
            if rc != 0:
                tail = " | ".join(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:])
                raise NsysDoctorError(f"nsys launch exited with {rc}: {tail or 'no output'}", f"see {log}")
            break
        time.sleep(0.1)
    return proc.pid
