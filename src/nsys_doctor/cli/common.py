"""Helpers shared by subcommands: event filters from CLI options, and writing the output."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..trace import Trace
from ..trace.window import EventFilter, parse_filter_time, resolve_nvtx_filter


def event_filter(trace: Trace, filter_time: str | None, filter_nvtx: str | None) -> EventFilter:
    """``--filter-nvtx`` takes precedence over ``--filter-time``, as in nsys."""
    if filter_nvtx:
        return resolve_nvtx_filter(trace, filter_nvtx)
    if filter_time:
        return parse_filter_time(filter_time)
    return EventFilter()


def emit(text: str, output: str | None) -> None:
    """Write a command's output to ``output`` (a path; ``-`` or None for standard output)."""
    if output and output != "-":
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(text)
