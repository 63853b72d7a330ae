"""The command line's error contract, without click: every failure is one line on standard error and an exit code
(2 bad input or usage, 3 an internal error, 130 interrupted). ``app.run`` (the click command line) and ``quick.run``
(the commands run without click) both go through ``guarded``; click's own errors are mapped in ``app._run``."""

from __future__ import annotations

import io
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

OUT_OF_MEMORY = "nsys-doctor: error: out of memory: analyze a shorter window (--window) or a smaller trace"


def echo_err(text: str) -> None:
    """``text`` as one line on standard error, flushed (what ``click.echo(text, err=True)`` writes)."""
    stream = sys.stderr
    if stream is None:
        return
    stream.write(text + "\n")
    stream.flush()


class ClosedStream(io.TextIOBase):
    """Stands in for a standard stream the process was started without (``>&-``): writing to it is a usage error
    (exit 2), not an AttributeError."""

    def __init__(self, name: str) -> None:
        self._name = name

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        from ..errors import UsageError

        raise UsageError(f"standard {self._name} is closed", "redirect it to a file, or use -o FILE")


def silence_stdout() -> None:
    """After a closed pipe (``| head``), point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


def bug_line(exc: BaseException) -> str:
    """One line naming an internal error and where it happened (the innermost frame inside nsys_doctor)."""
    import traceback

    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if "nsys_doctor" in frame.filename.replace("\\", "/"):
            path = frame.filename.replace("\\", "/")
            where = f" at {path[path.rindex('nsys_doctor') :]}:{frame.lineno}"
    text = " ".join(str(exc).split())[:200]
    return (
        f"nsys-doctor: internal error: {type(exc).__name__}{': ' + text if text else ''}{where}; this is a bug: "
        "please report it to the nsys-doctor project with the output of the same command run with --debug"
    )


def guarded(body: Callable[[], int], origin: float, debug: bool) -> int:
    """Run ``body`` (a command line; its exit code) as the command line that started at ``origin``
    (``time.monotonic()``): standard streams the process lacks are stood in for, the damaged-rows warning of the
    traces it read is printed once when it ends, and every failure becomes one line and an exit code (``debug``:
    an internal error raises instead, for its traceback)."""
    from .. import progress
    from ..errors import NsysDoctorError
    from ..trace.damage import command_scope

    progress.set_origin(origin)  # a progress line counts the time since the command line started
    if sys.stdout is None:
        sys.stdout = ClosedStream("output")
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    try:
        try:
            with command_scope():
                return body()
        except NsysDoctorError as exc:
            echo_err(f"nsys-doctor: error: {exc.one_line()}")
            return exc.exit_code
        except BrokenPipeError:
            silence_stdout()
            return 0
        except MemoryError:
            echo_err(OUT_OF_MEMORY)
            return 2
    except KeyboardInterrupt:
        echo_err("nsys-doctor: interrupted")
        return 130
    except Exception as exc:  # RecursionError included
        if debug:
            raise
        echo_err(bug_line(exc))
        return 3
    finally:
        progress.set_origin(None)
