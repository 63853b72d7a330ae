"""``nsys-doctor explain``: what pasted nsys stats output means and what to do, without the trace."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import progress
from ..errors import UsageError
from .common import emit, ops_option, render_text
from .report import project_rules

FORMATS = ("terminal", "markdown", "json")


@click.command()
@click.argument("source", metavar="[FILE|-]", required=False, default="-")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="terminal", show_default=True)
@click.option("-o", "--output", metavar="FILE", help="Write the answer to FILE instead of standard output.")
@ops_option
@click.option("--top", type=click.IntRange(1, 100_000), default=10, show_default=True, help="Kernels to list.")
@progress.quiet_option
def explain(source: str, fmt: str, output: str | None, ops_file: Path | None, top: int) -> None:
    """Explain pasted `nsys stats` output: read FILE (or standard input) and answer like `report`.

    \b
    The text may be a whole `nsys profile --stats=true` log, a few reports, or rows cut out of one, in any nsys
    version's format (column, table, csv, json), with prompts and notices around it. Kernel shares and families,
    host overhead from the CUDA API table, memory copies, NCCL, CUDA graphs, the diagnosis and next actions come
    from the tables; what they cannot tell (tails, steps, idle time) is said, with the capture that would.

    \b
    Examples:
      nsys-doctor explain pasted.txt
      pbpaste | nsys-doctor explain -
      nsys stats report.nsys-rep | nsys-doctor explain --format markdown
    """
    from ..analysis.explain import explain as explain_tables
    from ..report import explain_text
    from ..trace.pasted import load_pasted, read_source

    rules = project_rules(ops_file)
    text, label = _read_stdin() if source == "-" else read_source(source)

    with progress.task():
        with progress.stage("reading"):
            tables = load_pasted(text, label)
        with progress.stage("analyses"):
            e = explain_tables(tables, rules, top=top)
        with progress.stage("rendering"):
            body = render_text(fmt, explain_text, e, color=output is None and sys.stdout.isatty())
    emit(body, output, fmt)


def _read_stdin() -> tuple[str, str]:
    """The pasted text from standard input (capped, checked like a file); one-line errors when it is closed."""
    label = "standard input"
    stdin = sys.stdin
    if stdin is None or getattr(stdin, "closed", False):
        raise UsageError(
            "standard input is closed",
            "pass a FILE, or pipe the text in: nsys stats REPORT.nsys-rep | nsys-doctor explain -",
        )
    try:
        tty = stdin.isatty()
    except (OSError, ValueError):
        tty = False
    if tty:
        click.echo("reading nsys stats output from standard input (end with Ctrl-D)...", err=True)
    from ..trace.pasted import decode_text, read_stream

    return decode_text(read_stream(getattr(stdin, "buffer", stdin), label), label), label


COMMANDS = [explain]
