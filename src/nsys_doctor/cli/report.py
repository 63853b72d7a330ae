"""``nsys-doctor report``: where GPU time goes in the inference window, and what to optimize next."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..analysis.diagnosis import Diagnosis, diagnose
from ..analysis.ops import OpRule, load_rules, parse_rules_tables, read_rules_file
from ..analysis.phases import Window, data_extent
from ..config import find_config
from ..errors import UsageError
from ..report.diagnosis_json import render_json
from ..report.diagnosis_text import render_markdown, render_terminal
from ..trace import Trace
from ..trace.meta import describe
from ..trace.tables import TraceFrames
from ..trace.window import parse_filter_time, resolve_nvtx_filter

FORMATS = ("terminal", "markdown", "json")


def project_rules(ops_file: Path | None) -> list[OpRule]:
    """--ops rules first, then the project config's (``ops`` file and inline ``ops-rule`` tables), then shipped."""
    cfg = find_config()
    extra: list[OpRule] = []
    if cfg.path is not None:
        if isinstance(cfg.data.get("ops"), str):
            extra += read_rules_file(cfg.relative(str(cfg.data["ops"])))
        inline = cfg.data.get("ops-rule")
        if isinstance(inline, list) and inline:
            extra += parse_rules_tables(inline, str(cfg.path))
    return load_rules(ops_file, extra)


def diagnose_trace(
    trace: Trace,
    rules: list[OpRule],
    window: str | None = None,
    filter_nvtx: str | None = None,
    whole_trace: bool = False,
    top: int = 10,
) -> Diagnosis:
    """Read what the diagnosis needs from an open trace and run it (the window options as on the command line)."""
    info = describe(trace)
    frames = TraceFrames(trace)
    chosen: Window | None = None
    if window:
        f = parse_filter_time(window)
        _, hi = data_extent(frames.kernels, frames.api, [frames.memcpy])
        chosen = Window(f.start, min(f.end, hi), "user", f"--window {window}")
    elif filter_nvtx:
        f = resolve_nvtx_filter(trace, filter_nvtx)
        chosen = Window(f.start, f.end, "user", f"NVTX range {filter_nvtx}")
    elif whole_trace:
        lo, hi = data_extent(frames.kernels, frames.api, [frames.memcpy])
        chosen = Window(lo, hi, "whole-trace", "--whole-trace")
    gpu = info.gpus[0] if info.gpus else {}
    trace_info = {
        "path": str(trace.path),
        "nsys_version": info.product_version,
        "schema_version": info.schema_version,
        "gpu": gpu.get("name"),
        "gpu_peak_bandwidth_Bps": gpu.get("memoryBandwidth"),
        "gpus": len(info.gpus),
        "cuda_graph_trace": info.capture.get("cuda_graph_trace"),
        "capture_range": info.capture.get("capture_range"),
        "command": info.capture.get("command"),
        "missing": info.missing,
    }
    return diagnose(
        frames.kernels,
        frames.api,
        frames.memcpy,
        frames.gpu_ops,
        frames.nvtx,
        frames.graph_launches.height,
        info.capture,
        info.diagnostics,
        frames.overhead,
        trace_info,
        rules,
        window=chosen,
        top=top,
    )


@click.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path(path_type=Path))
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="terminal", show_default=True)
@click.option("-o", "--output", metavar="FILE", help="Write the report to FILE instead of standard output.")
@click.option("--window", metavar="START/END", help="Analyze this time window (nsys time syntax, e.g. 2s/5s).")
@click.option("--filter-nvtx", metavar="RANGE[@DOMAIN][/N]", help="Analyze the window of this NVTX range.")
@click.option("--whole-trace", is_flag=True, help="Analyze the whole trace, loading and warm-up included.")
@click.option(
    "--ops",
    "ops_file",
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="Extra kernel-to-operation rules (TOML, [[rule]] tables); they override the shipped ones.",
)
@click.option("--top", default=10, show_default=True, help="Kernels and tails to list.")
def report(
    trace_path: Path,
    fmt: str,
    output: str | None,
    window: str | None,
    filter_nvtx: str | None,
    whole_trace: bool,
    ops_file: Path | None,
    top: int,
) -> None:
    """Diagnose TRACE: top kernels and families, tails, host overhead, findings and the next actions.

    \b
    By default the steady-state inference window is analyzed (model loading and warm-up are left out): a
    cudaProfilerApi capture range, NVTX request or step ranges, else a detection from the data. The chosen window
    and the reason are printed first.
    """
    if sum(bool(x) for x in (window, filter_nvtx, whole_trace)) > 1:
        raise UsageError("--window, --filter-nvtx and --whole-trace exclude each other", "give at most one")
    rules = project_rules(ops_file)
    with Trace.open(trace_path) as trace:
        d = diagnose_trace(trace, rules, window=window, filter_nvtx=filter_nvtx, whole_trace=whole_trace, top=top)
    if fmt == "json":
        text = render_json(d)
    elif fmt == "markdown":
        text = render_markdown(d)
    else:
        text = render_terminal(d, color=output is None and sys.stdout.isatty())
    if output and output != "-":
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(text)


COMMANDS = [report]
