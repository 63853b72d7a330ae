"""``nsys-doctor info``: what a trace holds and how it was captured."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .. import JSON_SCHEMA
from ..report.info_text import render_info
from ..trace import Trace
from ..trace.meta import describe


@click.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def info(trace_path: Path, fmt: str) -> None:
    """Versions, GPUs, session length, row counts, capture settings and what TRACE is missing."""
    with Trace.open(trace_path) as trace:
        data = describe(trace)
    if fmt == "json":
        click.echo(json.dumps({"schema": JSON_SCHEMA, "info": data.to_dict()}, indent=2))
    else:
        click.echo(render_info(data), nl=False)


COMMANDS = [info]
