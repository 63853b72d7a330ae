"""``nsys-doctor`` entry point: the command group and the one-line error contract (exit code 2)."""

from __future__ import annotations

import io
import os
import sys

import click

from .. import __version__
from ..errors import NsysDoctorError, UsageError

# Every subcommand: the module that defines it (the module exposes ``COMMANDS``) and its one-line help (the
# command's short help, untruncated). `nsys-doctor --help` is printed from this table alone, and a module is imported
# only when its command runs (or for `nsys-doctor <command> --help`), so start-up pays for click and nothing else.
# tests/test_perf_startup.py checks that the table matches the real commands.
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


def _available() -> dict[str, str]:
    """The commands whose module is installed (a stripped-down install may lack one)."""
    import importlib.util

    found: dict[str, bool] = {}
    out: dict[str, str] = {}
    for name, module in COMMAND_MODULES.items():
        if module not in found:
            found[module] = importlib.util.find_spec(f"{__package__}.{module}") is not None
        if found[module]:
            out[name] = module
    return out


def short_help(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` characters as click shortens a command's help in a listing."""
    if len(text) <= limit:
        return text
    if limit < 3:
        return "..."
    import textwrap

    return textwrap.shorten(text, limit, placeholder="...", break_on_hyphens=False)


class LazyGroup(click.Group):
    """A group that lists its commands from ``COMMAND_TABLE`` and imports a command's module only to run it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_available()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            module_name = _available().get(cmd_name)
            if (
                module_name is None
                and cmd_name.isidentifier()
                and not cmd_name.startswith("_")
                and cmd_name not in COMMAND_MODULES.values()
            ):
                # a command module not in COMMAND_TABLE yet (its test fails until it is): runs, is not listed
                import importlib.util

                if importlib.util.find_spec(f"{__package__}.{cmd_name}") is not None:
                    module_name = cmd_name
            if module_name is not None:
                import importlib

                module = importlib.import_module(f"{__package__}.{module_name}")
                for command in getattr(module, "COMMANDS", ()):
                    if command.name not in self.commands:
                        self.add_command(command)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``, as click writes it, from the static table (commands already loaded
        speak for themselves)."""
        rows: list[tuple[str, str | None]] = []
        for name in self.list_commands(ctx):
            loaded = self.commands.get(name)
            if loaded is not None and loaded.hidden:
                continue
            rows.append((name, None if loaded is not None else COMMAND_TABLE[name][1]))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        listing = [
            (name, short_help(text, limit) if text is not None else self.commands[name].get_short_help_str(limit))
            for name, text in rows
        ]
        with formatter.section("Commands"):
            formatter.write_dl(listing)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="nsys-doctor")
def cli() -> None:
    """Where is GPU time going, and what should I optimize next?

    Reads Nsight Systems exports (.sqlite, or .nsys-rep when nsys is installed) directly.

    Exit codes: 0 success, 1 a gate or check failed (diff --gate, check), 2 bad input or usage (one line on
    standard error naming the problem and the fix), 3 an internal error (a bug: run again with --debug for the
    traceback and report it), 130 interrupted.
    """


def _register() -> None:
    """Load every available subcommand now (tests and tools that walk ``cli.commands``)."""
    ctx = click.Context(cli)
    for name in _available():
        cli.get_command(ctx, name)


class _ClosedStream(io.TextIOBase):
    """Stands in for a standard stream the process was started without (``>&-``): writing to it is a usage error
    (exit 2), not an AttributeError."""

    def __init__(self, name: str) -> None:
        self._name = name

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        raise UsageError(f"standard {self._name} is closed", "redirect it to a file, or use -o FILE")


def _bug_line(exc: BaseException) -> str:
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


# polars' allocator (jemalloc, on Linux) has an arena per thread and keeps freed memory for a while: a report of two
# million kernels peaked at 1.24 GiB on a 16-core host (polars 1.36), a quarter of it memory already freed. One
# arena and a one-second decay bring that under 1 GiB (docs/performance.md has the peaks at 2M-20M kernels and the
# time it costs; a half-second decay cost more time for no less memory). Set for the analysis commands only, never
# for `capture` (its child is the user's program), and never over the user's own setting.
ALLOCATOR_ENV = "_RJEM_MALLOC_CONF"
ALLOCATOR_CONF = "narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:1000"


def bound_allocator(args: list[str], environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Set ``ALLOCATOR_CONF`` in ``environ`` for the command of ``args`` (before polars is imported) unless the
    command runs the user's program or the variable is already set; says whether it was set."""
    command = next((a for a in args if not a.startswith("-")), None)
    entry = COMMAND_TABLE.get(command or "")
    if entry is None or entry[0] == "capture" or ALLOCATOR_ENV in environ:
        return False
    environ[ALLOCATOR_ENV] = ALLOCATOR_CONF
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on standard error and an exit code: 2 for bad input or usage, 3 for
    an internal error (``--debug`` anywhere on the command line shows its traceback instead), 130 on Ctrl-C."""
    import time

    from .. import progress

    progress.set_origin(time.monotonic())  # a progress line counts the time since the command line started
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args = [a for a in args if a != "--debug"]
    if "polars" not in sys.modules:  # the allocator reads its settings once, when polars is loaded
        bound_allocator(args)
    if sys.stdout is None:
        sys.stdout = _ClosedStream("output")
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    try:
        return _run(args)
    except KeyboardInterrupt:
        click.echo("nsys-doctor: interrupted", err=True)
        return 130
    except RecursionError as exc:
        if debug:
            raise
        click.echo(_bug_line(exc), err=True)
        return 3
    except Exception as exc:
        if debug:
            raise
        click.echo(_bug_line(exc), err=True)
        return 3
    finally:
        progress.set_origin(None)


def _run(argv: list[str]) -> int:
    try:
        rv = cli.main(args=argv, prog_name="nsys-doctor", standalone_mode=False)
        if isinstance(rv, int):  # click returns ctx.exit(code) / Exit(code) instead of raising without standalone mode
            return rv
    except NsysDoctorError as exc:
        click.echo(f"nsys-doctor: error: {exc.one_line()}", err=True)
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return 0
    except click.UsageError as exc:
        where = f"nsys-doctor {exc.ctx.info_name} --help" if exc.ctx and exc.ctx.parent else "nsys-doctor --help"
        message = " ".join(exc.format_message().split())
        click.echo(f"nsys-doctor: error: {message} (see {where})", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("nsys-doctor: interrupted", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"nsys-doctor: error: {' '.join(exc.format_message().split())}", err=True)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except MemoryError:
        click.echo(
            "nsys-doctor: error: out of memory: analyze a shorter window (--window) or a smaller trace", err=True
        )
        return 2
    return 0


def _silence_stdout() -> None:
    """After a closed pipe (``| head``), point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
