"""``nsys-doctor`` entry point: the command group and the one-line error contract (exit code 2)."""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import NsysDoctorError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="nsys-doctor")
def cli() -> None:
    """Where is GPU time going, and what should I optimize next?

    Reads Nsight Systems exports (.sqlite, or .nsys-rep when nsys is installed) directly.
    """


# Subcommand modules, in the order ``--help`` lists them. Each module exposes ``COMMANDS``: its click commands.
COMMAND_MODULES = (
    "report",
    "stats",
    "info",
    "roofline",
    "diff",
    "explain",
    "capture",
    "check",
    "session",
    "nccl",
    "sample",
)


def _register() -> None:
    import importlib
    import importlib.util

    for name in COMMAND_MODULES:
        if importlib.util.find_spec(f"{__package__}.{name}") is None:
            continue  # a subcommand not built yet
        module = importlib.import_module(f"{__package__}.{name}")
        for command in getattr(module, "COMMANDS", ()):
            if command.name not in cli.commands:
                cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    _register()
    try:
        cli.main(args=argv, prog_name="nsys-doctor", standalone_mode=False)
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
