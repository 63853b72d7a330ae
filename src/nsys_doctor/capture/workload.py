"""Workload presets and the project's workload template.

The template lives in the project config (``[tool.nsys-doctor.workload]`` in pyproject.toml, or ``[workload]``
in nsys-doctor.toml)::

    [tool.nsys-doctor.workload]
    command = '''cargo run -r --bin bench_serving -- {profiler_capture} request
        --prompt-len {prompt_len} --output-len {output_len} --warmup {warmup} --iters {iters}'''
    profiler_capture_flag = "--cuda-profiler-capture"   # added when the range is cuda-profiler
    no_graph_flag = "--cuda-graph false"                # added with --no-graph (kernel-level comparisons)
    timing_regex = "per_token=([0-9.]+)ms"              # the number --baseline-run compares
    timing_metric = "per_token_ms"
    warmup = 1
    iters = 1

    [tool.nsys-doctor.workload.presets.long-decode]   # more presets, or new values for the shipped ones
    prompt_len = 2048
    output_len = 128

``{profiler_capture}`` and ``{no_graph}`` mark where those flags go (empty when not used); without them the flags
are appended at the end. Other placeholders: ``{prompt_len}``, ``{output_len}``, ``{warmup}``, ``{iters}`` and any
key a preset defines. Keys may be spelt with ``-`` or ``_``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from string import Formatter

from ..config import Config
from ..errors import UsageError

PresetValue = int | float | str  # a preset's value: counts are ints, other values numbers or strings
PRESETS: dict[str, dict[str, PresetValue]] = {
    "prefill": {"prompt_len": 2048, "output_len": 1},
    "decode": {"prompt_len": 1, "output_len": 128},
}
SPECIAL = ("profiler_capture", "no_graph")

EXAMPLE = (
    '[tool.nsys-doctor.workload] command = "cargo run -r --bin bench_serving -- request --prompt-len {prompt_len} '
    '--output-len {output_len} --warmup {warmup} --iters {iters}" (in pyproject.toml, or [workload] in '
    "nsys-doctor.toml)"
)


@dataclass(frozen=True)
class WorkloadTemplate:
    command: str
    profiler_capture_flag: str | None = None
    no_graph_flag: str | None = None
    timing_regex: str | None = None
    timing_metric: str | None = None
    defaults: dict[str, int] = field(default_factory=lambda: {"warmup": 1, "iters": 1})
    presets: dict[str, dict[str, PresetValue]] = field(default_factory=dict)
    source: str = "config"


def _norm(d: dict[str, object]) -> dict[str, object]:
    return {str(k).replace("-", "_"): v for k, v in d.items()}


def template_from_config(cfg: Config) -> WorkloadTemplate | None:
    raw = cfg.data.get("workload")
    if raw is None:
        return None
    where = str(cfg.path)
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: workload must be a table", EXAMPLE)
    d = _norm(raw)
    command = d.get("command")
    if not isinstance(command, str) or not command.strip():
        raise UsageError(f"{where}: the workload table has no command", EXAMPLE)
    strings = {}
    for key in ("profiler_capture_flag", "no_graph_flag", "timing_regex", "timing_metric"):
        v = d.get(key)
        if v is not None and not isinstance(v, str):
            raise UsageError(f"{where}: workload.{key} must be a string", f'e.g. {key} = "..."')
        strings[key] = v or None
    defaults = {"warmup": 1, "iters": 1}
    for key in COUNTS:
        if key in d:
            defaults[key] = _count(where, f"workload.{key}", key, d[key])
    presets: dict[str, dict[str, PresetValue]] = {}
    raw_presets = d.get("presets", {})
    if not isinstance(raw_presets, dict):
        raise UsageError(f"{where}: workload.presets must be a table of tables", "[workload.presets.NAME] ...")
    for name, values in raw_presets.items():
        if not isinstance(values, dict):
            raise UsageError(f"{where}: workload.presets.{name} must be a table", "e.g. prompt_len = 2048")
        checked: dict[str, PresetValue] = {}
        for k, v in _norm(values).items():
            at = f"workload.presets.{name}.{k}"
            if k in COUNTS:
                checked[str(k)] = _count(where, at, str(k), v)
            elif isinstance(v, bool) or not isinstance(v, int | float | str):
                raise UsageError(f"{where}: {at} must be a number or a string, not {v!r}", f"e.g. {k} = 1")
            else:
                checked[str(k)] = v
        presets[str(name)] = checked
    if strings["timing_regex"]:
        compile_timing_regex(strings["timing_regex"])
    return WorkloadTemplate(
        command=command,
        profiler_capture_flag=strings["profiler_capture_flag"],
        no_graph_flag=strings["no_graph_flag"],
        timing_regex=strings["timing_regex"],
        timing_metric=strings["timing_metric"],
        defaults=defaults,
        presets=presets,
        source=where,
    )


COUNTS = {"warmup": 0, "iters": 1, "prompt_len": 1, "output_len": 1}  # the workload's counts and their minimum


def _count(where: str, at: str, key: str, value: object) -> int:
    """A workload count: an integer (not a bool) from its minimum up, or a one-line error naming the key."""
    low = COUNTS[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 10_000_000:
        raise UsageError(f"{where}: {at} must be an integer from {low}, not {value!r}", f"e.g. {key} = {max(low, 1)}")
    return value


def preset_names(t: WorkloadTemplate | None) -> list[str]:
    return sorted(set(PRESETS) | set(t.presets if t else {}))


def preset_values(name: str, t: WorkloadTemplate | None = None) -> dict[str, object]:
    if name not in PRESETS and not (t and name in t.presets):
        raise UsageError(f"unknown preset {name!r}", f"presets: {', '.join(preset_names(t))}")
    return {**PRESETS.get(name, {}), **((t.presets.get(name, {})) if t else {})}


@dataclass(frozen=True)
class Workload:
    argv: list[str]
    values: dict[str, object]
    preset: str | None
    warnings: list[str]


def render(
    t: WorkloadTemplate,
    preset: str | None,
    overrides: dict[str, int | None] | None = None,
    profiler_capture: bool = False,
    no_graph: bool = False,
) -> Workload:
    """The workload command: template values from defaults, then the preset, then explicit overrides."""
    values: dict[str, object] = dict(t.defaults)
    if preset:
        values.update(preset_values(preset, t))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    warnings: list[str] = []
    fields = {f for _, f, _, _ in Formatter().parse(t.command) if f}
    missing = sorted(fields - set(values) - set(SPECIAL))
    if missing:
        raise UsageError(
            f"the workload template needs {', '.join('{' + m + '}' for m in missing)}",
            f"choose a --preset ({', '.join(preset_names(t))}) or give the value (e.g. --prompt-len)",
        )
    if profiler_capture and not t.profiler_capture_flag:
        warnings.append(
            "the workload template has no profiler_capture_flag: the application itself must call "
            "cudaProfilerStart/Stop, or the capture will be empty"
        )
    if no_graph and not t.no_graph_flag:
        raise UsageError(
            "--no-graph needs no_graph_flag in the workload template", 'e.g. no_graph_flag = "--cuda-graph false"'
        )
    pc = t.profiler_capture_flag if profiler_capture and t.profiler_capture_flag else ""
    ng = t.no_graph_flag if no_graph else ""
    try:
        text = t.command.format(**values, profiler_capture=pc, no_graph=ng or "")
    except (IndexError, KeyError, ValueError) as exc:
        raise UsageError(
            f"cannot fill the workload template: {exc}", "placeholders are {name}; write {{ for a brace"
        ) from exc
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"the workload command does not parse: {exc}", "check the quotes in the template") from exc
    if pc and "profiler_capture" not in fields:
        argv += shlex.split(pc)
    if ng and "no_graph" not in fields:
        argv += shlex.split(ng)
    if not argv:
        raise UsageError("the workload command is empty", EXAMPLE)
    return Workload(argv, values, preset, warnings)


def compile_timing_regex(pattern: str) -> re.Pattern[str]:
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"bad timing regex {pattern!r}: {exc}", "e.g. per_token=([0-9.]+)ms") from exc
    if rx.groups < 1:
        raise UsageError(
            f"timing regex {pattern!r} has no group", "put the number in parentheses: per_token=([0-9.]+)ms"
        )
    return rx


def timing_from_output(text: str, pattern: str) -> float | None:
    """The number the regex's first group matches, last occurrence (benchmarks print a final summary last)."""
    rx = compile_timing_regex(pattern)
    value = None
    for m in rx.finditer(text):
        try:
            value = float(m.group(1))
        except (TypeError, ValueError):
            continue
    return value


def metric_name(pattern: str | None, configured: str | None) -> str:
    """The metric's name: configured, else the word before the regex's number (``per_token=(...)ms`` ->
    ``per_token_ms``), else ``timing``."""
    if configured:
        return configured
    if not pattern:
        return "wall_s"
    m = re.match(r"^\W*([A-Za-z_][\w]*)\W*\(.*?\)\s*([A-Za-z]+)?", pattern)
    if m:
        return f"{m.group(1)}_{m.group(2)}" if m.group(2) else m.group(1)
    return "timing"


def metric_unit(metric: str) -> str | None:
    for suffix, unit in (("_ms", "ms"), ("_us", "us"), ("_ns", "ns"), ("_s", "s")):
        if metric.endswith(suffix):
            return unit
    return None
