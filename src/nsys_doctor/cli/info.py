"""``nsys-doctor info``: what a trace holds and how it was captured."""

from __future__ import annotations

from pathlib import Path

import click

from .info_run import FORMATS, run_info


@click.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=FORMATS[0], show_default=True)
def info(trace_path: Path, fmt: str) -> None:
    """Versions, GPUs, session length, row counts, capture settings and what TRACE is missing."""
    run_info(trace_path, fmt)


COMMANDS = [info]
