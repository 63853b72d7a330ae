"""``nsys-doctor export``: the analysis window as a timeline for ui.perfetto.dev / chrome://tracing, or as Parquet.

The command gathers the window's frames from a ``TraceSession`` (``collect``), hands them to the writers in
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

from ..errors import NsysDoctorError, UsageError
from ..safe_io import check_output, open_atomic, resolve_output, write_error
from ..session import TraceSession, WindowChoice
from .common import command_inputs, default_output_name, ops_option, window_options
from .report import project_rules

if TYPE_CHECKING:
    import polars as pl

    from ..report.export import ExportData, PerfettoSummary
    from ..trace import Trace

PID_MASK = 1 << 24
BLOCK = ("blockX", "blockY", "blockZ")


class ExportError(click.ClickException):
    """An ``NsysDoctorError`` met by ``export``, as a click error with the CLI's exit code (2) and its one line."""

    exit_code = 2


# ------------------------------------------------------------------------------------------------ gathering


def window_kernels(session: TraceSession) -> pl.DataFrame:
    """``TraceSession.kernels()`` (the window's kernels, classified, in start order) with each kernel's block size
    (blockX, blockY, blockZ; null where the export has none).

    The session's frames do not hold block sizes, so they are read here: one column (the three packed in SQL)
    beside start and correlationId, in table order, which is the frame's order (checked; if it were not, the
    sizes are joined on the kernel's start, process, device, stream and correlation id instead)."""
    import polars as pl

    from ..analysis.ops import classify
    from ..trace import schema as S
    from ..trace.tables import load

    trace, w = session.trace, session.window
    k = session.frames.kernels
    have = all(trace.schema.has_column(S.KERNEL, c) for c in BLOCK)
    nulls = [pl.lit(None, pl.Int64).alias(c) for c in BLOCK]
    if not have or k.is_empty():
        k = k.with_columns(nulls)
    else:
        packed = f"{BLOCK[0]} | ({BLOCK[1]} << 21) | ({BLOCK[2]} << 42) AS _block"
        read = trace.read_table(S.KERNEL, {"start": pl.Int64, "correlationId": pl.Int64, packed: pl.Int64})
        aligned = read.height == k.height and read["start"].equals(k["start"])
        if aligned and read["correlationId"].equals(k["correlationId"]):
            unit = 1 << 21
            b = pl.col("_block")
            k = (
                k.with_columns(read["_block"])
                .with_columns(
                    (b % unit).alias(BLOCK[0]), (b // unit % unit).alias(BLOCK[1]), (b // (unit * unit)).alias(BLOCK[2])
                )
                .drop("_block")
            )
        else:
            key = ["start", "globalPid", "deviceId", "streamId", "correlationId"]
            block = load(trace, S.KERNEL, [*key, *BLOCK]).unique(subset=key, keep="first", maintain_order=True)
            k = k.join(block, on=key, how="left", maintain_order="left")
    # as TraceSession.kernels() makes them
    k = k.filter((pl.col("start") >= w.start) & (pl.col("start") <= w.end))
    names = k.group_by("name").agg(pl.col("short").first()).sort("name")
    ops = classify(names["name"].to_list(), session.rules, short_names=names["short"].to_list())
    k = k.join(ops.select("name", "family", "category", "op", "match"), on="name", how="left", maintain_order="left")
    return k.sort(["start", "correlationId"], maintain_order=True)


def _names(trace: Trace) -> tuple[dict[int, str], dict[tuple[int, int], str]]:
    """Process names (pid -> name, from PROCESSES) and thread names ((pid, tid) -> name, from ThreadNames)."""
    processes: dict[int, str] = {}
    threads: dict[tuple[int, int], str] = {}
    schema = trace.schema
    if schema.has_column("PROCESSES", "pid") and schema.has_column("PROCESSES", "name"):
        for pid, name in trace.rows("SELECT pid, name FROM PROCESSES ORDER BY rowid"):
            if isinstance(pid, int) and isinstance(name, str) and name:
                processes.setdefault(pid, name)
    if schema.has_column("ThreadNames", "nameId") and schema.has_column("ThreadNames", "globalTid"):
        strings = trace.strings
        for name_id, gtid in trace.rows("SELECT nameId, globalTid FROM ThreadNames ORDER BY rowid"):
            if isinstance(name_id, int) and isinstance(gtid, int) and strings.get(name_id):
                threads.setdefault(((gtid // PID_MASK) % PID_MASK, gtid % PID_MASK), strings[name_id])
    return processes, threads


def collect(session: TraceSession) -> ExportData:
    """The session's window as the exports write it: kernels (classified, with block sizes), API calls, memcpys,
    memsets and graph launches that start in the window (as ``TraceSession.kernels()`` counts them), the NVTX
    ranges, requests and phases that overlap it, and the window's steps."""
    import polars as pl

    from ..report.export import ExportData
    from ..trace.tables import gpus

    trace, f, w = session.trace, session.frames, session.window
    in_window = (pl.col("start") >= w.start) & (pl.col("start") <= w.end)
    overlaps = (pl.col("start") <= w.end) & (pl.col("end").is_null() | (pl.col("end") >= w.start))
    pid = ((pl.col("globalPid") // PID_MASK) % PID_MASK).alias("pid")
    order = ["start", "correlationId"]
    labels = trace.schema.enum_labels("ENUM_CUDA_MEMCPY_OPER")
    memcpy = (
        f.memcpy.filter(in_window)
        .with_columns(
            pl.col("copyKind").replace_strict(labels, default="Unknown", return_dtype=pl.Utf8).alias("copy_kind"), pid
        )
        .sort(order, maintain_order=True)
    )
    nvtx = (
        f.nvtx.filter(overlaps)
        .with_columns(
            ((pl.col("globalTid") // PID_MASK) % PID_MASK).alias("pid"), (pl.col("globalTid") % PID_MASK).alias("tid")
        )
        .sort(["start", "globalTid"], maintain_order=True)
    )
    structure = session.structure
    req_schema = {
        "index": pl.Int64,
        "start": pl.Int64,
        "end": pl.Int64,
        "gpu_start": pl.Int64,
        "gpu_end": pl.Int64,
        "warmup": pl.Boolean,
        "reason": pl.Utf8,
        "prefill_steps": pl.Int64,
        "decode_steps": pl.Int64,
        "iterations": pl.Int64,
    }
    requests = pl.DataFrame(
        [{c: getattr(r, c) for c in req_schema} for r in structure.requests], schema=req_schema
    ).filter(overlaps)
    ph_schema = {"kind": pl.Utf8, "start": pl.Int64, "end": pl.Int64, "detail": pl.Utf8}
    phases = pl.DataFrame([{c: getattr(p, c) for c in ph_schema} for p in structure.phases], schema=ph_schema)
    table = gpus(trace)
    devices = {int(d): str(n) for d, n in table.select("deviceId", "name").iter_rows() if d is not None and n}
    processes, threads = _names(trace)
    return ExportData(
        kernels=window_kernels(session),
        api=session.api().sort([*order, "globalTid", "end"], maintain_order=True),  # ties in a fixed order
        memcpy=memcpy,
        memset=f.memset.filter(in_window).with_columns(pid).sort(order, maintain_order=True),
        graphs=f.graph_launches.filter(in_window).with_columns(pid).sort(order, maintain_order=True),
        nvtx=nvtx,
        steps=session.step_set.table,
        requests=requests,
        phases=phases.filter(overlaps),
        window=w.to_dict(),
        source=session.path.name,
        devices=devices,
        processes=processes,
        threads=threads,
    )


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
@click.option(
    "--request",
    type=click.IntRange(0),
    metavar="N",
    help="Export request N of the run (0-based, warm-up requests included) instead of the measured ones.",
)
@ops_option
@click.option("--no-flows", is_flag=True, help="Leave out the arrows from each CUDA API call to its GPU work.")
@click.option("--demangled", is_flag=True, help="Name kernel slices by their demangled names (default: short names).")
def export(
    trace_path: Path,
    output: str | None,
    output_dir: str | None,
    window: str | None,
    filter_nvtx: str | None,
    whole_trace: bool,
    request: int | None,
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
        _export(trace_path, output, output_dir, WindowChoice(window, filter_nvtx, whole_trace, request),
                ops_file, not no_flows, demangled)  # fmt: skip
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
    with TraceSession.open(trace_path, rules, choice) as session:
        data = collect(session)
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
