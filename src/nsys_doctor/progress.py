"""Progress on a terminal: once work has run for about two seconds, one line on standard error names the stage
(reading, structure, analyses, rendering ...) and the time spent, rewritten in place and cleared at the end.

A command wraps its work in ``task()`` and says which stage it is in::

    with progress.task():
        with progress.stage("reading"):
            session.frames
        with progress.stage("structure"):
            session.structure
    emit(text, output)  # after the task: the line is gone before the output is written

Nothing is shown for the first ``DELAY_S`` seconds (a quick command stays silent), nor when standard error is not a
terminal, nor with ``--quiet`` (``quiet_option``) or ``NSYS_DOCTOR_QUIET=1``. The line never goes to standard
output or into an output file. While it is shown, anything else written to standard error (a warning, ``wrote
FILE``) first clears it, so lines never run into each other.
"""

from __future__ import annotations

import os
import sys
import time
from _thread import RLock
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from typing import IO, Any, TypeVar

    import click

DELAY_S = 2.0
"""Seconds of work before the line appears."""
INTERVAL_S = 0.2
"""Seconds between two redraws of the elapsed time."""
QUIET_ENV = "NSYS_DOCTOR_QUIET"
PREFIX = "nsys-doctor"

_quiet = False  # set by --quiet (quiet_option) for the running command
_current: Progress | None = None  # the running task's progress
_origin: float | None = None  # when the command started (set_origin), else the task's start


def set_origin(t: float | None) -> None:
    """Count the elapsed time (and the delay before the line) from ``t`` (``time.monotonic()`` when the command
    line started: its imports are part of the wait) instead of from the start of the task; None: the task."""
    global _origin
    _origin = t


if TYPE_CHECKING:
    F = TypeVar("F", bound=Callable[..., Any])


def set_quiet(value: bool) -> None:
    """No progress line for the running command (``--quiet``)."""
    global _quiet
    _quiet = bool(value)


def _set_quiet(_ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    set_quiet(value)
    return value


def quiet_option(func: F) -> F:
    """``-q/--quiet``: no progress line (it never reaches standard output or an output file anyway)."""
    import click

    return click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_set_quiet,
        help=f"No progress line on standard error (also: {QUIET_ENV}=1).",
    )(func)


def is_quiet() -> bool:
    """--quiet given, or NSYS_DOCTOR_QUIET set to anything but '', '0', 'false', 'no'."""
    return _quiet or os.environ.get(QUIET_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _is_terminal(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and bool(stream.isatty())
    except (OSError, ValueError, AttributeError):
        return False


class _Guard:
    """Stands in for standard error while the line may be shown: any other text written clears the line first."""

    def __init__(self, progress: Progress, stream: IO[str]) -> None:
        self._progress = progress
        self._stream = stream

    def write(self, text: str) -> int:
        with self._progress._lock:
            if text:
                self._progress._clear_line()
            return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return _is_terminal(self._stream)

    def __getattr__(self, name: str) -> Any:  # encoding, errors, fileno, buffer ...
        return getattr(self._stream, name)


class Progress:
    """One progress line for one task (see the module's text). ``enabled`` None: standard error is a terminal
    and nothing asked for quiet. The clock starts when the command line started (``set_origin``), else when the
    task starts."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        delay: float | None = None,
        interval: float | None = None,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream: IO[str] | None = stream if stream is not None else sys.stderr
        self.delay = DELAY_S if delay is None else delay
        self.interval = INTERVAL_S if interval is None else interval
        self.enabled = (_is_terminal(self.stream) and not is_quiet()) if enabled is None else enabled
        self._clock = clock
        self._start = _origin if _origin is not None and clock is time.monotonic else clock()
        self._stage = ""
        self._detail = ""
        self._stack: list[tuple[str, str]] = []  # the (stage, detail) each open stage replaced
        self._shown = 0  # characters of the line on the terminal now (0: nothing shown)
        self._lock = RLock()
        self._stop: threading.Event | None = None  # the drawing thread and its stop signal, once started
        self._thread: threading.Thread | None = None
        self._guard: _Guard | None = None
        self._saved_stderr: Any = None

    # ------------------------------------------------------------------------------------------ the public API

    def stage(self, name: str) -> _Stage:
        """Work of the stage ``name`` (``with p.stage(name):``). Stages nest: the inner one is shown, then the outer
        one again; after the outermost one, its name stays until the next stage (what follows it is still its
        work: writing, closing)."""
        return _Stage(self, name)

    def _enter(self, name: str) -> None:
        self._stack.append((self._stage, self._detail))
        self._set(name, "")

    def _leave(self) -> None:
        outer = self._stack.pop()
        if self._stack:
            self._set(*outer)

    def count(self, done: int, total: int) -> None:
        """How far the stage is, e.g. ranks read: shown as ``done/total``."""
        self._set(self._stage, f"{done}/{total}")

    def elapsed(self) -> float:
        return self._clock() - self._start

    def line(self) -> str:
        """The text of the line now."""
        what = " ".join(x for x in (self._stage or "working", self._detail) if x)
        return f"{PREFIX}: {what} ({self.elapsed():.1f} s)"

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        if sys.stderr is self.stream:  # other writes to standard error clear the line first
            self._saved_stderr = sys.stderr
            self._guard = _Guard(self, self.stream)
            sys.stderr = self._guard
        import threading  # only for a line on a terminal: a command that prints none never loads it

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nsys-doctor-progress", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop redrawing and clear the line."""
        if self._thread is not None and self._stop is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        with self._lock:
            self._clear_line()
        if self._guard is not None and sys.stderr is self._guard:
            sys.stderr = self._saved_stderr
        self._guard = None

    # -------------------------------------------------------------------------------------------- the drawing

    def _set(self, stage: str, detail: str) -> None:
        with self._lock:
            self._stage, self._detail = stage, detail
            if self.enabled and self._thread is not None and self.elapsed() >= self.delay:
                self._draw()  # a new stage is shown at once once the line is up

    def _run(self) -> None:
        assert self._stop is not None
        if self._stop.wait(max(0.0, self.delay - self.elapsed())):
            return
        while True:
            with self._lock:
                self._draw()
            if self._stop.wait(self.interval):
                return

    def _draw(self) -> None:
        if self.stream is None or not self.enabled:
            return
        text = self.line()
        pad = " " * max(0, self._shown - len(text))
        try:
            self.stream.write("\r" + text + pad)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False
            return
        self._shown = len(text)

    def _clear_line(self) -> None:
        if not self._shown or self.stream is None:
            return
        try:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
        except (OSError, ValueError):
            pass
        self._shown = 0


# The context managers are classes, not contextlib's decorator: importing contextlib costs a quick command
# (``stats`` of a small trace) about 1 ms.


class _Stage:
    """``Progress.stage``'s block."""

    def __init__(self, progress: Progress, name: str) -> None:
        self.progress = progress
        self.name = name

    def __enter__(self) -> Progress:
        self.progress._enter(self.name)
        return self.progress

    def __exit__(self, *exc: object) -> None:
        self.progress._leave()


class task:  # used as a function: ``with progress.task():``
    """A command's work: stages inside it share one line and one clock; the line is cleared on exit (before the
    command writes its output). Tasks do not nest: an inner one is the outer one."""

    def __init__(self, stream: IO[str] | None = None, delay: float | None = None) -> None:
        self.stream = stream
        self.delay = delay
        self.own: Progress | None = None  # the progress this block started (None inside another task)

    def __enter__(self) -> Progress:
        global _current
        if _current is not None:
            return _current
        p = self.own = _current = Progress(self.stream, self.delay)
        p.start()
        return p

    def __exit__(self, *exc: object) -> None:
        global _current
        if self.own is None:
            return
        _current = None
        set_origin(None)  # a later task in this process (the Python API, tests) counts from its own start
        self.own.close()


class stage:  # used as a function: ``with progress.stage("reading"):``
    """The running task's stage ``name`` (outside a task: a task of its own, cleared at its end)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.task = task()

    def __enter__(self) -> Progress:
        p = self.progress = self.task.__enter__()
        p._enter(self.name)
        return p

    def __exit__(self, *exc: object) -> None:
        try:
            self.progress._leave()
        finally:
            self.task.__exit__(*exc)


def counter() -> Callable[[int, int], None]:
    """A ``(done, total)`` callback (``map_ranks``' progress): the running stage is shown with ``done/total``."""

    def show(done: int, total: int) -> None:
        p = _current
        if p is not None:
            p.count(done, total)

    return show


class hidden:  # used as a function: ``with progress.hidden():``
    """The line is off the terminal while the block runs (it writes to standard output); the next redraw puts
    it back."""

    def __enter__(self) -> None:
        p = self.progress = _current
        if p is None:
            return
        p._lock.acquire()
        try:
            p._clear_line()
        except BaseException:
            p._lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress._lock.release()
