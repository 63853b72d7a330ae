"""``nsys-doctor export``: the analysis window as a timeline for ui.perfetto.dev / chrome://tracing, or as Parquet.

The command takes the window's frames from ``TraceSession.export_data()``, hands them to the writers in
``report/export.py`` and writes every file atomically beside its destination (a temporary file, then a rename),
refusing any path that is the input or another trace (``safe_io.check_output``). See docs/export.md.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import progress
from ..errors import NsysDoctorError, UsageError
from ..safe_io import check_output, open_atomic, resolve_output, write_error
from ..session import TraceSession, WindowChoice
from .common import cache_option, command_inputs, default_output_name, ops_option, request_option, window_options
from .report import project_rules, read_in_stages

if TYPE_CHECKING:
    from ..report.export import PerfettoSummary


class ExportError(click.ClickException):
    """An ``NsysDoctorError`` met by ``export``, as a click error with the CLI's exit code (2) and its one line."""

    exit_code = 2


# -------------------------------------------------------------------------------------------------- writing


def parquet_folder(text: str, inputs: Iterable[Path]) -> Path:
    """``--parquet DIR`` checked before the trace is read: not an input, not a file, its parent existing (the folder
    itself is created when missing, nothing above it)."""
    folder = Path(text)
    for inp in inputs:
        with contextlib.suppress(OSError, ValueError):
            if os.path.samefile(inp, folder):
                raise UsageError(f"--parquet {text} is the input {inp}", "name a folder for the Parquet files")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--parquet {text} is a file, not a folder", "name a folder (it is created if missing)")
    if not folder.exists() and not folder.parent.is_dir():
        raise UsageError(
            f"--parquet {text}: folder {folder.parent} does not exist",
            f"create it first (mkdir -p {folder.parent}); only the last folder of DIR is created",
        )
    return folder


def _events(summary: PerfettoSummary) -> int:
    return sum(n for kind, n in summary.events.items() if kind != "metadata")


def _size(path: Path) -> str:
    from ..units import format_bytes

    try:
        return format_bytes(path.stat().st_size)
    except OSError:
        return "?"


# -------------------------------------------------------------------------------------------------- command


@click.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path(path_type=Path))
@click.option(
    "--perfetto",
    "output",
    metavar="FILE",
    help="Write a Chrome trace-event JSON timeline (ui.perfetto.dev, chrome://tracing); FILE.gz: gzip it; -: stdout.",
)
@click.option(
    "--parquet",
    "output_dir",
    metavar="DIR",
    help="Write kernels, api, memcpy, memset, nvtx, steps and requests .parquet into DIR (created if missing).",
)
@window_options
@request_option("Export")
@ops_option
@click.option("--no-flows", is_flag=True, help="Leave out the arrows from each CUDA API call to its GPU work.")
@click.option("--demangled", is_flag=True, help="Name kernel slices by their demangled names (default: short names).")
@progress.quiet_option
@cache_option
def export(
    trace_path: Path,
    output: str | None,
    output_dir: str | None,
    choice: WindowChoice,
    ops_file: Path | None,
    no_flows: bool,
    demangled: bool,
) -> None:
    """Export TRACE's analysis window: a timeline for Perfetto or chrome://tracing, or Parquet tables.

    \b
    The window is the report's (the measured requests; --window, --filter-nvtx, --whole-trace or --request N
    choose another). The timeline holds the requests, steps and phases the report found (process nsys-doctor),
    kernels, copies and memsets per GPU stream, CUDA API calls and NVTX ranges per host thread, and an arrow from
    each launch to its GPU work. Open it at https://ui.perfetto.dev (Open trace file).

    \b
    Parquet: one file per table, names resolved, times in integer nanoseconds; read them with polars, pandas or
    DuckDB. Both --perfetto and --parquet may be given.
    """
    if not output and not output_dir:
        raise click.UsageError("give --perfetto FILE, --parquet DIR, or both")
    try:
        _export(trace_path, output, output_dir, choice, ops_file, not no_flows, demangled)
    except NsysDoctorError as exc:
        raise ExportError(exc.one_line()) from exc


def _export(
    trace_path: Path,
    output: str | None,
    output_dir: str | None,
    choice: WindowChoice,
    ops_file: Path | None,
    flows: bool,
    demangled: bool,
) -> None:
    from ..report.export import parquet_frames, write_perfetto

    inputs = [*command_inputs(), trace_path]
    dest = None
    if output and output != "-":
        dest = resolve_output(output, default_output_name("json"))
        check_output(dest, inputs)
    folder = parquet_folder(output_dir, inputs) if output_dir else None
    rules = project_rules(ops_file)
    with progress.task(), TraceSession.open(trace_path, rules, choice) as session:
        read_in_stages(session)
        with progress.stage("analyses"):
            data = session.export_data()
    if output == "-":  # standard output, as it comes (a pipe to gzip, jq, a viewer)
        stdout = getattr(sys.stdout, "buffer", None)
        if stdout is None:
            raise UsageError("standard output is closed", "write to a file: --perfetto FILE")
        summary = write_perfetto(data, stdout, flows_on=flows, demangled=demangled)
        stdout.flush()
        click.echo(f"wrote standard output ({_events(summary)} events)", err=True)
    elif dest is not None:
        with open_atomic(dest, inputs, compress=dest.name.endswith(".gz")) as fh:
            summary = write_perfetto(data, fh, flows_on=flows, demangled=demangled)
        click.echo(f"wrote {dest} ({_events(summary)} events, {_size(dest)})", err=True)
    if folder is not None:
        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise write_error(folder, exc) from None
        for name, frame in parquet_frames(data).items():
            with open_atomic(folder / name, inputs) as fh:
                frame.write_parquet(fh)
        click.echo(f"wrote {folder}/{{{','.join(n.split('.')[0] for n in parquet_frames(data))}}}.parquet", err=True)


COMMANDS = [export]
