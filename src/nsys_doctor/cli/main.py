"""``nsys-doctor`` entry point: the command group and the one-line error contract (exit code 2)."""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import NsysDoctorError

# Subcommands and the module that defines each (the module exposes ``COMMANDS``). Modules are imported only when
# their command runs (or for --help), so `nsys-doctor stats` does not pay for the report's imports.
COMMAND_MODULES: dict[str, str] = {
    "report": "report",
    "stats": "stats",
    "info": "info",
    "roofline": "roofline",
    "diff": "diff",
    "scaling": "diff",
    "baseline": "diff",
    "explain": "explain",
    "capture": "capture",
    "check": "capture",
    "session": "capture",
    "nccl": "nccl",
    "sample": "sample",
}


def _available() -> dict[str, str]:
    import importlib.util

    return {c: m for c, m in COMMAND_MODULES.items() if importlib.util.find_spec(f"{__package__}.{m}") is not None}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_available()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _available():
            import importlib

            module = importlib.import_module(f"{__package__}.{COMMAND_MODULES[cmd_name]}")
            for command in getattr(module, "COMMANDS", ()):
                if command.name not in self.commands:
                    self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="nsys-doctor")
def cli() -> None:
    """Where is GPU time going, and what should I optimize next?

    Reads Nsight Systems exports (.sqlite, or .nsys-rep when nsys is installed) directly.
    """


def _register() -> None:
    """Load every available subcommand now (tests and tools that walk ``cli.commands``)."""
    ctx = click.Context(cli)
    for name in _available():
        cli.get_command(ctx, name)


def main(argv: list[str] | None = None) -> int:
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
        return 0
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
