"""``nsys-doctor diff``, ``scaling`` and ``baseline``: compare traces per step, with significance and a CI gate."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import progress
from ..errors import NsysDoctorError, UsageError
from .common import FiniteFloat, cache_option, command_inputs, emit, jobs_option, ops_option, rank_from_option
from .report import check_html_output, html_format_option, project_rules, read_in_stages, render_output

# Only what the options need is imported here (`diff --help` loads no polars, numpy or rich); the comparison and
# its renderers are imported by the functions that run them.
if TYPE_CHECKING:
    from ..analysis.compare import DiffResult, GateResult, Profile
    from ..analysis.ops import OpRule
    from ..analysis.plots import DiffSteps
    from ..trace.ranks import RankSpec

LEVELS = ("name", "base", "family")  # analysis.compare.LEVELS (tests/test_perf_startup.py keeps them equal)
FORMATS = ("terminal", "markdown", "json")
DIFF_FORMATS = (*FORMATS, "html")  # diff only: a page with per-step and per-family plots
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def profile_of(path: Path, ops_file: Path | None = None, context: int | None = None) -> Profile:
    """The per-step profile of one trace (read, structure and profile each in its progress stage)."""
    profile = _profile(path, ops_file, context, split=False)
    assert profile is not None  # (only a split read declines)
    return profile


def _profile(path: Path, ops_file: Path | None, context: int | None, split: bool) -> Profile | None:
    """``profile_of``; with ``split``, None for a trace whose frames hold several ranks' processes (only read)."""
    from ..session import TraceSession

    with progress.task(), TraceSession.open(path, project_rules(ops_file)) as session:
        if read_in_stages(session, split=split):
            return None
        with progress.stage("analyses"):
            return session.profile(str(path), context, last=True)


def rank_profile(spec: RankSpec, rules: list[OpRule]) -> object:
    """The profile of one rank (top-level: runs in worker processes)."""
    from ..parallel import WorkerError
    from ..session import TraceSession

    try:
        with TraceSession.open(spec.path, rules, rank=spec) as session:
            return session.profile(f"{spec.label} (rank {spec.rank})", last=True)
    except NsysDoctorError as exc:
        return WorkerError(type(exc).__name__, exc.message, exc.hint)


def _side_paths(arg: Path) -> list[str]:
    """A diff side: a trace, a directory of rank traces, or a comma-separated list of traces."""
    text = str(arg)
    if "," in text and not arg.exists():
        return [p for p in text.split(",") if p]
    return [text]


def rank_side(arg: Path, rank_from: str, exact: bool = False) -> list[RankSpec] | None:
    """The ranks of one diff side, or None when it is one trace: whether that trace holds several ranks' processes
    is told from the frames read for its profile (``one_side``), or with ``exact`` here, from a scan of its kernel
    table."""
    from ..trace.ranks import discover, multi_rank

    paths: list[str | os.PathLike[str]] = list(_side_paths(arg))
    if len(paths) == 1 and not (multi_rank(paths) if exact else Path(paths[0]).is_dir()):
        return None
    return discover(paths, rank_from)


def one_side(arg: Path, ops_file: Path | None, rules: list[OpRule], jobs: int, rank_from: str) -> dict[int, Profile]:
    """The profile of a side that is one trace ({0: profile}), or of each of its ranks when it holds several ranks'
    processes (told from the frames read for the profile)."""
    from ..trace.ranks import discover

    profile = _profile(arg, ops_file, None, split=True)
    return {0: profile} if profile is not None else side_profiles(discover([arg], rank_from), rules, jobs)


def side_profiles(specs: list[RankSpec], rules: list[OpRule], jobs: int, only: int | None = None) -> dict[int, Profile]:
    from ..parallel import map_ranks

    if only is not None:
        specs = [s for s in specs if s.rank == only]
        if not specs:
            raise UsageError(f"no rank {only} on one side of the diff", "pick a rank present in both with --rank N")
    with progress.stage("reading ranks"):
        profiles = map_ranks(specs, rank_profile, jobs=jobs, progress=progress.counter(), rules=rules)
    return {s.rank: p for s, p in zip(specs, profiles, strict=True)}


def baseline_dir() -> Path:
    from ..config import find_config

    cfg = find_config()
    root = cfg.path.parent if cfg.path is not None else Path.cwd()
    return root / ".nsys-doctor" / "baselines"


def load_baseline(name: str) -> Profile:
    p = baseline_dir() / f"{name}.json"
    if not p.is_file():
        known = sorted(x.stem for x in baseline_dir().glob("*.json"))
        raise UsageError(
            f"no baseline named '{name}' in {baseline_dir()}",
            f"save one with: nsys-doctor baseline save {name} TRACE"
            + (f" (known: {', '.join(known)})" if known else ""),
        )
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read baseline {p}: {exc}", "save it again") from None
    from ..analysis.compare import Profile

    try:
        return Profile.from_dict(json.loads(text))
    except (ValueError, RecursionError) as exc:
        raise UsageError(
            f"baseline {p} is not a valid nsys-doctor profile ({' '.join(str(exc).split())[:160]})",
            f"save it again: nsys-doctor baseline save {name} TRACE",
        ) from None


@click.command()
@click.argument("paths", metavar="[BEFORE] AFTER", nargs=-1, type=click.Path(path_type=Path))
@click.option("--baseline", metavar="NAME", help="Compare AFTER with a saved baseline instead of a BEFORE trace.")
@click.option(
    "--by",
    "level",
    type=click.Choice(LEVELS),
    default="name",
    show_default=True,
    help="Kernel rows by full name, base name (with functor) or operation family.",
)
@click.option(
    "--gate",
    "gate_pct",
    type=FiniteFloat(0.0, what="percent of regression allowed"),
    metavar="PCT",
    help="Exit 1 when GPU time per step regresses by more than PCT% with significance.",
)
@click.option(
    "--alpha",
    type=FiniteFloat(0.0, 0.5, low_open=True, what="a significance level"),
    default=0.01,
    show_default=True,
    help="Significance level.",
)
@click.option(
    "--min-effect",
    type=FiniteFloat(0.0, 1000.0, what="percent"),
    default=3.0,
    show_default=True,
    help="Smallest per-step change (%) reported as significant.",
)
@html_format_option(DIFF_FORMATS, "diff.html")
@click.option("-o", "--output", metavar="FILE")
@ops_option
@click.option(
    "--ranks",
    "rank_mode",
    type=click.Choice(("per-rank", "aggregate")),
    default="per-rank",
    show_default=True,
    help="Rank sets: one diff per rank (paired by rank number), or one diff of the merged ranks (per step: "
    "slowest rank's step time, mean GPU time and kernels per rank).",
)
@click.option("--rank", "only_rank", type=int, metavar="N", help="Rank sets: compare rank N only.")
@rank_from_option("Rank numbers from the recorded environment, the file name, or sorted order.")
@jobs_option
@progress.quiet_option
@cache_option
def diff(
    paths: tuple[Path, ...],
    baseline: str | None,
    level: str,
    gate_pct: float | None,
    alpha: float,
    min_effect: float,
    fmt: str,
    output: str | None,
    ops_file: Path | None,
    rank_mode: str,
    only_rank: int | None,
    rank_from: str,
    jobs: int,
) -> None:
    """Compare BEFORE and AFTER per decode step: kernels, APIs, memory operations, families; noise-aware.

    \b
    Exit codes with --gate: 0 no significant regression, 1 regression beyond the threshold, 2 bad input.
    Per-family thresholds: [tool.nsys-doctor.gate] families = { gemv = 3 } in pyproject.toml.

    \b
    BEFORE and AFTER may be rank sets: a directory of per-rank traces, a comma-separated list of traces, or one
    trace holding several ranks. Ranks are paired by rank number (--ranks per-rank, the gate fails when any rank
    regresses), merged (--ranks aggregate), or picked (--rank N).
    """
    # BEFORE is optional before a required AFTER, which click's positional arguments cannot express
    if len(paths) > 2 or not paths:
        raise UsageError(
            f"diff takes BEFORE and AFTER, {len(paths)} given",
            "nsys-doctor diff BEFORE AFTER (or --baseline NAME AFTER); several rank traces go in a directory or a "
            "comma-separated list",
        )
    before, after = (paths[0], paths[1]) if len(paths) == 2 else (None, paths[0])
    if baseline and before is not None:
        raise UsageError("give either BEFORE or --baseline NAME, not both", "nsys-doctor diff --baseline NAME AFTER")
    if not baseline and before is None:
        raise UsageError("diff needs two traces", "nsys-doctor diff BEFORE AFTER (or --baseline NAME AFTER)")
    check_html_output(fmt, output)
    from ..analysis.compare import comparison_problem, diff_profiles, gate
    from ..config import find_config, gate_settings
    from ..report.compare_text import render_diff

    cfg_threshold, fam_limits = gate_settings(find_config())
    if gate_pct is None:
        gate_pct = cfg_threshold
    if (gate_pct is not None and gate_pct < 0) or any(v < 0 for v in fam_limits.values()):
        raise UsageError(
            f"a negative gate threshold ({gate_pct})", "give the allowed regression in percent, e.g. --gate 5"
        )

    def compare(a: Profile, b: Profile) -> tuple[DiffResult, GateResult | None]:
        problem = comparison_problem(a, b, alpha, gating=gate_pct is not None)
        if problem:
            raise UsageError(f"cannot {'gate' if gate_pct is not None else 'compare'}: {problem[0]}", problem[1])
        with progress.stage("analyses"):
            result = diff_profiles(a, b, level=level, alpha=alpha, min_effect=min_effect / 100.0)
            return result, (gate(result, gate_pct, fam_limits) if gate_pct is not None else None)

    def rendered(result: DiffResult, g: GateResult | None, a: Profile, b: Profile) -> str:
        return render_output(
            fmt, lambda html: html.render_diff(result, g, _diff_steps(a, b)), lambda f: render_diff(result, f, g)
        )

    rules = project_rules(ops_file)
    # with --rank, whether a side that is one trace holds several ranks must be known before any reading
    exact = only_rank is not None
    side_a = None if baseline else rank_side(before, rank_from, exact)  # type: ignore[arg-type]
    side_b = rank_side(after, rank_from, exact)
    if side_a is None and side_b is None and only_rank is not None:
        raise UsageError("--rank applies to rank sets", "give directories, comma lists or multi-rank traces")

    def profiles(side: list[RankSpec] | None, arg: Path | None) -> dict[int, Profile]:
        if arg is None:  # --baseline NAME
            return {0: load_baseline(str(baseline))}
        if side is None:
            return one_side(arg, ops_file, rules, jobs, rank_from)
        return side_profiles(side, rules, jobs, only_rank)

    def comparison() -> tuple[str, bool]:
        """The diff's text and whether the gate failed."""
        from ..analysis.rankset import merge_profiles, pair_ranks

        pa, pb = profiles(side_a, before), profiles(side_b, after)
        if side_a is None and side_b is None and len(pa) == 1 and len(pb) == 1:  # two traces of one rank each
            result, g = compare(pa[0], pb[0])
            return rendered(result, g, pa[0], pb[0]), g is not None and not g.passed
        if only_rank is None and (rank_mode == "aggregate" or baseline or len(pa) == 1 or len(pb) == 1):
            # one side is a single profile (a baseline, or one trace): compare the merged ranks
            ma, mb = merge_profiles(list(pa.values())), merge_profiles(list(pb.values()))
            result, g = compare(ma, mb)
            return rendered(result, g, ma, mb), g is not None and not g.passed
        common, notes = pair_ranks(list(pa), list(pb))
        if not common:
            raise UsageError(
                "the two sides have no rank number in common", "use --ranks aggregate, or --rank-from order"
            )
        pairs = [(r, *compare(pa[r], pb[r])) for r in common]
        failed = [r for r, _, g in pairs if g is not None and not g.passed]
        text = render_output(
            fmt,
            lambda html: html.render_rank_diffs(
                [(r, d, g, _diff_steps(pa[r], pb[r])) for r, d, g in pairs], notes, failed
            ),
            lambda f: _render_rank_diffs(pairs, notes, f, failed),
        )
        return text, bool(failed)

    with progress.task():  # one progress line for both sides; cleared before the output is written
        text, gate_failed = comparison()
    emit(text, output, fmt)
    if gate_failed:
        raise click.exceptions.Exit(1)


def _diff_steps(a: Profile, b: Profile) -> DiffSteps:
    """GPU time per step of both sides, for the HTML plot."""
    from ..analysis.compare import step_busy
    from ..analysis.plots import diff_steps

    return diff_steps(step_busy(a), step_busy(b), b.step_kind)


def _render_rank_diffs(
    pairs: list[tuple[int, DiffResult, GateResult | None]], notes: list[str], fmt: str, failed: list[int]
) -> str:
    from ..report.compare_text import render_diff, render_rank_diffs_json

    if fmt == "json":
        return render_rank_diffs_json(pairs, notes, failed)
    parts = []
    for r, d, g in pairs:
        body = render_diff(d, fmt, g)
        parts.append(f"\n### Rank {r}\n\n{body}" if fmt == "markdown" else f"\n==> rank {r} <==\n{body}")
    parts += [f"note: {n}\n" for n in notes]
    if any(g is not None for _, _, g in pairs):
        parts.append(f"gate: FAIL on rank {', '.join(map(str, failed))}\n" if failed else "gate: PASS on every rank\n")
    return "".join(parts)


@click.command(name="scaling")
@click.argument("traces", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--ctx", metavar="N,N,...", help="Prompt lengths of the traces, in order (else read from each trace).")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="terminal", show_default=True)
@click.option("-o", "--output", metavar="FILE")
@ops_option
@progress.quiet_option
@cache_option
def scaling_cmd(traces: tuple[Path, ...], ctx: str | None, fmt: str, output: str | None, ops_file: Path | None) -> None:
    """Decode time per step per family and kernel against context length (two or more traces).

    Only attention should grow with the context; anything else that grows beyond noise is flagged "investigate".
    Prefill steps are left out.
    """
    if len(traces) < 2:
        raise UsageError("scaling needs at least two traces", "nsys-doctor scaling SHORT.sqlite LONG.sqlite")
    contexts: list[int | None] = [None] * len(traces)
    if ctx:
        try:
            contexts = [int(x) for x in ctx.split(",")]
            if any(c < 0 or c > 100_000_000 for c in contexts):  # type: ignore[operator]
                raise ValueError(ctx)
        except ValueError as exc:
            raise UsageError(
                f"bad --ctx '{ctx}'", "give one non-negative integer prompt length per trace, e.g. 1,2048"
            ) from exc
        if len(contexts) != len(traces):
            raise UsageError(f"--ctx has {len(contexts)} values for {len(traces)} traces", "give one per trace")
    profiles = [profile_of(t, ops_file, c) for t, c in zip(traces, contexts, strict=True)]
    missing = [p.source for p in profiles if p.context_tokens is None]
    if missing:
        raise UsageError(
            f"no context length known for {', '.join(missing)}", "give the prompt lengths with --ctx, e.g. --ctx 1,2048"
        )
    if len({p.context_tokens for p in profiles}) < 2:
        raise UsageError(
            "all traces have the same context length: nothing to scale against",
            "give traces captured with different prompt lengths (or their lengths with --ctx)",
        )
    from ..analysis.compare import scaling
    from ..report.compare_text import render_scaling

    emit(render_scaling(scaling(profiles), fmt), output, fmt)


@click.group()
def baseline() -> None:
    """Named baselines: small per-step summaries of a trace, to diff against later (not traces)."""


@baseline.command("save")
@click.argument("name")
@click.argument("trace", type=click.Path(path_type=Path))
@ops_option
@progress.quiet_option
@cache_option
def baseline_save(name: str, trace: Path, ops_file: Path | None) -> None:
    """Save TRACE's per-step summary as baseline NAME (in .nsys-doctor/baselines/)."""
    if not _NAME.match(name):
        raise UsageError(f"bad baseline name '{name}'", "use letters, digits, '.', '_' and '-'")
    from ..analysis.compare import step_busy

    prof = profile_of(trace, ops_file)
    if prof.steps == 0 or sum(step_busy(prof)) == 0:
        what = "no steps" if prof.steps == 0 else "no kernels, copies or memsets in its steps"
        raise UsageError(
            f"{trace} has {what} in its analysis window: nothing to compare against later",
            "save a baseline from a trace of the steady state (check it with: nsys-doctor report TRACE)",
        )
    d = baseline_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.json"
    from ..safe_io import write_atomic

    write_atomic(path, json.dumps(prof.to_dict(), separators=(",", ":")), inputs=command_inputs(), refuse_symlink=True)
    click.echo(f"saved baseline {name}: {path} ({path.stat().st_size / 1e3:.0f} kB, {prof.steps} steps)")


@baseline.command("list")
def baseline_list() -> None:
    """List saved baselines."""
    for p in sorted(baseline_dir().glob("*.json")):
        click.echo(f"{p.stem}\t{p}")


COMMANDS = [diff, scaling_cmd, baseline]
