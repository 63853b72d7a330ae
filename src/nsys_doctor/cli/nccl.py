"""``nsys-doctor nccl``: collectives across ranks, split into waiting and moving; the late rank and why."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import progress
from ..errors import UsageError
from ..trace.ranks import RankSpec
from .common import cache_option, emit, file_option, jobs_option, rank_from_option, render_text

if TYPE_CHECKING:
    from ..analysis.nccl import NcclResult

FORMATS = ("terminal", "markdown", "json", "html")


def rank_specs(traces: tuple[Path, ...], rank_from: str) -> list[RankSpec]:
    from ..trace.ranks import discover

    if not traces:
        raise UsageError("no traces given", "pass one trace per rank, a directory of them, or one multi-rank trace")
    return discover(list(traces), rank_from)


def check_dask_address(address: str) -> None:
    """``--dask``: a scheduler address, ``local``, or ``local:N`` with N workers (1 or more)."""
    hint = "give the scheduler address (tcp://host:8786), 'local', or 'local:N' with N workers"
    if not address.strip():
        raise UsageError("--dask needs an address", hint)
    if address.startswith("local:"):
        n = address.split(":", 1)[1]
        if not (n.isdigit() and n.isascii() and 1 <= int(n) <= 4096):
            raise UsageError(f"--dask {address}: {n!r} is not a number of workers (1 to 4096)", hint)


@click.command()
@click.argument("traces", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="TRACES...")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="terminal", show_default=True)
@click.option("-o", "--output", metavar="FILE", help="Write the result to FILE instead of standard output.")
@jobs_option
@click.option(
    "--dask",
    "dask_address",
    metavar="ADDRESS",
    help="Run the per-rank work on the Dask cluster at ADDRESS (tcp://host:8786; 'local' or 'local:N' starts one "
    "here). Traces must be readable at the same paths on the workers.",
)
@rank_from_option("Where rank numbers come from: the recorded environment (RANK ...), the file name, or sorted order.")
@click.option("--top", type=click.IntRange(1, 100_000), default=20, show_default=True, help="Worst instances to list.")
@file_option(
    "--ops",
    "ops_file",
    help="Extra kernel-to-operation rules; kernels they put in the 'communication' family are analyzed too.",
)
@progress.quiet_option
@cache_option
def nccl(
    traces: tuple[Path, ...],
    fmt: str,
    output: str | None,
    jobs: int,
    dask_address: str | None,
    rank_from: str,
    top: int,
    ops_file: Path | None,
) -> None:
    """Collectives across ranks: is "slow NCCL" waiting for a late rank, or moving data?

    \b
    TRACES are one trace per rank (nsys profile -o trace_rank%q{RANK}), a directory of them, or one trace
    holding every rank (nsys profile torchrun ...: split per process, and per device). Ranks are numbered from
    the environment recorded at capture (RANK, OMPI_COMM_WORLD_RANK, SLURM_PROCID ...), the file name, or sorted
    order; clocks are aligned with each trace's session start time.

    \b
    For each collective type: count and per-rank duration p50/p99/max; each instance matched across ranks (by
    order per stream and kernel) with its arrival skew (latest start minus earliest start: waiting) and the
    duration on the last-arriving rank (transfer: moving); the late rank and how often it is last; the worst
    instances with their step and what the late rank did just before; the steps carrying the big skews;
    communication/compute overlap and per-rank step time.

    \b
    Examples:
      nsys-doctor nccl run/trace_rank0.sqlite run/trace_rank1.sqlite
      nsys-doctor nccl run/ --jobs 8 --format json -o nccl.json
      nsys-doctor nccl run/ --dask tcp://scheduler:8786
    """
    from .report import check_html_output, project_rules, render_output

    check_html_output(fmt, output)
    if dask_address is not None:
        check_dask_address(dask_address)
    if dask_address and jobs != 1:
        raise UsageError("--jobs and --dask exclude each other", "give --jobs N for local processes or --dask ADDRESS")
    from ..analysis.nccl import analyze
    from ..parallel import map_ranks

    rules = project_rules(ops_file)
    specs = rank_specs(traces, rank_from)
    color = output is None and sys.stdout.isatty()
    text = ""
    with progress.task():
        with progress.stage("reading ranks"):
            summaries = map_ranks(specs, jobs=jobs, dask=dask_address, progress=progress.counter(), rules=rules)
        with progress.stage("analyses"):
            result = analyze(summaries, top=top)
        if any(s.instances.height for s in summaries):
            text = render_output(fmt, lambda html: html.render_nccl(result), lambda f: _render(result, f, color))
    if not any(s.instances.height for s in summaries):
        graph = [s.rank for s in summaries if s.info.get("graph_launches")]
        hint = (
            "CUDA graphs were traced as whole launches: recapture with --cuda-graph-trace=node to see the "
            "collectives inside them"
            if graph
            else "capture the ranks with --trace=cuda,nvtx while collectives run (check the capture range)"
        )
        raise UsageError(f"no NCCL or other collective kernels in {', '.join(str(t) for t in traces)}", hint)
    emit(text, output, fmt)


def _render(result: NcclResult, fmt: str, color: bool) -> str:
    """The cross-rank analysis as terminal text, markdown or JSON."""
    from ..report import nccl_text

    return render_text(fmt, nccl_text, result, color=color)


COMMANDS = [nccl]
