"""``nsys-doctor stats``: nsys's ``stats`` reports and ``analyze`` rules, with the same numbers, without nsys."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from .. import progress
from ..errors import UsageError
from ..report.nsys_format import FORMATS, Units, render_chunks
from ..safe_io import open_atomic, resolve_output, write_error, write_stdout
from ..stats import REGISTRY, ReportContext, ReportRequest, load_all, parse_report_arg, run_report
from ..trace import Trace
from ..trace.window import EventFilter, event_filter, parse_filter_time
from ..units import DISPLAY_MEM_UNITS, parse_timeunit
from .common import command_inputs, rank_from_option

DEFAULT_REPORTS = (
    "nvtx_sum",
    "osrt_sum",
    "cuda_api_sum",
    "cuda_gpu_kern_sum",
    "cuda_gpu_mem_time_sum",
    "cuda_gpu_mem_size_sum",
)
EXTENSIONS = {"csv": "csv", "json": "json", "column": "txt", "table": "txt"}


def _report_list() -> str:
    load_all()
    lines = []
    for kind, title in (("stats", "Reports (nsys stats)"), ("rule", "Rules (nsys analyze)")):
        lines.append(title + ":")
        for name, spec in sorted(REGISTRY.items()):
            if spec.kind == kind:
                args = sorted(spec.flags) + [f"{o}=" for o in sorted(spec.options)]
                suffix = f"  [:{'|:'.join(args)}]" if args else ""
                lines.append(f"  {name}{suffix}  {spec.doc.splitlines()[0] if spec.doc else spec.title}")
    return "\n".join(lines)


def _help_reports(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_report_list())
        ctx.exit(0)


@click.command()
@click.argument("trace_paths", metavar="TRACES...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-r",
    "--report",
    "reports",
    multiple=True,
    metavar="REPORT[:ARGS]",
    help="Report or rule, with nsys arguments, e.g. cuda_gpu_kern_sum:base or gpu_gaps:gap=1. "
    "Repeat for several. Default: nsys's default summary set.",
)
@click.option(
    "-f",
    "--format",
    "formats",
    default="column",
    show_default=True,
    help="column, table, csv or json; a comma list gives one per report.",
)
@click.option("--timeunit", default="ns", show_default=True, help="Time unit for durations: ns, us, ms, sec.")
@click.option("--memunit", default="MB", show_default=True, help="Unit for bytes: B, KB, KiB, MB, MiB, GB, GiB.")
@click.option("--filter-time", metavar="[START]/[END]", help="Keep events overlapping [START, END), e.g. 10s/20s.")
@click.option(
    "--filter-nvtx",
    metavar="RANGE[@DOMAIN][/N]",
    help="Keep events inside the N-th NVTX range of that name (first by default); wins over --filter-time.",
)
@click.option(
    "-o",
    "--output",
    metavar="FILE|-",
    help="'-' for standard output (default). A path ending in .csv/.json/.txt with one report is "
    "written as is; otherwise BASE_<report>.<ext> per report, as nsys does.",
)
@click.option(
    "--help-reports",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_help_reports,
    help="List the reports and rules, with their arguments.",
)
@click.option(
    "--per-rank",
    is_flag=True,
    help="Split one trace holding several ranks' processes into per-rank reports (several traces always are).",
)
@rank_from_option()
@progress.quiet_option
def stats(
    trace_paths: tuple[Path, ...],
    reports: tuple[str, ...],
    formats: str,
    timeunit: str,
    memunit: str,
    filter_time: str | None,
    filter_nvtx: str | None,
    output: str | None,
    per_rank: bool,
    rank_from: str,
) -> None:
    """Reproduce `nsys stats` reports and `nsys analyze` rules on TRACES.

    \b
    Examples:
      nsys-doctor stats trace.sqlite -r cuda_gpu_kern_sum:base
      nsys-doctor stats trace.sqlite -r cuda_api_sum --filter-nvtx decode_step --format csv
      nsys-doctor stats trace.sqlite -r gpu_gaps:gap=1 --timeunit usec -o -

    \b
    Several traces (one per rank) or a directory of them give one set of reports per rank, each headed
    "==> rank N: FILE <==" on standard output, or written to BASE_rankN_<report>.<ext> with -o. --per-rank
    splits one trace holding several ranks' processes the same way (per process: the filters keep that
    process's events; a process driving several GPUs stays whole).
      nsys-doctor stats run/ -r cuda_gpu_kern_sum:base
    """
    # -r takes a comma list too, as in nsys (-r cuda_gpu_kern_sum,cuda_api_sum)
    names = [part for r in (reports or DEFAULT_REPORTS) for part in r.split(",") if part.strip()]
    requests = [parse_report_arg(r.strip()) for r in names]
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    for f in fmts:
        if f not in FORMATS:
            raise UsageError(f"unknown format '{f}'", f"use one of {', '.join(FORMATS)}")
    if len(fmts) > 1 and len(fmts) != len(requests):
        raise UsageError(f"{len(fmts)} formats for {len(requests)} reports", "give one format, or one per report")
    if memunit not in DISPLAY_MEM_UNITS:
        raise UsageError(f"unknown memory unit '{memunit}'", f"use one of {', '.join(DISPLAY_MEM_UNITS)}")
    units = Units(time=parse_timeunit(timeunit), mem=memunit)
    run = StatsRun(requests, fmts, units, filter_time, filter_nvtx, output)
    with progress.task():
        _stats(trace_paths, run, per_rank, rank_from)


@dataclass(frozen=True)
class StatsRun:
    """What one ``stats`` command asks of every trace (or rank): the reports, their formats and units, the
    filters, and where the output goes."""

    requests: list[ReportRequest]
    fmts: list[str]
    units: Units
    filter_time: str | None
    filter_nvtx: str | None
    output: str | None


def _stats(trace_paths: tuple[Path, ...], run: StatsRun, per_rank: bool, rank_from: str) -> None:
    """The reports on one trace, or on each rank of several (or of one trace with ``per_rank``)."""
    if len(trace_paths) == 1 and not per_rank and not trace_paths[0].is_dir():
        with Trace.open(trace_paths[0]) as trace:
            _run_reports(trace, event_filter(trace, run.filter_time, run.filter_nvtx), run, "")
        return
    from ..trace.ranks import discover, rank_filter

    specs = discover(list(trace_paths), rank_from)
    time_filter = parse_filter_time(run.filter_time) if run.filter_time and not run.filter_nvtx else None
    for spec in specs:
        with Trace.open(spec.path) as trace:
            flt = rank_filter(trace, spec, time_filter, run.filter_nvtx)
            if run.output in (None, "-"):
                _out(f"\n==> rank {spec.rank}: {spec.label} (rank from {spec.source}) <==\n")
            if spec.device is not None:
                click.echo(
                    f"note: rank {spec.rank} is device {spec.device} of process {spec.pid}, which drives several "
                    "GPUs: the reports cover the whole process",
                    err=True,
                )
            _run_reports(trace, flt, run, f"rank{spec.rank}")


def _run_reports(trace: Trace, flt: EventFilter, run: StatsRun, rank_tag: str) -> None:
    """Every requested report on one trace (or rank): to standard output, or one file per report."""
    requests, fmts, units, output = run.requests, run.fmts, run.units, run.output
    to_stdout = output in (None, "-")
    for i, req in enumerate(requests):
        fmt = fmts[i] if len(fmts) > 1 else fmts[0]
        with progress.stage(f"reading {req.name}"):
            table = run_report(ReportContext(trace, flt), req)
        if not table.rows:
            why = table.skipped or "no matching events" + (f" in {flt.label}" if flt.label else "")
            click.echo(f"SKIPPED: {trace.path} {req.text}: {why}", err=True)
            if not to_stdout:
                continue  # a report with nothing to show writes no file: an empty one would pass for a result
        # the body comes in chunks (a per-event report such as cuda_gpu_trace is formatted a chunk of rows at a
        # time), each written as soon as it is made, so the whole text is never held at once
        chunks = _staged(render_chunks(table, fmt, units), f"rendering {req.name}")
        if to_stdout:
            if fmt in ("column", "table"):
                first = next(chunks, "")
                if first:
                    _out(f"\n ** {table.title} ({req.name}):\n\n{first}")
                    for chunk in chunks:
                        _out(chunk)
                    _out("\n")
            else:
                for chunk in chunks:
                    _out(chunk)
            continue
        base = output or ""
        if base.endswith(("/", os.sep)) or Path(base).is_dir():  # -o DIR/: files named after the trace, inside it
            base = str(resolve_output(base, Path(str(trace.path)).stem))
        dest = _destination(base, req.text, fmt, len(requests), rank_tag)
        _write_chunks(dest, chunks)
        click.echo(f"wrote {dest}", err=True)


def _staged(chunks: Iterator[str], name: str) -> Iterator[str]:
    """``chunks``, each made in the progress stage ``name``."""
    while True:
        with progress.stage(name):
            chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk


def _out(text: str) -> None:
    """Write to standard output, with the progress line off the terminal meanwhile."""
    with progress.hidden():
        write_stdout(text)


def _write_chunks(dest: Path, chunks: Iterator[str]) -> None:
    """``safe_io.write_atomic`` for text made in pieces: refused when ``dest`` is an input or a trace, written to a
    temporary file beside it and renamed over it once complete."""
    with open_atomic(dest, inputs=command_inputs()) as fh:
        try:
            for chunk in chunks:
                fh.write(chunk.encode("utf-8"))
        except OSError as exc:
            raise write_error(dest, exc) from None


def _destination(output: str, report_text: str, fmt: str, n_reports: int, rank_tag: str = "") -> Path:
    p = Path(output)
    if n_reports == 1 and p.suffix.lower() in (".csv", ".json", ".txt"):
        return p.with_name(f"{p.stem}_{rank_tag}{p.suffix}") if rank_tag else p
    tag = report_text.replace(":", "_").replace("=", "_").replace("/", "_")
    name = f"{p.name}_{rank_tag}" if rank_tag else p.name
    return p.parent / f"{name}_{tag}.{EXTENSIONS[fmt]}"


COMMANDS = [stats]
