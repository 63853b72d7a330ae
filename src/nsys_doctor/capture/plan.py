"""From what the user asked (CLI options, preset, project config) to one checked capture plan.

``plan(args, ...)`` resolves the workload command (template and preset, or the command given), the capture range,
the output name (patterns, overwrite guard), the command file (written or read), applies the guards, and returns
the ``nsys profile`` argv and a ``CaptureRequest`` for ``run.capture``. It reads the file system (existing traces,
the command file, CMake caches) but runs nothing.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..errors import UsageError
from . import command as C
from . import guards, workload
from .run import CaptureRequest, existing_outputs

# CLI option name -> CaptureOptions field it sets (for "explicit options override a command file")
OPTION_FIELDS = {
    "range": "range",
    "range_end": "range",
    "repeat": "repeat",
    "start_later": "start_later",
    "trace": "trace",
    "lighter": "lighter",
    "memory_usage": "memory_usage",
    "backtrace": "backtrace",
    "gpu_metrics": "gpu_metrics",
    "gpu_metrics_frequency": "gpu_metrics",
    "plugin": "plugins",
    "stats": "stats",
}


@dataclass(frozen=True)
class CaptureArgs(C.Switches):
    """The capture command's arguments as given (the switches nsys takes as they are come from ``Switches``)."""

    command: list[str] = field(default_factory=list)
    name: str | None = None
    output_dir: str = C.OUTPUT_DIR
    preset: str | None = None
    prompt_len: int | None = None
    output_len: int | None = None
    warmup: int | None = None
    iters: int | None = None
    no_graph: bool = False
    range: str | None = None
    trace: tuple[str, ...] = ()
    backtrace: str | None = None  # as typed; CaptureOptions holds it checked
    nsys_args: tuple[str, ...] = ()
    command_file: str | None = None
    allow_debug: bool = False
    overwrite: bool = False
    baseline: bool = False
    timing_regex: str | None = None
    timing_metric: str | None = None
    explicit: set[str] = field(default_factory=set)  # option names given on the command line


@dataclass
class Plan:
    argv: list[str]
    baseline_argv: list[str] | None
    options: C.CaptureOptions
    request: CaptureRequest
    warnings: list[str]
    command_file_write: tuple[Path, str] | None = None  # (path, text) to write before running
    command_file_read: Path | None = None


def split_nsys_args(values: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        try:
            out += shlex.split(v)
        except ValueError as exc:
            raise UsageError(f"--nsys-args {v!r}: {exc}", "quote the flags as one string") from exc
    return tuple(out)


def resolve_command(args: CaptureArgs, cfg: Config, range_kind: str | None) -> tuple[workload.Workload, str | None]:
    """The workload argv (from the template when no command is given) and the template's timing regex."""
    template = workload.template_from_config(cfg)
    if args.command:
        if (
            args.preset
            or args.no_graph
            or any(v is not None for v in (args.prompt_len, args.output_len, args.warmup, args.iters))
        ):
            raise UsageError(
                "--preset, --no-graph and the shape options fill the workload template; they do not apply to a "
                "command given after --",
                "drop the command to use the template, or drop those options",
            )
        return workload.Workload(list(args.command), {}, None, []), template.timing_regex if template else None
    if template is None:
        where = f" ({cfg.path})" if cfg.path else ""
        raise UsageError(
            f"no command to profile and no workload template in the project config{where}",
            f"give the command after -- , or add {workload.EXAMPLE}",
        )
    range_kind = range_kind or ("cuda-profiler" if template.profiler_capture_flag else "full")
    w = workload.render(
        template,
        args.preset,
        {"prompt_len": args.prompt_len, "output_len": args.output_len, "warmup": args.warmup, "iters": args.iters},
        profiler_capture=range_kind == "cuda-profiler",
        no_graph=args.no_graph,
    )
    return w, template.timing_regex


def plan(
    args: CaptureArgs,
    cfg: Config,
    nsys: str,
    env: dict[str, str],
    hostname: str,
    cmake_cache: Callable[[str], str | None] = guards.read_cmake_cache,
) -> Plan:
    warnings: list[str] = []
    # the command file first: when it exists, its capture range counts unless --range is given
    file_tokens: list[str] | None = None
    cf_path = Path(args.command_file) if args.command_file else None
    if cf_path is not None and cf_path.exists():
        try:
            text = cf_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {cf_path}: {exc.strerror}", "check the path") from exc
        file_tokens = C.read_command_file(text, str(cf_path))
        vals = C.flag_values(file_tokens)
        if vals.get("--cuda-graph-trace", "").startswith("graph") and args.graph_trace != "graph":
            warnings.append(f"{cf_path} sets --cuda-graph-trace=graph; the command line's node overrides it")
    rng = C.parse_range(args.range) if args.range else None
    if rng is None and file_tokens is not None:
        rng = C.range_of_flags(file_tokens)
    w, template_regex = resolve_command(args, cfg, rng.kind if rng else None)
    if rng is None:
        rng = C.Range("cuda-profiler") if (not args.command and "cuda-profiler" in _template_range(cfg)) else C.Range()
    warnings += w.warnings

    g = guards.build_guard(w.argv, cmake_cache)
    if g.refuse and not args.allow_debug:
        raise UsageError(
            f"refusing to profile a debug build: {g.refuse}", "build with --release, or pass --allow-debug"
        )
    if g.refuse:
        warnings.append(f"profiling a debug build (--allow-debug): {g.refuse}")
    warnings += g.warnings
    gw = guards.graph_trace_warning(args.graph_trace)
    if gw:
        warnings.append(gw)

    name = args.name or args.preset or "capture"
    if Path(name).is_absolute() or name.endswith((".sqlite", ".nsys-rep")):
        raise UsageError(f"--name {name!r}: give a base name, without directory or extension", "use --output-dir")
    pattern = str(Path(args.output_dir) / name)
    out = C.expand_output_name(pattern, hostname=hostname, env=env, taken=lambda gl: bool(existing_outputs(gl)))
    if out.path is not None and not args.overwrite:
        there = existing_outputs(out.glob)
        if there:
            raise UsageError(
                f"{there[0]} exists",
                f"pass --overwrite to replace it, or pick another --name (e.g. {name}_%n for the next free number)",
            )

    trace = C.parse_trace(args.trace) if args.trace else C.DEFAULT_TRACE
    if args.lighter and args.trace and trace != C.DEFAULT_TRACE:
        raise UsageError("--lighter traces cuda,nvtx only; it excludes --trace", "drop one of them")
    extra = split_nsys_args(args.nsys_args)
    opts = C.CaptureOptions(
        output=out.nsys_value,
        range=rng,
        trace=trace,
        backtrace=C.parse_backtrace(args.backtrace) if args.backtrace else None,
        command_file=str(cf_path) if cf_path else None,
        extra=extra,
        **args.switches(),
    )
    write = None
    only: set[str] | None = None
    if cf_path is not None and file_tokens is None:
        write = (cf_path, C.write_command_file(C.command_file_flags(opts)))
        only = set()
    elif file_tokens is not None:
        only = {OPTION_FIELDS[k] for k in args.explicit if k in OPTION_FIELDS}
    argv = C.profile_argv(nsys, opts, w.argv, only)
    if rng.kind == "full" and not args.command and w.values and not args.start_later:
        warnings.append(
            "capturing the whole run: model loading and warm-up are in the trace (the report skips them, but the "
            "trace is bigger); a profiler_capture_flag in the workload template allows --range cuda-profiler"
        )
    regex = args.timing_regex or template_regex
    if regex:
        workload.compile_timing_regex(regex)
    metric = workload.metric_name(regex, args.timing_metric or _template_metric(cfg))
    req = CaptureRequest(
        nsys_argv=argv,
        command=w.argv,
        output_glob=out.glob,
        range=rng,
        graph_asked=args.graph_trace == "graph",
        baseline=args.baseline,
        timing_regex=regex,
        timing_metric=metric,
        name=name,
        meta={
            "preset": w.preset,
            "workload": w.values or None,
            "command_file": str(cf_path) if cf_path else None,
            "warnings": warnings,
        },
    )
    return Plan(argv, w.argv if args.baseline else None, opts, req, warnings, write, cf_path if file_tokens else None)


def _template_range(cfg: Config) -> str:
    t = workload.template_from_config(cfg)
    return "cuda-profiler" if t and t.profiler_capture_flag else "full"


def _template_metric(cfg: Config) -> str | None:
    t = workload.template_from_config(cfg)
    return t.timing_metric if t else None
