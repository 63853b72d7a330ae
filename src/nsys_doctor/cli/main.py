"""``nsys-doctor`` entry point. It prints the help and version texts itself, from ``helptext.py`` (written from the
click commands by ``scripts/gen_helptext.py``; a test keeps the two equal), so that ``--help`` costs the
interpreter's start and little more; everything else runs the click command line (``app.py``), which loads a
command's module only when that command runs."""

from __future__ import annotations

import os
import sys

# Every subcommand: the module that defines it (the module exposes ``COMMANDS``) and its one-line help (the
# command's short help, untruncated). click's `nsys-doctor --help` (at a width helptext.py does not hold) lists the
# commands from this table alone, and a module is imported only when its command runs (or for its help at such a
# width). tests/test_perf_startup.py checks that the table matches the real commands.
COMMAND_TABLE: dict[str, tuple[str, str]] = {
    "report": (
        "report",
        "Diagnose TRACES: top kernels and families, tails, host overhead, findings and the next actions.",
    ),
    "stats": ("stats", "Reproduce `nsys stats` reports and `nsys analyze` rules on TRACES."),
    "info": ("info", "Versions, GPUs, session length, row counts, capture settings and what TRACE is missing."),
    "roofline": (
        "roofline",
        "Speed of light per linear-layer shape: achieved bandwidth and FLOP/s against the GPU's peaks.",
    ),
    "diff": (
        "diff",
        "Compare BEFORE and AFTER per decode step: kernels, APIs, memory operations, families; noise-aware.",
    ),
    "scaling": (
        "diff",
        "Decode time per step per family and kernel against context length (two or more traces).",
    ),
    "baseline": (
        "diff",
        "Named baselines: small per-step summaries of a trace, to diff against later (not traces).",
    ),
    "explain": (
        "explain",
        "Explain pasted `nsys stats` output: read FILE (or standard input) and answer like `report`.",
    ),
    "capture": (
        "capture",
        "Profile COMMAND with the flags a usable trace needs, check the trace, then print the report's summary.",
    ),
    "check": (
        "capture",
        "Will a capture work here? nsys (and the PATH fix), `nsys status -e`, GPU and driver, CUDA toolkit.",
    ),
    "session": (
        "capture",
        "Interactive captures of a long-running process: start it once, capture windows, stop it.",
    ),
    "nccl": ("nccl", 'Collectives across ranks: is "slow NCCL" waiting for a late rank, or moving data?'),
    "export": (
        "export",
        "Export TRACE's analysis window: a timeline for Perfetto or chrome://tracing, or Parquet tables.",
    ),
    "sample": (
        "sample",
        "Print the path of the bundled sample trace (16 graphed decode steps of a Llama-style model on an H100).",
    ),
}
COMMAND_MODULES: dict[str, str] = {name: module for name, (module, _) in COMMAND_TABLE.items()}


# polars' allocator (jemalloc, on Linux) has an arena per thread and keeps freed memory for a while: a report of two
# million kernels peaked at 1.24 GiB on a 16-core host (polars 1.36), a quarter of it memory already freed. One
# arena and a short decay keep what was freed from adding up: on 2M kernels + 5M API calls (2 vCPUs, polars 2.1) a
# report peaked at 1034-1066 MiB with a one-second decay, 990-998 MiB with a quarter second (about 8% more time)
# and 941 MiB with none (about 25% more time); docs/performance.md has the runs. Set for the analysis commands
# only, never for `capture` (its child is the user's program), and never over the user's own setting.
ALLOCATOR_ENV = "_RJEM_MALLOC_CONF"
ALLOCATOR_CONF = "narenas:1,dirty_decay_ms:250,muzzy_decay_ms:250"


def command_of(args: list[str]) -> str | None:
    """The command named in ``args`` (its first word that is not an option)."""
    return next((a for a in args if not a.startswith("-")), None)


def analyses(args: list[str]) -> bool:
    """Whether the command of ``args`` is one of the analysis commands (any but ``capture``, whose child is the
    user's program)."""
    entry = COMMAND_TABLE.get(command_of(args) or "")
    return entry is not None and entry[0] != "capture"


def bound_allocator(args: list[str], environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Set ``ALLOCATOR_CONF`` in ``environ`` for the command of ``args`` (before polars is imported) unless the
    command runs the user's program or the variable is already set; says whether it was set."""
    if not analyses(args) or ALLOCATOR_ENV in environ:
        return False
    environ[ALLOCATOR_ENV] = ALLOCATOR_CONF
    return True


# polars runs a thread per core, and each thread holds its own buffers while a sort, join or group runs: on a
# 16-core host a report of 2M kernels + 5M API calls peaked at 1054-1181 MiB with 16 threads and 972-1001 MiB with
# 4, in less time (6.2-6.4 s against 6.7-6.8 s; docs/performance.md). The analysis commands other than `stats`
# (whose reports were timed against nsys with every core) run on at most this many, unless the user says otherwise.
THREADS_ENV = "POLARS_MAX_THREADS"
ANALYSIS_THREADS = 4


def bound_threads(args: list[str], environ: dict[str, str] | os._Environ[str] = os.environ, cores: int = 0) -> bool:
    """Set ``THREADS_ENV`` to ``ANALYSIS_THREADS`` in ``environ`` (before polars is imported) for an analysis
    command other than ``stats``, on a host of more cores (``cores``: ``os.cpu_count()`` when 0), unless the user
    set it; says whether it was set."""
    if not analyses(args) or command_of(args) == "stats" or THREADS_ENV in environ:
        return False
    if (cores or os.cpu_count() or 1) <= ANALYSIS_THREADS:
        return False
    environ[THREADS_ENV] = str(ANALYSIS_THREADS)
    return True


# The C library's allocator (numpy's arrays, SQLite's buffers) serves a large block from its own mapping, returned
# to the system when freed, but glibc raises that threshold to the size of each such block freed (up to 32 MiB), and
# from then on keeps freed blocks of that size in its heap: the run structure's arrays at two million kernels left
# 60-85 MB there for the rest of `report`. A fixed threshold (which turns the raising off) returns them.
M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
NATIVE_MMAP_THRESHOLD = 1 << 20


def bound_native_heap() -> bool:
    """Fix the C allocator's mapping threshold at ``NATIVE_MMAP_THRESHOLD`` where the C library has glibc's
    ``mallopt``; says whether it took. Costs the import of ctypes (about 2 ms): for commands that load polars."""
    from ..native import libc_function

    mallopt = libc_function("mallopt")
    return mallopt is not None and bool(mallopt(M_MMAP_THRESHOLD, NATIVE_MMAP_THRESHOLD))


HELP_FLAGS = ("--help", "-h")
QUICK_COMMANDS = ("info", "stats")
"""The commands ``quick.py`` may run without click (one trace file, to standard output)."""


def terminal_columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size()`` gives it to click (``COLUMNS`` when it is a positive
    number, else the width of the terminal on standard output, else 80), without importing shutil."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns or 80


def help_width(columns: int) -> int:
    """The width click formats help to on a terminal of ``columns`` (the group's ``max_content_width`` is 110)."""
    return max(min(columns, 110) - 2, 50)


def quick_text(args: list[str]) -> str | None:
    """The text of ``nsys-doctor ARGS`` when it is the group's or a command's help (``-h``, ``--help``, or no
    argument at all) or the version, and ``helptext.py`` holds it for this terminal's width: what click would
    print, without importing click; else None (click runs)."""
    if args == ["--version"]:
        from .. import __version__

        return f"nsys-doctor, version {__version__}\n"
    if args and args[-1] not in HELP_FLAGS:
        return None
    command = " ".join(args[:-1])
    if any(a.startswith("-") for a in args[:-1]):
        return None
    from .helptext import TEXTS

    return TEXTS.get((command, help_width(terminal_columns())))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on standard error and an exit code: 2 for bad input or usage, 3 for
    an internal error (``--debug`` anywhere on the command line shows its traceback instead), 130 on Ctrl-C."""
    return _dispatch(list(sys.argv[1:] if argv is None else argv))[0]


def _dispatch(args: list[str]) -> tuple[int, bool]:
    """``main``'s exit code, and whether the command ran without click (``quick.run``: one that made no thread,
    process or file, whose process may end without the interpreter's teardown)."""
    import time

    origin = time.monotonic()
    text = quick_text(args) if sys.stdout is not None else None
    if text is not None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            from .contract import silence_stdout

            silence_stdout()
        return 0, False
    if args and args[0] in QUICK_COMMANDS:
        from .quick import run as run_quick

        code = run_quick(args, origin)
        if code is not None:
            return code, True
    from .app import run

    return run(args, origin), False


def entry() -> None:
    try:
        code, quick = _dispatch(sys.argv[1:])
    finally:
        # the interpreter's last collection at exit walks every object the command imported or made, to find
        # cycles nothing needs freed (the files are closed): a tenth of a small report's time
        import gc

        gc.freeze()
    if quick:
        # a quick command's output is written and its trace closed: once the output is flushed, the interpreter's
        # teardown (every module's dictionary emptied, then freed) would only cost time, a tenth of a small
        # report's. A flush that fails leaves the ordinary exit to report it.
        try:
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:
                    stream.flush()
        except (OSError, ValueError):
            pass
        else:
            os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
