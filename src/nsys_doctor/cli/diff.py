"""``nsys-doctor diff``, ``scaling`` and ``baseline``: compare traces per step, with significance and a CI gate."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from ..analysis.compare import LEVELS, Profile, build_profile, diff_profiles, gate, scaling
from ..analysis.ops import classify
from ..analysis.phases import choose_window, find_steps
from ..config import find_config
from ..errors import UsageError
from ..report.compare_text import render_diff, render_scaling
from ..trace import Trace
from ..trace.meta import describe, workload_shape
from ..trace.tables import TraceFrames
from .report import project_rules

FORMATS = ("terminal", "markdown", "json")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def profile_of(path: Path, ops_file: Path | None = None, context: int | None = None) -> Profile:
    rules = project_rules(ops_file)
    with Trace.open(path) as trace:
        info = describe(trace)
        frames = TraceFrames(trace)
        window = choose_window(
            frames.kernels, frames.api, frames.memcpy, frames.nvtx, info.capture.get("capture_range")
        )  # type: ignore[arg-type]
        steps = find_steps(frames.kernels, frames.api, frames.nvtx, window)
        ops = classify(frames.kernels["name"].unique().to_list(), rules)
        prompt, output = workload_shape(info.capture.get("command"))  # type: ignore[arg-type]
        return build_profile(
            str(path),
            frames.kernels,
            frames.api,
            frames.memcpy,
            frames.memset,
            window,
            steps,
            ops,
            context if context is not None else prompt,
            output,
        )


def baseline_dir() -> Path:
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
        return Profile.from_dict(json.loads(p.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"baseline {p} is not a valid nsys-doctor profile ({exc})", "save it again") from exc


def _emit(text: str, output: str | None) -> None:
    if output and output != "-":
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(text)


@click.command()
@click.argument("before", required=False, type=click.Path(path_type=Path))
@click.argument("after", type=click.Path(path_type=Path))
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
    type=float,
    metavar="PCT",
    help="Exit 1 when GPU time per step regresses by more than PCT% with significance.",
)
@click.option("--alpha", type=float, default=0.01, show_default=True, help="Significance level.")
@click.option(
    "--min-effect",
    type=float,
    default=3.0,
    show_default=True,
    help="Smallest per-step change (%) reported as significant.",
)
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="terminal", show_default=True)
@click.option("-o", "--output", metavar="FILE")
@click.option("--ops", "ops_file", type=click.Path(path_type=Path), help="Extra kernel-to-operation rules.")
def diff(
    before: Path | None,
    after: Path,
    baseline: str | None,
    level: str,
    gate_pct: float | None,
    alpha: float,
    min_effect: float,
    fmt: str,
    output: str | None,
    ops_file: Path | None,
) -> None:
    """Compare BEFORE and AFTER per decode step: kernels, APIs, memory operations, families; noise-aware.

    \b
    Exit codes with --gate: 0 no significant regression, 1 regression beyond the threshold, 2 bad input.
    Per-family thresholds: [tool.nsys-doctor.gate] families = { gemv = 3 } in pyproject.toml.
    """
    if baseline and before is not None:
        raise UsageError("give either BEFORE or --baseline NAME, not both", "nsys-doctor diff --baseline NAME AFTER")
    if not baseline and before is None:
        raise UsageError("diff needs two traces", "nsys-doctor diff BEFORE AFTER (or --baseline NAME AFTER)")
    a = load_baseline(baseline) if baseline else profile_of(before, ops_file)  # type: ignore[arg-type]
    b = profile_of(after, ops_file)
    result = diff_profiles(a, b, level=level, alpha=alpha, min_effect=min_effect / 100.0)
    g = None
    cfg_gate = find_config().data.get("gate")
    fam_limits: dict[str, float] = {}
    if isinstance(cfg_gate, dict):
        fam_limits = {str(k): float(v) for k, v in (cfg_gate.get("families") or {}).items()}
        if gate_pct is None and "threshold" in cfg_gate:
            gate_pct = float(cfg_gate["threshold"])
    if gate_pct is not None:
        g = gate(result, gate_pct, fam_limits)
    _emit(render_diff(result, fmt, g), output)
    if g is not None and not g.passed:
        raise click.exceptions.Exit(1)


@click.command(name="scaling")
@click.argument("traces", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--ctx", metavar="N,N,...", help="Prompt lengths of the traces, in order (else read from each trace).")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="terminal", show_default=True)
@click.option("-o", "--output", metavar="FILE")
@click.option("--ops", "ops_file", type=click.Path(path_type=Path), help="Extra kernel-to-operation rules.")
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
        except ValueError as exc:
            raise UsageError(f"bad --ctx '{ctx}'", "give one integer prompt length per trace, e.g. 1,2048") from exc
        if len(contexts) != len(traces):
            raise UsageError(f"--ctx has {len(contexts)} values for {len(traces)} traces", "give one per trace")
    profiles = [profile_of(t, ops_file, c) for t, c in zip(traces, contexts, strict=True)]
    missing = [p.source for p in profiles if p.context_tokens is None]
    if missing:
        raise UsageError(
            f"no context length known for {', '.join(missing)}", "give the prompt lengths with --ctx, e.g. --ctx 1,2048"
        )
    _emit(render_scaling(scaling(profiles), fmt), output)


@click.group()
def baseline() -> None:
    """Named baselines: small per-step summaries of a trace, to diff against later (not traces)."""


@baseline.command("save")
@click.argument("name")
@click.argument("trace", type=click.Path(path_type=Path))
@click.option("--ops", "ops_file", type=click.Path(path_type=Path), help="Extra kernel-to-operation rules.")
def baseline_save(name: str, trace: Path, ops_file: Path | None) -> None:
    """Save TRACE's per-step summary as baseline NAME (in .nsys-doctor/baselines/)."""
    if not _NAME.match(name):
        raise UsageError(f"bad baseline name '{name}'", "use letters, digits, '.', '_' and '-'")
    prof = profile_of(trace, ops_file)
    d = baseline_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.json"
    path.write_text(json.dumps(prof.to_dict(), separators=(",", ":")), encoding="utf-8")
    click.echo(f"saved baseline {name}: {path} ({path.stat().st_size / 1e3:.0f} kB, {prof.steps} steps)")


@baseline.command("list")
def baseline_list() -> None:
    """List saved baselines."""
    for p in sorted(baseline_dir().glob("*.json")):
        click.echo(f"{p.stem}\t{p}")


COMMANDS = [diff, scaling_cmd, baseline]
