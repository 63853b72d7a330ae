"""``nsys-doctor report``: where GPU time goes in the inference window, and what to optimize next."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

import click

from .. import progress
from ..errors import NsysDoctorError, UsageError
from .common import (
    cache_option,
    emit,
    file_option,
    jobs_option,
    ops_option,
    rank_from_option,
    request_option,
    window_options,
)

# Only what the options need is imported here: `report --help` must not load polars, numpy or rich. The analyses
# and renderers are imported by the functions that run them.
if TYPE_CHECKING:
    from ..analysis.diagnosis import Diagnosis
    from ..analysis.model import Model
    from ..analysis.nccl import NcclResult
    from ..analysis.ops import OpRule
    from ..analysis.roofline import Roofline
    from ..session import TraceSession, WindowChoice
    from ..trace import Trace
    from ..trace.ranks import RankSpec
    from ..trace.tables import TraceFrames
    from . import result_cache

F = TypeVar("F", bound=Callable[..., object])
FORMATS = ("terminal", "markdown", "json")
REPORT_FORMATS = (*FORMATS, "html")  # report only: a page with plots (roofline shares FORMATS)


def check_html_output(fmt: str, output: str | None) -> None:
    """``--format html`` writes a web page: to a file (``-o``) or a pipe, never dumped onto a terminal. Checked
    before any trace is read."""
    if fmt == "html" and (output is None or output == "-") and sys.stdout.isatty():
        raise UsageError(
            "--format html writes a web page, not terminal text",
            "add -o report.html (or redirect standard output to a file) and open it in a browser",
        )


def html_format_option(formats: tuple[str, ...], page: str) -> Callable[[F], F]:
    """``-f/--format`` of a command that also writes an HTML page (``page``: the file name its help suggests)."""
    return click.option(
        "-f",
        "--format",
        "fmt",
        type=click.Choice(formats),
        default="terminal",
        show_default=True,
        help=f"html: one self-contained page with plots (write it with -o {page}).",
    )


def render_output(fmt: str, html_page: Callable[[ModuleType], str], text: Callable[[str], str]) -> str:
    """A command's output in ``fmt``, made in the progress stage "rendering": ``html_page(report.html)`` for
    ``html`` (the page renderers are imported only then), else ``text(fmt)``."""
    with progress.stage("rendering"):
        if fmt == "html":
            from ..report import html

            return html_page(html)
        return text(fmt)


def read_in_stages(session: TraceSession, split: bool = False) -> bool:
    """Read the trace, then find the run's structure, each in its progress stage (the session keeps both). With
    ``split``, a trace whose frames hold several ranks' processes is only read: says whether it is one (one trace
    may hold several ranks; the frames tell it, where a scan of the kernel table for its distinct processes and
    devices before reading it cost 3% of a report)."""
    from ..trace.ranks import frame_units, several_ranks

    with progress.stage("reading"):
        if split and several_ranks(session.path, frame_units(session.frames)):
            return True
    with progress.stage("structure"):
        _ = session.structure
    return False


def project_rules(ops_file: Path | None) -> list[OpRule]:
    """--ops rules first, then the project config's (``ops`` file and inline ``ops-rule`` tables), then shipped.

    Every failure (a missing or malformed file, a rule of the wrong shape) is a ``UsageError`` naming the file and
    the rule; for the config, its path and key."""
    from ..analysis.ops import parse_rules_tables
    from ..config import find_config, inline_op_rules, ops_path
    from ..loaders import load_rules, read_rules_file

    cfg = find_config()
    extra: list[OpRule] = []
    path = ops_path(cfg)
    if path is not None:
        try:
            extra += read_rules_file(path)
        except UsageError as exc:
            raise UsageError(f"{exc.message} (named by {cfg.where('ops')})", exc.hint) from exc
    inline = inline_op_rules(cfg)
    if inline:
        extra += parse_rules_tables(inline, str(cfg.path), where=f"{cfg.where('ops-rule')}, rule")
    return load_rules(ops_file, extra)


def diagnose_trace(
    trace: Trace,
    rules: list[OpRule],
    window: str | None = None,
    filter_nvtx: str | None = None,
    whole_trace: bool = False,
    top: int = 10,
    rank: RankSpec | None = None,
    frames: TraceFrames | None = None,
    request: int | None = None,
    warmup: int | None = None,
) -> Diagnosis:
    """The diagnosis of an open trace (the window options as on the command line); with ``rank``, only that
    rank's process (and device) is analyzed; ``frames`` are reused when already read."""
    from ..session import TraceSession, WindowChoice

    choice = WindowChoice(window, filter_nvtx, whole_trace, request, warmup)
    return TraceSession(trace, rules, choice, rank, frames).diagnose(top)


def add_roofline(
    d: Diagnosis, session: TraceSession, model: Model, peak_bw: float | None
) -> tuple[Diagnosis, Roofline | None]:
    """The diagnosis with the roofline of ``--model`` on the session's steps (its findings merged); a model that
    does not fit the trace becomes a note."""
    from dataclasses import replace

    try:
        r = session.roofline(model, peak_bw=peak_bw)
    except UsageError as exc:
        return d.with_note(f"roofline skipped: {exc.one_line()}"), None
    return replace(d, roofline=r.to_dict()).with_findings(r.findings), r


def capture_timing(trace_path: Path) -> dict[str, object] | None:
    """Unprofiled vs traced timing from the capture record beside the trace (nsys-doctor capture --baseline-run)."""
    from ..capture.sidecar import read_sidecar

    rec = read_sidecar(trace_path)
    if not rec or not isinstance(rec.get("baseline"), dict):
        return None
    return {k: rec.get(k) for k in ("baseline", "traced", "inflation", "trace_timing", "trace_inflation")}


def rank_report(
    spec: RankSpec, rules: list[OpRule], choice: WindowChoice, top: int = 10, plots: bool = False
) -> object:
    """One rank's diagnosis and collective summary (top-level: runs in worker processes); with ``plots``, the data
    of its HTML plots too."""
    from ..parallel import WorkerError
    from ..session import TraceSession

    try:
        with TraceSession.open(spec.path, rules, choice, rank=spec) as session:
            if plots:
                return session.diagnose(top), session.rank_summary(), session.plot_data()
            return session.diagnose(top), session.rank_summary()
    except NsysDoctorError as exc:
        return WorkerError(type(exc).__name__, exc.message, exc.hint)


def render_ranks(pairs: list[tuple[RankSpec, Diagnosis]], across: NcclResult | None, fmt: str, color: bool) -> str:
    """Per-rank reports, then what holds across ranks (collectives, late rank, imbalance), as terminal text,
    markdown or JSON (the HTML page: ``report.html.render_ranks``)."""
    from ..report import nccl_text
    from ..report.diagnosis_json import render_ranks_json
    from ..report.diagnosis_text import render_markdown, render_terminal

    if fmt == "json":
        return render_ranks_json(pairs, across)
    parts = []
    if fmt == "markdown":
        parts.append(f"# nsys-doctor report: {len(pairs)} ranks\n")
        for sp, d in pairs:
            parts.append(f"\n# Rank {sp.rank}: {sp.label} (rank from {sp.source})\n\n" + render_markdown(d))
        if across is not None:
            parts.append("\n# Across ranks\n\n" + nccl_text.render_markdown(across, compact=True))
        return "".join(parts)
    for sp, d in pairs:
        parts.append(f"{'=' * 20} rank {sp.rank}: {sp.label} (rank from {sp.source}) {'=' * 20}\n")
        parts.append(render_terminal(d, color=color) + "\n")
    if across is not None:
        parts.append(f"{'=' * 20} across ranks {'=' * 20}\n")
        parts.append(nccl_text.render_terminal(across, color=color, compact=True))
    return "".join(parts)


def _dtype_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--dtype`` in its canonical spelling (``bfloat16`` -> ``bf16``), checked before any trace is read."""
    if value is None:
        return None
    from ..analysis.model import parse_dtype

    try:
        return parse_dtype(value)
    except UsageError as exc:
        raise click.BadParameter(f"{exc.message} ({exc.hint})", ctx, param) from exc


@click.command()
@click.argument("trace_paths", metavar="TRACES...", nargs=-1, required=True, type=click.Path(path_type=Path))
@html_format_option(REPORT_FORMATS, "report.html")
@click.option("-o", "--output", metavar="FILE", help="Write the report to FILE instead of standard output.")
@window_options
@ops_option
@click.option(
    "--top", type=click.IntRange(1, 100_000), default=10, show_default=True, help="Kernels and tails to list."
)
@rank_from_option()
@file_option(
    "--model",
    "model_path",
    metavar="CONFIG",
    help="Model config.json or shapes TOML: add the roofline section and its findings (see roofline).",
)
@click.option(
    "--dtype", callback=_dtype_option, help="Weight dtype for --model (bf16, fp16, fp8, int8, int4, fp32, or aliases)."
)
@click.option("--peak-bw", "peak_bw", metavar="TB/S", help="Peak DRAM bandwidth for --model, if not in the trace.")
@click.option("--no-split", is_flag=True, help="Analyze one trace holding several ranks as a whole, not per rank.")
@jobs_option
@request_option("Analyze")
@progress.quiet_option
@cache_option
def report(
    trace_paths: tuple[Path, ...],
    fmt: str,
    output: str | None,
    choice: WindowChoice,
    ops_file: Path | None,
    top: int,
    rank_from: str,
    model_path: Path | None,
    dtype: str | None,
    peak_bw: str | None,
    no_split: bool,
    jobs: int,
) -> None:
    """Diagnose TRACES: top kernels and families, tails, host overhead, findings and the next actions.

    \b
    By default the measured requests of the run are analyzed: the run's structure is found from the data (the
    forward pass from the repeating kernel sequence, checked against syncs, graph launches, NVTX and the capture
    range), and loading, compilation and warm-up requests are left out (--request N picks another request). The
    window, the run kind and where they came from are printed first.

    \b
    Several traces (one per rank), a directory of them, or one trace holding several ranks' processes give one
    report per rank, then what holds across ranks: the late rank, waiting in collectives, unequal work per step
    (see also: nsys-doctor nccl). Time options apply to each rank's own timeline.
    """
    from ..session import TraceSession
    from ..trace.ranks import discover

    check_html_output(fmt, output)
    if no_split and len(trace_paths) > 1:
        raise UsageError("--no-split applies to one trace", "give one trace, or drop --no-split")
    for option, value in (("--dtype", dtype), ("--peak-bw", peak_bw)):
        if value is not None and model_path is None:
            raise UsageError(f"{option} applies to --model only", f"add --model CONFIG, or drop {option}")
    color = output is None and sys.stdout.isatty()
    saved = _result_slot(trace_paths, fmt, color, ops_file, model_path)
    if saved is not None:
        from . import result_cache

        text = result_cache.load(saved)
        if text is not None:
            emit(text, output, fmt)
            return
    model = None
    bw = None
    if model_path is not None:
        from ..loaders import read_model
        from .roofline import parse_bandwidth

        bw = parse_bandwidth(peak_bw) if peak_bw is not None else None
        model = read_model(model_path, dtype)
    rules = project_rules(ops_file)
    text = None
    if len(trace_paths) == 1 and (no_split or not trace_paths[0].is_dir()):
        with progress.task(), TraceSession.open(trace_paths[0], rules, choice) as session:
            if not read_in_stages(session, split=not no_split):
                text = _one_report(session, fmt, color, top, model, bw, trace_paths[0])
    if text is None:
        if choice.request is not None:
            raise UsageError("--request applies to a report on one trace", "give one trace (or --no-split)")
        if model is not None:
            raise UsageError(
                "--model applies to a report on one rank",
                "add --no-split to analyze the trace as a whole, or run nsys-doctor roofline on one rank's trace",
            )
        from ..analysis.nccl import analyze, blame_late_rank
        from ..parallel import map_ranks

        specs = discover(list(trace_paths), rank_from)
        with progress.task():
            with progress.stage("reading ranks"):
                results = map_ranks(
                    specs,
                    rank_report,
                    jobs=jobs,
                    progress=progress.counter(),
                    rules=rules,
                    choice=choice,
                    top=top,
                    plots=fmt == "html",
                )
            with progress.stage("analyses"):
                summaries = [r[1] for r in results]
                across = analyze(summaries) if len(specs) > 1 and any(s.instances.height for s in summaries) else None
                pairs = [(sp, r[0]) for sp, r in zip(specs, results, strict=True)]
                if across is not None:
                    blamed = blame_late_rank([(sp.rank, d) for sp, d in pairs], across)
                    pairs = [(sp, d) for (sp, _), (_, d) in zip(pairs, blamed, strict=True)]
            plots_of = [r[2] if len(r) > 2 else None for r in results]
            text = render_output(
                fmt,
                lambda html: html.render_ranks(
                    [(sp.rank, sp.label, d, p) for (sp, d), p in zip(pairs, plots_of, strict=True)], across
                ),
                lambda f: render_ranks(pairs, across, f, color),
            )
    emit(text, output, fmt)
    if saved is not None:
        from ..trace.damage import announced
        from . import result_cache

        if not announced():
            result_cache.store(saved, text)


# options that do not change the output (where it goes, how much is printed while it runs, how many workers)
_NOT_IN_OUTPUT = ("output", "quiet", "no_cache", "jobs")


def _result_slot(
    trace_paths: tuple[Path, ...], fmt: str, color: bool, ops_file: Path | None, model_path: Path | None
) -> result_cache.ResultSlot | None:
    """Where this report's output is kept for a later identical run (``cli/result_cache.py``), or None."""
    import shutil

    from ..config import find_config, ops_path
    from . import result_cache

    try:
        cfg = find_config()
        files = {"--ops": ops_file, "--model": model_path, "config": cfg.path, "config ops": ops_path(cfg)}
    except UsageError:
        return None  # the run itself says what is wrong with the config
    params = click.get_current_context().params
    options = {k: v for k, v in sorted(params.items()) if k not in _NOT_IN_OUTPUT}
    width = shutil.get_terminal_size()
    render = {"format": fmt, "color": color, "terminal": [width.columns, width.lines]}
    return result_cache.slot("report", trace_paths, options, files, render)


def _roofline_section(roof: Roofline | None) -> list[tuple[str, str]]:
    """The roofline of ``report --model`` as an extra section of the HTML page."""
    if roof is None:
        return []
    from ..report import roofline_text

    return [("Roofline", roofline_text.render_terminal(roof, color=False))]


def _one_report(
    session: TraceSession,
    fmt: str,
    color: bool,
    top: int,
    model: Model | None,
    bw: float | None,
    path: Path,
) -> str:
    """The report on the one trace of ``session`` (read, its structure found), rendered in ``fmt``."""
    roof = None
    plots = None
    with progress.stage("analyses"):
        d = session.diagnose(top)
        if model is not None:
            d, roof = add_roofline(d, session, model, bw)
        if fmt == "html":
            plots = session.plot_data()
        d = replace(d, timing=capture_timing(path))
    return render_output(
        fmt,
        lambda html: html.render_report(d, plots, _roofline_section(roof)),
        lambda f: _render_one(d, roof, f, color),
    )


def _render_one(d: Diagnosis, roof: Roofline | None, fmt: str, color: bool) -> str:
    """A one-trace report as terminal text, markdown or JSON (with the roofline of ``--model``)."""
    from ..report.diagnosis_json import render_json
    from ..report.diagnosis_text import render_markdown, render_terminal

    if fmt == "json":
        return render_json(d)
    if roof is None:
        return render_markdown(d) if fmt == "markdown" else render_terminal(d, color=color)
    from ..report import roofline_text

    if fmt == "markdown":
        return render_markdown(d) + roofline_text.render_markdown(roof)
    return render_terminal(d, color=color) + "\n" + roofline_text.render_terminal(roof, color=color)


COMMANDS = [report]
