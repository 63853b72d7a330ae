"""``nsys-doctor stats``: nsys's ``stats`` reports and ``analyze`` rules, with the same numbers, without nsys."""

from __future__ import annotations

from pathlib import Path

import click

from .. import progress
from ..stats import REGISTRY, load_all
from .common import rank_from_option
from .stats_run import DEFAULTS, run_stats


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
    default=DEFAULTS["formats"],
    show_default=True,
    help="column, table, csv or json; a comma list gives one per report.",
)
@click.option(
    "--timeunit", default=DEFAULTS["timeunit"], show_default=True, help="Time unit for durations: ns, us, ms, sec."
)
@click.option(
    "--memunit", default=DEFAULTS["memunit"], show_default=True, help="Unit for bytes: B, KB, KiB, MB, MiB, GB, GiB."
)
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
    run_stats(trace_paths, reports, formats, timeunit, memunit, filter_time, filter_nvtx, output, per_rank, rank_from)


COMMANDS = [stats]
