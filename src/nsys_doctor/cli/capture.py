"""``nsys-doctor check``, ``capture`` and ``session``: captures that cannot go wrong, then the report."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..capture.command import OUTPUT_DIR, RANGE_ENDS, Range, expand_output_name, parse_range, shell_line
from ..errors import NsysDoctorError, UsageError
from ..trace.nsysbin import find_nsys  # module level: tests replace it
from .report import diagnose_trace, project_rules

# Only what the options need is imported here (`capture --help` stays light); running a capture imports the rest.
if TYPE_CHECKING:
    from ..analysis.diagnosis import Diagnosis
    from ..capture import run

STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "info": "cyan"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _err(text: str) -> None:
    click.echo(text, err=True)


def _nsys_or_fail() -> str:
    from ..capture import preflight

    loc = find_nsys()
    if loc is None:
        c = preflight.nsys_checks(None)[0]
        raise NsysDoctorError(c.message, c.hint)
    if loc.how == "off PATH":
        _err(f"nsys-doctor: using {loc.path} (not on PATH; to fix the shell: {preflight.path_fix(loc)})")
    return loc.path


# --------------------------------------------------------------------------------------------------- check


@click.command()
def check() -> None:
    """Will a capture work here? nsys (and the PATH fix), `nsys status -e`, GPU and driver, CUDA toolkit.

    \b
    Exit 0 when a capture will work, 1 (with the reasons) when it will not.
    """
    from ..capture import preflight

    pf = preflight.preflight()
    color = sys.stdout.isatty()
    for c in pf.checks:
        tag = click.style(f"{c.status:<5}", fg=STYLE[c.status]) if color else f"{c.status:<5}"
        click.echo(f"{tag} {c.name:<13} {c.message}")
        if c.hint and c.status in ("warn", "fail", "info"):
            click.echo(f"{'':19}fix: {c.hint}")
    if pf.ok:
        click.echo("capture will work")
        return
    first = pf.failures[0]
    more = f" (and {len(pf.failures) - 1} more above)" if len(pf.failures) > 1 else ""
    raise preflight.CheckFailed(f"capture will not work: {first.message}{more}", first.hint)


# --------------------------------------------------------------------------------------------------- capture


def _explicit(ctx: click.Context) -> set[str]:
    return {
        name for name in ctx.params if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)
    }


def _summary(trace_path: Path, top_lines: int = 40) -> tuple[list[str], Diagnosis]:
    """The top of the report (header, window, diagnosis, findings) and the diagnosis itself."""
    from ..report.diagnosis_text import render_terminal
    from ..trace import Trace

    with Trace.open(trace_path) as t:
        d = diagnose_trace(t, project_rules(None))
    text = render_terminal(d, color=sys.stdout.isatty())
    lines: list[str] = []
    for line in text.splitlines():
        if _ANSI.sub("", line).lstrip().startswith("Families"):
            break
        lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines[:top_lines], d


def trace_timing(d: object, baseline: dict[str, object] | None) -> tuple[dict[str, object] | None, float | None]:
    """The step time the trace shows (decode steps, else any steps), and its ratio to the unprofiled number when
    that number is a per-token or per-step time."""
    from ..capture.workload import metric_unit

    summary = getattr(d, "step_summary", None) or {}
    kind = next((k for k in ("decode", "step") if isinstance(summary.get(k), dict)), None)
    if kind is None:
        return None, None
    s = summary[kind]
    p50 = s["step_time"]["p50_ns"]
    if p50 is None:
        return None, None
    out: dict[str, object] = {
        "metric": f"{kind}_step_p50_ms",
        "value": round(p50 / 1e6, 4),
        "unit": "ms",
        "steps": s["count"],
        "source": f"{kind} step time p50 in the trace ({summary.get('source')})",
    }
    ratio = None
    value = baseline.get("value") if baseline else None
    if baseline and isinstance(value, (int, float)):
        metric = str(baseline.get("metric", "")).lower()
        unit = baseline.get("unit") or metric_unit(metric)
        scale = {"ms": 1e6, "us": 1e3, "ns": 1.0, "s": 1e9}.get(str(unit))
        if scale and re.search(r"token|step|tpot|itl", metric) and float(value) > 0:
            ratio = round(p50 / scale / float(value), 4)
    return out, ratio


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def finish(
    result_traces: list[run.TraceResult],
    baseline: dict[str, object] | None,
    traced: dict[str, object] | None,
    infl: float | None,
    show_report: bool,
) -> None:
    """Print what was written, the timing comparison and the report summary; fail on an unusable capture."""
    from ..capture import run

    for tr in result_traces:
        f = tr.validation.facts
        click.echo(
            f"trace: {tr.path} ({f['kernels']:,} kernels, graph trace {f['cuda_graph_trace'] or '?'}, "
            f"range {f['range']}{' hit' if f['range_hit'] and f['range'] != 'full' else ''}); record: {tr.sidecar}"
        )
        for w in tr.validation.warnings:
            _err(f"nsys-doctor: warning: {w}")
    bad = [tr for tr in result_traces if not tr.validation.ok]
    if bad:
        tr = bad[0]
        hint = "recapture with the default --graph-trace node"
        if not tr.validation.facts["kernels"] and not tr.validation.facts["graph_launches_graph_level"]:
            try:
                hint = run.empty_hint(parse_range(str(tr.validation.facts["range"])))
            except UsageError:
                hint = run.empty_hint(Range())
        raise run.CaptureError(f"unusable capture {tr.path}: {'; '.join(tr.validation.problems)}", hint)
    first = result_traces[0]
    lines: list[str] = []
    d: Diagnosis | None = None
    if show_report:
        try:
            lines, d = _summary(first.path)
        except NsysDoctorError as exc:
            _err(f"nsys-doctor: the report failed on {first.path}: {exc.one_line()}")
    if baseline is not None:
        tt, ratio = trace_timing(d, baseline) if d is not None else (None, None)
        metric, unit = baseline.get("metric"), baseline.get("unit") or ""
        parts = [f"{metric}: unprofiled {_fmt(baseline.get('value'))}{unit}"]
        if traced and traced.get("value") is not None:
            parts.append(f"under nsys {_fmt(traced['value'])}{unit}" + (f" (x{infl:.2f})" if infl else ""))
        if tt:
            parts.append(f"in the trace {tt['metric']} {_fmt(tt['value'])}ms" + (f" (x{ratio:.2f})" if ratio else ""))
            for tr in result_traces:
                run.update_sidecar(tr.path, {"trace_timing": tt, "trace_inflation": ratio})
        click.echo("timing: " + "; ".join(parts) + " (quote the unprofiled number)")
    if lines:
        click.echo()
        click.echo("\n".join(lines))
        click.echo()
        click.echo(f"full report: nsys-doctor report {first.path}")


# options shared by `capture` and `session start`
TRACE_OPT = click.option(
    "--trace",
    "trace",
    multiple=True,
    metavar="LIST",
    help="What to trace [cuda,nvtx]; also cublas, cudnn, osrt, mpi, python-gil, ...",
)
MEMORY_OPT = click.option("--memory-usage", is_flag=True, help="GPU memory usage over time (--cuda-memory-usage=true).")
BACKTRACE_OPT = click.option(
    "--backtrace", metavar="KIND:NS", help="CPU backtraces of slow CUDA calls, e.g. kernel:500."
)
GRAPH_OPT = click.option(
    "--graph-trace",
    type=click.Choice(["node", "graph"]),
    default="node",
    show_default=True,
    help="CUDA graph granularity; graph hides the kernels inside graphs.",
)
NSYS_ARGS_OPT = click.option(
    "--nsys-args", multiple=True, metavar="'FLAGS'", help="Extra raw nsys flags, as one quoted string."
)
OUTPUT_DIR_OPT = click.option("--output-dir", default=OUTPUT_DIR, show_default=True, help="Where traces go.")
ALLOW_DEBUG_OPT = click.option("--allow-debug", is_flag=True, help="Profile a debug build anyway.")


@click.command(context_settings={"ignore_unknown_options": False})
@click.option(
    "--name", help="Trace name under --output-dir; nsys patterns %h %p %n %q{VAR} %% work. [preset or capture]"
)
@OUTPUT_DIR_OPT
@click.option("--preset", help="Workload preset for the template: prefill (prompt 2048, output 1), decode (1, 128).")
@click.option("--prompt-len", type=int, help="Template value {prompt_len} (overrides the preset).")
@click.option("--output-len", type=int, help="Template value {output_len}.")
@click.option("--warmup", type=int, help="Template value {warmup} [1].")
@click.option("--iters", type=int, help="Template value {iters} [1].")
@click.option("--no-graph", is_flag=True, help="Add the template's no_graph_flag (kernel-level comparisons).")
@click.option(
    "--range",
    "range_",
    metavar="SPEC",
    help="full | cuda-profiler | nvtx:NAME | delay:S[,duration:S]. [cuda-profiler with a template that has a "
    "profiler_capture_flag, else full]",
)
@click.option(
    "--range-end",
    type=click.Choice(RANGE_ENDS),
    default="stop",
    show_default=True,
    help="After a cuda-profiler/nvtx range: stop collecting (the app runs on) or also end the app.",
)
@click.option("--repeat", type=int, metavar="N", help="Capture N ranges, one file each (--capture-range-end=repeat:N).")
@click.option("--start-later", is_flag=True, help="Start idle; collect on `nsys start` (--start-later=true).")
@TRACE_OPT
@click.option("--lighter", is_flag=True, help="cuda,nvtx only, no CPU sampling or context switches.")
@MEMORY_OPT
@BACKTRACE_OPT
@click.option("--gpu-metrics", is_flag=True, help="Sample GPU hardware metrics (--gpu-metrics-devices=all).")
@click.option("--gpu-metrics-frequency", type=int, metavar="HZ", help="GPU metrics sampling rate (10..200000).")
@click.option(
    "--plugin", "plugin", multiple=True, metavar="NAME", help="nsys plugin (--enable=NAME), e.g. nvml_metrics."
)
@click.option("--stats", is_flag=True, help="Let nsys print its summary reports too (--stats=true).")
@GRAPH_OPT
@NSYS_ARGS_OPT
@click.option(
    "--command-file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="nsys command file: written with the flags when missing, used (and checked) when present.",
)
@click.option("--dry-run", is_flag=True, help="Print the exact commands and stop.")
@ALLOW_DEBUG_OPT
@click.option("--overwrite", is_flag=True, help="Replace an existing trace of the same name.")
@click.option(
    "--baseline-run",
    "baseline",
    is_flag=True,
    help="Run the command once without nsys first and compare its timing with the traced run.",
)
@click.option("--timing-regex", metavar="REGEX", help="Timing in the command's output, e.g. 'per_token=([0-9.]+)ms'.")
@click.option("--timing-metric", metavar="NAME", help="Name of that number, e.g. per_token_ms.")
@click.option("--no-report", is_flag=True, help="Do not print the report summary afterwards.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def capture(ctx: click.Context, **kw: object) -> None:
    """Profile COMMAND with the flags a usable trace needs, check the trace, then print the report's summary.

    \b
    Always: --force-overwrite=true --cuda-graph-trace=node --export=sqlite -o target/profiling/<name>
    Without COMMAND the project's workload template is used ([tool.nsys-doctor.workload], see docs/capture.md):
      nsys-doctor capture --preset decode --baseline-run
      nsys-doctor capture --name decode_%h --range cuda-profiler -- cargo run -r --bin bench -- --cuda-profiler-capture
    """
    import socket

    from ..capture import plan as P
    from ..capture import run
    from ..config import find_config
    from ..safe_io import write_atomic

    dry = bool(kw.pop("dry_run"))
    no_report = bool(kw.pop("no_report"))
    explicit = _explicit(ctx)
    args = P.CaptureArgs(
        command=list(kw.pop("command")),  # type: ignore[call-overload]
        range=kw.pop("range_"),  # type: ignore[arg-type]
        plugins=tuple(kw.pop("plugin")),  # type: ignore[arg-type]
        trace=tuple(kw.pop("trace")),  # type: ignore[arg-type]
        explicit={"range" if e == "range_" else e for e in explicit},
        **kw,  # type: ignore[arg-type]
    )
    loc = find_nsys()
    if dry:
        nsys = loc.path if loc else "nsys"
        if loc is None:
            _err("nsys-doctor: nsys is not installed here; the command names plain `nsys`")
    else:
        nsys = _nsys_or_fail()
    p = P.plan(args, find_config(), nsys, dict(os.environ), socket.gethostname())
    for w in p.warnings:
        _err(f"nsys-doctor: warning: {w}")
    if p.command_file_write:
        path, text = p.command_file_write
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
        _err(f"nsys-doctor: wrote the nsys flags to {path} (nsys command file)")
    if dry:
        if p.baseline_argv:
            click.echo(f"# baseline (no nsys)\n{shell_line(p.baseline_argv)}")
            click.echo("# capture")
        click.echo(shell_line(p.argv))
        return
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    result = run.capture(p.request)
    finish(result.traces, result.baseline, result.traced, result.inflation, not no_report)


# --------------------------------------------------------------------------------------------------- session


@click.group()
def session() -> None:
    """Interactive captures of a long-running process: start it once, capture windows, stop it.

    \b
      nsys-doctor session start srv -- cargo run -r --bin server
      nsys-doctor session capture srv --seconds 5
      nsys-doctor session list
      nsys-doctor session stop srv
    """


@session.command("start")
@click.argument("name")
@TRACE_OPT
@MEMORY_OPT
@BACKTRACE_OPT
@GRAPH_OPT
@NSYS_ARGS_OPT
@OUTPUT_DIR_OPT
@ALLOW_DEBUG_OPT
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def session_start(
    name: str,
    trace: tuple[str, ...],
    memory_usage: bool,
    backtrace: str | None,
    graph_trace: str,
    nsys_args: tuple[str, ...],
    output_dir: str,
    allow_debug: bool,
    command: tuple[str, ...],
) -> None:
    """Launch COMMAND under nsys (nsys launch --session-new=NAME), idle until `session capture`."""
    from ..capture import plan as P
    from ..capture import run
    from ..capture import session as session_mod
    from ..capture.command import check_extra, parse_backtrace, parse_trace
    from ..capture.guards import build_guard, graph_trace_warning

    session_mod.check_name(name)
    out = Path(output_dir)
    old = session_mod.load_state(out, name)
    if old and session_mod.check_process(old).status in ("nsys", "unknown"):
        raise UsageError(f"session {name} is running (pid {old.pid})", f"nsys-doctor session stop {name} first")
    g = build_guard(list(command))
    if g.refuse and not allow_debug:
        raise UsageError(
            f"refusing to profile a debug build: {g.refuse}", "build with --release, or pass --allow-debug"
        )
    for w in [*g.warnings, graph_trace_warning(graph_trace)]:
        if w:
            _err(f"nsys-doctor: warning: {w}")
    extra = P.split_nsys_args(nsys_args)
    check_extra(extra)
    nsys = _nsys_or_fail()
    argv = session_mod.launch_argv(
        nsys,
        name,
        list(command),
        trace=parse_trace(trace) if trace else session_mod.DEFAULT_TRACE,
        graph_trace=graph_trace,
        memory_usage=memory_usage,
        backtrace=parse_backtrace(backtrace) if backtrace else None,
        extra=extra,
    )
    log = out / session_mod.STATE_DIR / f"{name}.log"
    _err(f"nsys-doctor: {shell_line(argv)}")
    pid = session_mod.start_launcher(argv, log)
    state = session_mod.SessionState(name, pid, list(command), argv, str(log), run.now_utc(), os.getcwd())
    session_mod.save_state(out, session_mod.record_identity(state))
    click.echo(
        f"session {name} started (pid {pid}, log {log}); capture with: nsys-doctor session capture {name} --seconds 5"
    )


@session.command("capture")
@click.argument("name")
@click.option("--seconds", type=float, required=True, help="How long to collect.")
@click.option("--name", "out_name", help="Trace name [NAME_%n].")
@click.option("--output-dir", default=OUTPUT_DIR, show_default=True)
@click.option("--lighter", is_flag=True, help="No CPU sampling or context switches.")
@click.option("--gpu-metrics", is_flag=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing trace of the same name.")
@click.option("--no-report", is_flag=True, help="Do not print the report summary afterwards.")
def session_capture(
    name: str,
    seconds: float,
    out_name: str | None,
    output_dir: str,
    lighter: bool,
    gpu_metrics: bool,
    overwrite: bool,
    no_report: bool,
) -> None:
    """Collect SECONDS of the launched process (nsys start, wait, nsys stop), check the trace, print the report."""
    import socket

    from ..capture import preflight, run
    from ..capture import session as session_mod

    out = Path(output_dir)
    state = session_mod.read_state(out, name)
    if state is None:
        raise UsageError(f"no session {name}", "start one: nsys-doctor session start NAME -- COMMAND")
    if seconds <= 0:
        raise UsageError("--seconds must be positive", "e.g. --seconds 5")
    nsys = _nsys_or_fail()
    pattern = str(out / (out_name or f"{name}_%n"))
    names = expand_output_name(
        pattern, hostname=socket.gethostname(), env=dict(os.environ), taken=lambda g: bool(run.existing_outputs(g))
    )
    if names.path is not None and not overwrite and run.existing_outputs(names.glob):
        raise UsageError(f"{run.existing_outputs(names.glob)[0]} exists", "pass --overwrite or another --name")
    start = session_mod.start_argv(nsys, name, names.nsys_value, lighter=lighter, gpu_metrics=gpu_metrics)
    stop = session_mod.stop_argv(nsys, name)
    began = time.time()
    _err(f"nsys-doctor: {shell_line(start)}")
    rc, text = preflight.run_tool(start, 120)
    if rc != 0:
        raise NsysDoctorError(f"nsys start failed (exit {rc}): {' '.join(text.split())[-300:]}", f"see {state.log}")
    time.sleep(seconds)
    _err(f"nsys-doctor: {shell_line(stop)}")
    rc, text = preflight.run_tool(stop, 600)
    if text.strip():
        _err(text.rstrip())
    if rc != 0:
        raise NsysDoctorError(f"nsys stop failed (exit {rc}): {' '.join(text.split())[-300:]}", f"see {state.log}")
    paths = run.find_traces(names.glob, began)
    if not paths:
        raise run.CaptureError(f"nsys stop wrote no trace at {names.glob}.sqlite", f"see {state.log}")
    record: dict[str, object] = {
        "name": Path(pattern).name,
        "created_utc": run.now_utc(),
        "host": socket.gethostname(),
        "cwd": os.getcwd(),
        "command": state.command,
        "nsys_command": start,
        "session": {"name": name, "launch_command": state.launch_command, "stop_command": stop, "seconds": seconds},
        "range": "full",
        "versions": run.versions(nsys),
        "git": run.git_revision(os.getcwd()),
        "baseline": None,
        "traced": None,
        "inflation": None,
    }
    traces = run.record_traces(paths, record, Range("full"))
    state.captures += 1
    session_mod.save_state(out, state)
    finish(traces, None, None, None, not no_report)


@session.command("stop")
@click.argument("name")
@click.option("--output-dir", default=OUTPUT_DIR, show_default=True)
def session_stop(name: str, output_dir: str) -> None:
    """End the session (nsys shutdown) and the launched process.

    The process is signalled (SIGTERM to its process group) only when nsys shutdown did not end it and it still is
    the nsys this session started: same PID, start time and command line as recorded by `session start`.
    """
    from ..capture import preflight
    from ..capture import session as session_mod

    out = Path(output_dir)
    state = session_mod.read_state(out, name)  # a damaged state file is an error naming the file and key
    path = session_mod.state_path(out, name)
    if state is not None:
        session_mod.check_pid(state.pid, path)
    loc = find_nsys()
    if state is None and loc is None:
        raise UsageError(f"no session {name}", "nsys-doctor session list")
    shut_down = False
    if loc is not None:
        argv = session_mod.shutdown_argv(loc.path, name)
        _err(f"nsys-doctor: {shell_line(argv)}")
        rc, text = preflight.run_tool(argv, 120)
        if rc != 0 and state is None:
            raise NsysDoctorError(f"nsys shutdown failed (exit {rc}): {' '.join(text.split())[-300:]}", "")
        shut_down = rc == 0
    if state is None:
        click.echo(f"session {name} stopped")
        return
    if session_mod.check_process(state).status == "gone" and not shut_down:
        session_mod.remove_state(out, name)
        click.echo(f"session {name} stopped (its nsys, pid {state.pid}, had already exited)")
        return
    deadline = time.monotonic() + 15
    while shut_down and session_mod.check_process(state).status == "nsys" and time.monotonic() < deadline:
        time.sleep(0.2)
    signalled = ""
    if session_mod.check_process(state).status != "gone":
        signalled = session_mod.terminate(state, path)  # refuses anything but the session's own nsys
    session_mod.remove_state(out, name)
    click.echo(f"session {name} stopped" + (f" (sent SIGTERM to {signalled})" if signalled else ""))


SESSION_STATUS = {
    "nsys": "running",
    "gone": "exited",
    "other": "exited, pid reused",
    "unknown": "pid alive, unverified",
}


@session.command("list")
@click.option("--output-dir", default=OUTPUT_DIR, show_default=True)
def session_list(output_dir: str) -> None:
    """Sessions started here (and what `nsys sessions list` says)."""
    from ..capture import preflight
    from ..capture import session as session_mod

    states = session_mod.all_states(Path(output_dir))
    live = None
    loc = find_nsys()
    if loc is not None:
        rc, text = preflight.run_tool(session_mod.list_argv(loc.path), 30)
        live = set(session_mod.parse_sessions_list(text)) if rc == 0 else None
    if not states:
        click.echo("no sessions started by nsys-doctor here")
    for s in states:
        status = SESSION_STATUS[session_mod.check_process(s).status]
        if live is not None:
            status += ", known to nsys" if s.name in live else ", unknown to nsys"
        click.echo(
            f"{s.name}  pid {s.pid} ({status})  since {s.started_utc}  captures {s.captures}  {' '.join(s.command)}"
        )
    if live:
        others = sorted(live - {s.name for s in states})
        if others:
            click.echo(f"other nsys sessions: {', '.join(others)}")


COMMANDS = [capture, check, session]
