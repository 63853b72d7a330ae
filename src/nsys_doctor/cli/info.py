"""``nsys-doctor info``: what a trace holds and how it was captured."""

from __future__ import annotations

from pathlib import Path

import click

from ..trace import Trace
from ..trace.meta import describe


@click.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def info(trace_path: Path, fmt: str) -> None:
    """Versions, GPUs, session length, row counts, capture settings and what TRACE is missing."""
    with Trace.open(trace_path) as trace:
        data = describe(trace)
    from ..report.info_text import render_info, render_info_json

    click.echo(render_info_json(data) if fmt == "json" else render_info(data), nl=False)


COMMANDS = [info]
