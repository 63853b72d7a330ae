"""The click command line: the command group that loads each command's module when it runs, and the one-line
error contract (exit code 2). ``cli/main.py`` is the entry point; it comes here for everything but the help and
version texts it prints itself (``helptext.py``)."""

from __future__ import annotations

import io
import os
import sys

import click

from .. import __version__
from .contract import guarded
from .main import COMMAND_MODULES, COMMAND_TABLE, analyses, bound_allocator, bound_native_heap, bound_threads


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


HELP_WIDTHS = (78, 108)
"""The widths ``helptext.py`` holds the help texts at: a terminal of 80 columns (and output to a file or pipe) and
one of 110 columns or more (``main.help_width``)."""


def help_paths() -> list[str]:
    """The command lines that have a help text: the group (""), every command, every subcommand of a command group
    ("baseline save")."""
    _register()
    ctx = click.Context(cli)
    paths = [""]
    for name in sorted(COMMAND_TABLE):
        command = cli.get_command(ctx, name)
        paths.append(name)
        if isinstance(command, click.Group):
            paths += [f"{name} {sub}" for sub in sorted(command.commands)]
    return paths


def help_texts(widths: tuple[int, ...] = HELP_WIDTHS) -> dict[tuple[str, int], str]:
    """What click prints for ``nsys-doctor PATH --help`` on a terminal whose help width is each of ``widths``, per
    command line of ``help_paths`` (``scripts/gen_helptext.py`` writes them to ``helptext.py``). Call it in a fresh
    interpreter: click makes a command's help option once, from the first context that asks for it (a command run
    on its own, without the group's ``-h``, would leave it without ``-h``)."""
    import contextlib

    out: dict[tuple[str, int], str] = {}
    saved = os.environ.get("COLUMNS")
    try:
        for width in widths:
            os.environ["COLUMNS"] = str(width + 2)
            for path in help_paths():
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    rc = _run([*path.split(), "--help"])
                if rc != 0:
                    raise RuntimeError(f"nsys-doctor {path} --help exited {rc}")
                out[(path, width)] = buf.getvalue()
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    return out


def run(args: list[str], origin: float) -> int:
    """Run the command line ``args`` (the process started at ``origin``, ``time.monotonic()``) under the error
    contract (``contract.guarded``): every failure is one line on standard error and an exit code, 2 for bad input
    or usage, 3 for an internal error (``--debug`` anywhere on the command line shows its traceback instead), 130
    on Ctrl-C."""
    debug = "--debug" in args
    if debug:
        args = [a for a in args if a != "--debug"]
    if "polars" not in sys.modules:  # the allocator and the thread pool read their settings when polars is loaded
        bound_allocator(args)
        bound_threads(args)
    if analyses(args):
        bound_native_heap()
    return guarded(lambda: _run(args), origin, debug)


def _run(argv: list[str]) -> int:
    try:
        rv = cli.main(args=argv, prog_name="nsys-doctor", standalone_mode=False)
        if isinstance(rv, int):  # click returns ctx.exit(code) / Exit(code) instead of raising without standalone mode
            return rv
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
    return 0
