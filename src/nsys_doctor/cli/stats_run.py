"""``nsys-doctor stats`` without click: the reports of one command line on its traces. The click command
(``stats.py``) and the command line run without click (``quick.py``) both call ``run_stats``."""

from __future__ import annotations

import os

from .. import progress
from ..errors import UsageError
from ..report.nsys_format import FORMATS, Units, render_chunks
from ..safe_io import write_stdout
from ..stats import ReportContext, ReportRequest, parse_report_arg, run_report
from ..trace import Trace
from ..trace.window import EventFilter, event_filter, parse_filter_time
from ..units import DISPLAY_MEM_UNITS, parse_timeunit
from .contract import echo_err

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

DEFAULT_REPORTS = (
    "nvtx_sum",
    "osrt_sum",
    "cuda_api_sum",
    "cuda_gpu_kern_sum",
    "cuda_gpu_mem_time_sum",
    "cuda_gpu_mem_size_sum",
)
EXTENSIONS = {"csv": "csv", "json": "json", "column": "txt", "table": "txt"}
DEFAULTS = {"formats": "column", "timeunit": "ns", "memunit": "MB", "rank_from": "auto"}
"""The options' defaults (the click command declares them from here; a test checks it)."""


def run_stats(
    trace_paths: Sequence[str | os.PathLike[str]],
    reports: Sequence[str] = (),
    formats: str = DEFAULTS["formats"],
    timeunit: str = DEFAULTS["timeunit"],
    memunit: str = DEFAULTS["memunit"],
    filter_time: str | None = None,
    filter_nvtx: str | None = None,
    output: str | None = None,
    per_rank: bool = False,
    rank_from: str = DEFAULTS["rank_from"],
) -> None:
    """The reports ``reports`` (nsys's default set when empty) on ``trace_paths``, each in its format, to standard
    output or to files (``output``); bad options are a ``UsageError``."""
    # -r takes a comma list too, as in nsys (-r cuda_gpu_kern_sum,cuda_api_sum)
    names = [part for r in (reports or DEFAULT_REPORTS) for part in r.split(",") if part.strip()]
    requests = [parse_report_arg(r.strip()) for r in names]
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    if not fmts:
        raise UsageError("no format given", f"use one of {', '.join(FORMATS)}")
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


class StatsRun:
    """What one ``stats`` command asks of every trace (or rank): the reports, their formats and units, the
    filters, and where the output goes."""

    __slots__ = ("filter_nvtx", "filter_time", "fmts", "output", "requests", "units")

    def __init__(
        self,
        requests: list[ReportRequest],
        fmts: list[str],
        units: Units,
        filter_time: str | None,
        filter_nvtx: str | None,
        output: str | None,
    ) -> None:
        self.requests = requests
        self.fmts = fmts
        self.units = units
        self.filter_time = filter_time
        self.filter_nvtx = filter_nvtx
        self.output = output


def _stats(trace_paths: Sequence[str | os.PathLike[str]], run: StatsRun, per_rank: bool, rank_from: str) -> None:
    """The reports on one trace, or on each rank of several (or of one trace with ``per_rank``)."""
    if len(trace_paths) == 1 and not per_rank and not os.path.isdir(trace_paths[0]):
        with Trace.open(trace_paths[0]) as trace:
            _run_reports(trace, event_filter(trace, run.filter_time, run.filter_nvtx), run, "")
        return
    from pathlib import Path

    from ..trace.ranks import discover, rank_filter

    specs = discover([Path(p) for p in trace_paths], rank_from)
    time_filter = parse_filter_time(run.filter_time) if run.filter_time and not run.filter_nvtx else None
    for spec in specs:
        with Trace.open(spec.path) as trace:
            flt = rank_filter(trace, spec, time_filter, run.filter_nvtx)
            if run.output in (None, "-"):
                _out(f"\n==> rank {spec.rank}: {spec.label} (rank from {spec.source}) <==\n")
            if spec.device is not None:
                echo_err(
                    f"note: rank {spec.rank} is device {spec.device} of process {spec.pid}, which drives several "
                    "GPUs: the reports cover the whole process"
                )
            _run_reports(trace, flt, run, f"rank{spec.rank}")


def _run_reports(trace: Trace, flt: EventFilter, run: StatsRun, rank_tag: str) -> None:
    """Every requested report on one trace (or rank): to standard output, or one file per report."""
    requests, fmts, units, output = run.requests, run.fmts, run.units, run.output
    to_stdout = output in (None, "-")
    if to_stdout and len(requests) > 1:
        # several reports on standard output (nsys's default set reads every event table): a mostly damaged table
        # is refused before any report is printed, in one line, not after the reports before the one reading it
        from ..trace.meta import COUNTED_TABLES

        for name in COUNTED_TABLES:
            trace.spot_damage(name)
    for i, req in enumerate(requests):
        fmt = fmts[i] if len(fmts) > 1 else fmts[0]
        with progress.stage(f"reading {req.name}"):
            table = run_report(ReportContext(trace, flt), req)
        if not table.rows:
            why = table.skipped or "no matching events" + (f" in {flt.label}" if flt.label else "")
            echo_err(f"SKIPPED: {trace.name} {req.text}: {why}")
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
        from pathlib import Path

        from ..safe_io import resolve_output

        base = output or ""
        if base.endswith(("/", os.sep)) or Path(base).is_dir():  # -o DIR/: files named after the trace, inside it
            base = str(resolve_output(base, Path(str(trace.path)).stem))
        dest = _destination(base, req.text, fmt, len(requests), rank_tag)
        _write_chunks(dest, chunks)
        echo_err(f"wrote {dest}")


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
    from ..safe_io import open_atomic, write_error
    from .common import command_inputs

    with open_atomic(dest, inputs=command_inputs()) as fh:
        try:
            for chunk in chunks:
                fh.write(chunk.encode("utf-8"))
        except OSError as exc:
            raise write_error(dest, exc) from None


def _destination(output: str, report_text: str, fmt: str, n_reports: int, rank_tag: str = "") -> Path:
    from pathlib import Path

    p = Path(output)
    if n_reports == 1 and p.suffix.lower() in (".csv", ".json", ".txt"):
        return p.with_name(f"{p.stem}_{rank_tag}{p.suffix}") if rank_tag else p
    tag = report_text.replace(":", "_").replace("=", "_").replace("/", "_")
    name = f"{p.name}_{rank_tag}" if rank_tag else p.name
    return p.parent / f"{name}_{tag}.{EXTENSIONS[fmt]}"
