"""``nsys-doctor info``: what a trace holds (filled in below)."""

import click


@click.command()
@click.argument("trace_path", metavar="TRACE")
def info(trace_path: str) -> None:
    """Describe TRACE."""
