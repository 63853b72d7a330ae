"""nsys command lines for a capture: options -> nsys argv, output-name patterns, nsys command files.

Pure functions: nothing here runs a process or touches the file system (``expand_output_name`` asks a callback
whether a name is taken). Every capture gets the four flags that make a trace usable:

    --force-overwrite=true --cuda-graph-trace=node --export=sqlite -o target/profiling/<name>

Each option maps to nsys 2025.3 flags (see ../shared/reference/nsys-sqlite.md section 5):

    --range full                  (nothing: the whole run)
    --range cuda-profiler         --capture-range=cudaProfilerApi --capture-range-end=stop
    --range nvtx:NAME[@DOMAIN]    --capture-range=nvtx --nvtx-capture=NAME --capture-range-end=stop
                                  --env-var=NSYS_NVTX_PROFILER_REGISTER_ONLY=0 (ranges named by plain strings count)
    --range delay:S[,duration:D]  --delay=S [--duration=D]
    --repeat N                    --capture-range-end=repeat:N (one file per range: NAME.1, NAME.2, ...)
    --start-later                 --start-later=true (collection waits for `nsys start`)
    --trace LIST / --lighter      --trace=LIST / --trace=cuda,nvtx --sample=none --cpuctxsw=none
    --memory-usage                --cuda-memory-usage=true
    --backtrace KIND:NS           --cudabacktrace=KIND:NS
    --gpu-metrics                 --gpu-metrics-devices=all [--gpu-metrics-frequency=HZ]
    --plugin NAME                 --enable=NAME (once per plugin)
    --stats                       --stats=true
    --graph-trace graph           --cuda-graph-trace=graph (only when asked; kernels inside graphs disappear)
"""

from __future__ import annotations

import glob
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import UsageError

OUTPUT_DIR = "target/profiling"
DEFAULT_TRACE = ("cuda", "nvtx")
# nsys 2025.3 `--trace` values (`nsys profile --help`)
TRACE_VALUES = (
    "cuda",
    "cuda-hw",
    "nvtx",
    "cublas",
    "cublas-verbose",
    "cusolver",
    "cusolver-verbose",
    "cusparse",
    "cusparse-verbose",
    "mpi",
    "oshmem",
    "ucx",
    "osrt",
    "cudnn",
    "opengl",
    "opengl-annotations",
    "openacc",
    "openmp",
    "nvvideo",
    "vulkan",
    "vulkan-annotations",
    "python-gil",
    "gds",
    "none",
)
BACKTRACE_KINDS = ("all", "none", "kernel", "memory", "sync", "other")
RANGE_KINDS = ("full", "cuda-profiler", "nvtx", "delay")
RANGE_ENDS = ("stop", "stop-shutdown")
# flags nsys-doctor sets itself; --nsys-args may not set them again
OWN_FLAGS = ("-o", "--output", "--export", "--force-overwrite", "-f", "--cuda-graph-trace", "--command-file")


@dataclass(frozen=True)
class Range:
    """What part of the run is collected."""

    kind: str = "full"  # one of RANGE_KINDS
    nvtx: str | None = None  # range@domain for kind "nvtx"
    delay_s: int | None = None
    duration_s: int | None = None

    def describe(self) -> str:
        if self.kind == "nvtx":
            return f"nvtx:{self.nvtx}"
        if self.kind == "delay":
            parts = [f"delay:{self.delay_s or 0}"]
            if self.duration_s is not None:
                parts.append(f"duration:{self.duration_s}")
            return ",".join(parts)
        return self.kind


def _seconds(text: str, what: str, spec: str) -> int:
    value = text.strip().removesuffix("s")
    if not value.isdigit():
        raise UsageError(
            f"--range {spec}: {what} must be whole seconds, got {text!r}", "e.g. --range delay:10,duration:30"
        )
    return int(value)


def parse_range(spec: str) -> Range:
    """``full | cuda-profiler | nvtx:NAME[@DOMAIN] | delay:S[,duration:D] | duration:D``."""
    s = spec.strip()
    low = s.lower()
    hint = "use full, cuda-profiler, nvtx:NAME, or delay:SECONDS[,duration:SECONDS]"
    if low in ("full", "none", "all"):
        return Range("full")
    if low in ("cuda-profiler", "cudaprofilerapi", "cuda-profiler-api"):
        return Range("cuda-profiler")
    if low.startswith("nvtx:"):
        name = s[5:].strip()
        if not name:
            raise UsageError("--range nvtx: needs a range name", "e.g. --range nvtx:decode_step or nvtx:iter@mydomain")
        return Range("nvtx", nvtx=name)
    if low.startswith(("delay:", "duration:")):
        delay = duration = None
        for part in s.split(","):
            key, sep, value = part.partition(":")
            key = key.strip().lower()
            if not sep or key not in ("delay", "duration"):
                raise UsageError(f"--range {spec}: cannot read {part!r}", hint)
            if key == "delay":
                delay = _seconds(value, "the delay", spec)
            else:
                duration = _seconds(value, "the duration", spec)
                if duration == 0:
                    raise UsageError(f"--range {spec}: the duration must be positive", hint)
        return Range("delay", delay_s=delay, duration_s=duration)
    raise UsageError(f"unknown capture range {spec!r}", hint)


def parse_trace(values: Iterable[str]) -> tuple[str, ...]:
    """``--trace`` values (comma lists, repeatable), checked against nsys's list, order kept, duplicates dropped."""
    out: list[str] = []
    for v in values:
        for name in v.split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in TRACE_VALUES:
                raise UsageError(f"unknown --trace value {name!r}", f"nsys knows: {', '.join(TRACE_VALUES)}")
            if name not in out:
                out.append(name)
    if not out:
        raise UsageError("--trace is empty", "e.g. --trace cuda,nvtx,osrt")
    if "none" in out and len(out) > 1:
        raise UsageError("--trace none excludes the other values", "give none alone, or drop it")
    return tuple(out)


def parse_backtrace(spec: str) -> str:
    """``KIND[:NS][,KIND[:NS]...]`` for ``--cudabacktrace`` (kinds: all, none, kernel, memory, sync, other)."""
    parts = []
    for part in spec.split(","):
        kind, sep, threshold = part.strip().partition(":")
        kind = kind.strip().lower()
        if kind not in BACKTRACE_KINDS:
            raise UsageError(
                f"unknown --backtrace kind {kind!r}", f"use {', '.join(BACKTRACE_KINDS)}, optionally :THRESHOLD_NS"
            )
        if sep:
            if kind == "none" or not threshold.strip().isdigit():
                raise UsageError(
                    f"--backtrace {spec}: the threshold after ':' must be nanoseconds", "e.g. --backtrace kernel:500"
                )
            parts.append(f"{kind}:{int(threshold)}")
        else:
            parts.append(kind)
    return ",".join(parts)


@dataclass(frozen=True)
class Switches:
    """The nsys switches a capture takes as given: the same in the command line's arguments (``plan.CaptureArgs``)
    and in the checked options (``CaptureOptions``)."""

    range_end: str = "stop"  # stop: the application runs on (and prints its timing); stop-shutdown: nsys ends it
    repeat: int | None = None
    start_later: bool = False
    lighter: bool = False
    memory_usage: bool = False
    gpu_metrics: bool = False
    gpu_metrics_frequency: int | None = None
    plugins: tuple[str, ...] = ()
    stats: bool = False
    graph_trace: str = "node"

    def switches(self) -> dict[str, Any]:
        """The switches alone, by name (to build the other kind of object from this one)."""
        return {f.name: getattr(self, f.name) for f in fields(Switches)}


@dataclass(frozen=True)
class CaptureOptions(Switches):
    """Everything that decides the nsys command line of one ``nsys profile`` capture."""

    output: str = f"{OUTPUT_DIR}/capture"  # the -o value, patterns already expanded (see expand_output_name)
    range: Range = field(default_factory=Range)
    trace: tuple[str, ...] = DEFAULT_TRACE
    backtrace: str | None = None  # checked and normalized (parse_backtrace)
    command_file: str | None = None
    extra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_options(self)


def check_options(o: CaptureOptions) -> None:
    """Combinations nsys would reject or silently ignore."""
    if o.graph_trace not in ("node", "graph"):
        raise UsageError(f"--graph-trace {o.graph_trace!r}", "use node (the default) or graph")
    if o.range_end not in RANGE_ENDS:
        raise UsageError(f"--range-end {o.range_end!r}", f"use {' or '.join(RANGE_ENDS)}")
    if o.repeat is not None:
        if o.repeat < 1:
            raise UsageError("--repeat must be 1 or more", "e.g. --repeat 3 captures three ranges, one file each")
        if o.range.kind not in ("cuda-profiler", "nvtx"):
            raise UsageError(
                "--repeat needs a cuda-profiler or nvtx capture range",
                "add --range cuda-profiler (the application calls cudaProfilerStart/Stop once per range)",
            )
    if o.start_later and o.range.kind == "delay":
        raise UsageError("--start-later and --range delay:... exclude each other", "nsys ignores the delay then")
    if o.lighter and o.backtrace:
        raise UsageError("--backtrace needs CPU sampling, which --lighter turns off", "drop one of them")
    if o.gpu_metrics_frequency is not None and not 10 <= o.gpu_metrics_frequency <= 200_000:
        raise UsageError("--gpu-metrics-frequency must be 10 to 200000 Hz", "nsys's default is 10000")
    check_extra(o.extra)


def check_extra(tokens: Sequence[str]) -> None:
    """Raw flags after --nsys-args must not redo what nsys-doctor sets (output, export, graph trace)."""
    for t in tokens:
        name = t.split("=", 1)[0]
        if name in OWN_FLAGS:
            raise UsageError(
                f"--nsys-args {t}: nsys-doctor sets {name} itself",
                "use --name/--output-dir for the output, --graph-trace for the graph mode, --command-file for files",
            )


def option_flags(o: CaptureOptions, only: set[str] | None = None) -> list[str]:
    """nsys flags for the options (not the four fixed ones). ``only``: emit just these option names (used when
    an existing command file supplies the rest: explicit command-line options then override it, as in nsys)."""

    def want(name: str) -> bool:
        return only is None or name in only

    out: list[str] = []
    if want("trace") or want("lighter"):
        out.append(f"--trace={','.join(DEFAULT_TRACE if o.lighter else o.trace)}")
    if o.lighter and want("lighter"):
        out += ["--sample=none", "--cpuctxsw=none"]
    r = o.range
    if want("range") or want("repeat"):
        end = f"repeat:{o.repeat}" if o.repeat else o.range_end
        if r.kind == "cuda-profiler":
            out += ["--capture-range=cudaProfilerApi", f"--capture-range-end={end}"]
        elif r.kind == "nvtx":
            out += [
                "--capture-range=nvtx",
                f"--nvtx-capture={r.nvtx}",
                f"--capture-range-end={end}",
                "--env-var=NSYS_NVTX_PROFILER_REGISTER_ONLY=0",
            ]
        elif r.kind == "delay":
            if r.delay_s:
                out.append(f"--delay={r.delay_s}")
            if r.duration_s is not None:
                out.append(f"--duration={r.duration_s}")
    if o.start_later and want("start_later"):
        out.append("--start-later=true")
    if o.memory_usage and want("memory_usage"):
        out.append("--cuda-memory-usage=true")
    if o.backtrace and want("backtrace"):
        out.append(f"--cudabacktrace={o.backtrace}")
    if o.gpu_metrics and want("gpu_metrics"):
        out.append("--gpu-metrics-devices=all")
        if o.gpu_metrics_frequency is not None:
            out.append(f"--gpu-metrics-frequency={o.gpu_metrics_frequency}")
    if want("plugins"):
        out += [f"--enable={p}" for p in o.plugins]
    if o.stats and want("stats"):
        out.append("--stats=true")
    return out


def fixed_flags(o: CaptureOptions) -> list[str]:
    """The flags every capture gets."""
    return ["--force-overwrite=true", f"--cuda-graph-trace={o.graph_trace}", "--export=sqlite", "-o", o.output]


def profile_argv(nsys: str, o: CaptureOptions, command: Sequence[str], only: set[str] | None = None) -> list[str]:
    """The full ``nsys profile`` command line. With a command file, its flags come from the file and only the
    fixed flags (and ``only`` options, when given) are repeated on the command line, where they win."""
    if not command:
        raise UsageError("no command to profile", "give it after --: nsys-doctor capture [OPTIONS] -- COMMAND ...")
    argv = [nsys, "profile", *fixed_flags(o)]
    if o.command_file:
        argv.append(f"--command-file={o.command_file}")
        argv += option_flags(o, only if only is not None else set())
    else:
        argv += option_flags(o)
    argv += list(o.extra)
    argv += list(command)
    return argv


def command_file_flags(o: CaptureOptions) -> list[str]:
    """What ``--command-file`` writes: the fixed flags except the output, then the option flags."""
    return ["--force-overwrite=true", f"--cuda-graph-trace={o.graph_trace}", "--export=sqlite", *option_flags(o)]


def write_command_file(flags: Sequence[str]) -> str:
    """An nsys command file: one switch per line and no comment lines (nsys does not treat ``#`` as a comment:
    it silently ignores the switches after one)."""
    for f in flags:
        if not f or any(c.isspace() for c in f):
            raise UsageError(f"cannot write {f!r} to a command file", "switches in a command file cannot hold spaces")
        if f.startswith("#"):
            raise UsageError(f"cannot write {f!r} to a command file", "nsys would ignore the switches after it")
    return "".join(f"{f}\n" for f in flags)


def read_command_file(text: str, where: str = "command file") -> list[str]:
    """The switches of an nsys command file (whitespace separated, several per line allowed). A ``#`` token is
    refused: nsys does not skip it as a comment but silently drops the switches that follow it."""
    tokens: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for tok in line.split():
            if tok.startswith("#"):
                raise UsageError(
                    f"{where} line {lineno} has a comment ({line.strip()!r})",
                    "nsys does not skip '#' lines: it silently ignores the switches after them; delete the comment",
                )
            tokens.append(tok)
    if not tokens:
        raise UsageError(f"{where} has no switches", "write one nsys switch per line, e.g. --trace=cuda,nvtx")
    return tokens


def flag_values(tokens: Sequence[str]) -> dict[str, str]:
    """``--name=value`` / ``--name value`` / ``-c value`` switches as a dict (last one wins, as nsys reads them)."""
    short = {"-c": "--capture-range", "-t": "--trace", "-o": "--output", "-y": "--delay", "-d": "--duration"}
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.startswith("--") and "=" in t:
            k, v = t.split("=", 1)
            out[k] = v
        elif t in short and i + 1 < len(tokens):
            out[short[t]] = tokens[i + 1]
            i += 1
        elif t.startswith("--") and i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
            out[t] = tokens[i + 1]
            i += 1
        elif t.startswith("-"):
            out[t] = "true"
        i += 1
    return out


def range_of_flags(tokens: Sequence[str]) -> Range:
    """The capture range a list of nsys switches (e.g. a command file) asks for."""
    v = flag_values(tokens)
    kind = v.get("--capture-range", "none").lower()
    if kind == "cudaprofilerapi":
        return Range("cuda-profiler")
    if kind == "nvtx":
        return Range("nvtx", nvtx=v.get("--nvtx-capture") or v.get("-p"))
    delay, duration = v.get("--delay"), v.get("--duration")
    if delay or duration:
        return Range(
            "delay",
            delay_s=int(delay) if delay and delay.isdigit() else None,
            duration_s=int(duration) if duration and duration.isdigit() else None,
        )
    return Range("full")


# ---------------------------------------------------------------------------------------------- output names

_PATTERN = re.compile(r"%(?:q\{([A-Za-z_][A-Za-z0-9_]*)\}|([hpn%]))")


@dataclass(frozen=True)
class OutputName:
    """An ``-o`` pattern resolved before the run. ``nsys_value`` goes to nsys (only ``%p`` left for it, literal
    ``%`` written ``%%``); ``glob`` finds the files afterwards (``*`` where the PID goes, glob characters
    escaped); ``path`` is the exact name (without extension) when no ``%p`` is left."""

    nsys_value: str
    glob: str
    path: str | None


def expand_output_name(
    pattern: str, *, hostname: str, env: dict[str, str], taken: Callable[[str], bool] = lambda g: False
) -> OutputName:
    """Expand nsys's ``-o`` patterns the way nsys does: ``%h`` hostname, ``%q{VAR}`` environment variable,
    ``%n`` the smallest positive integer whose name is not taken, ``%%`` a literal ``%``; ``%p`` (the PID of the
    profiled process) is known only when it runs, so it is left to nsys. ``taken(glob)`` says whether files
    with that name (a glob without extension) exist."""
    pieces: list[tuple[str, str]] = []  # (kind, text): kind "lit", "pid" or "num"
    pos = 0
    for m in [*_PATTERN.finditer(pattern), None]:
        lit = pattern[pos : m.start() if m else len(pattern)]
        if "%" in lit:
            bad = lit[lit.index("%") :][:2]
            raise UsageError(
                f"output name {pattern!r}: unknown pattern {bad!r}", "nsys knows %h %p %n %q{VAR} and %% (a literal %)"
            )
        pieces.append(("lit", lit))
        if m is None:
            break
        var, code = m.group(1), m.group(2)
        if var is not None:
            if var not in env:
                raise UsageError(
                    f"output name {pattern!r} uses %q{{{var}}} but {var} is not set", f"export {var}=... or drop it"
                )
            pieces.append(("lit", env[var]))
        elif code == "h":
            pieces.append(("lit", hostname))
        elif code == "%":
            pieces.append(("lit", "%"))
        elif code == "p":
            pieces.append(("pid", ""))
        else:
            pieces.append(("num", ""))
        pos = m.end()

    def render(n: int | None, mode: str) -> str:
        out = []
        for kind, text in pieces:
            if kind == "lit":
                out.append(text.replace("%", "%%") if mode == "nsys" else glob.escape(text) if mode == "glob" else text)
            elif kind == "pid":
                out.append("%p" if mode == "nsys" else "*")
            else:
                out.append(str(n))
        return "".join(out)

    n = None
    if any(k == "num" for k, _ in pieces):
        n = 1
        while taken(render(n, "glob")):
            n += 1
    has_pid = any(k == "pid" for k, _ in pieces)
    return OutputName(render(n, "nsys"), render(n, "glob"), None if has_pid else render(n, "plain"))


def shell_line(argv: Sequence[str]) -> str:
    """The command as one copy-pasteable shell line."""
    return shlex.join(argv)
