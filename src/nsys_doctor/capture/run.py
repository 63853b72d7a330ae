"""Running a capture: the unprofiled baseline, nsys itself, finding and validating the export, the sidecar JSON.

The sidecar ``<trace without .sqlite>.nsys-doctor.json`` beside each trace records how it was made (schema
``nsys-doctor-capture/1``, see docs/capture.md): the commands, versions, git revision, time, what validation found,
and the unprofiled (``baseline``) and traced (``traced``) timing with their ratio (``inflation``).
"""

from __future__ import annotations

import datetime as _dt
import glob
import io
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import NsysDoctorError
from ..trace import Trace
from ..trace.meta import TraceInfo, describe
from . import preflight
from .command import Range
from .sidecar import read_sidecar, write_sidecar
from .workload import metric_unit, timing_from_output


class CaptureError(NsysDoctorError):
    """The capture ran but did not give a usable trace."""


# ------------------------------------------------------------------------------------------- files and sidecar


def existing_outputs(glob_base: str) -> list[Path]:
    """Traces (or reports) already at an output name: NAME.sqlite / NAME.nsys-rep, and NAME.N.* from --repeat."""
    hits: set[str] = set()
    for ext in (".sqlite", ".nsys-rep"):
        hits.update(glob.glob(glob_base + ext))
        hits.update(p for p in glob.glob(glob_base + ".*" + ext) if re.search(r"\.\d+" + re.escape(ext) + "$", p))
    return sorted(Path(h) for h in hits)


def _index(p: Path) -> tuple[int, str]:
    m = re.search(r"\.(\d+)\.(sqlite|nsys-rep)$", p.name)
    return (int(m.group(1)) if m else 0, p.name)


def find_traces(glob_base: str, since: float) -> list[Path]:
    """The .sqlite files this capture wrote (one per capture range with --repeat), oldest index first. A
    .nsys-rep without its .sqlite is returned too (Trace.open converts it)."""
    found = [p for p in existing_outputs(glob_base) if p.stat().st_mtime >= since - 1]
    sqlite = [p for p in found if p.suffix == ".sqlite"]
    reps = [p for p in found if p.suffix == ".nsys-rep" and p.with_suffix(".sqlite") not in sqlite]
    return sorted(sqlite + reps, key=_index)


# ------------------------------------------------------------------------------------------- validation


@dataclass
class Validation:
    problems: list[str] = field(default_factory=list)  # the capture is not usable
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(info: TraceInfo, expected: Range, graph_asked: bool = False) -> Validation:
    """Is the export usable: kernels present, node-level graph tracing, no dropped data, capture range hit.

    nsys records no capture-range setting in the export. When a cudaProfilerApi or NVTX range is never entered,
    nsys writes no report at all ("No reports were generated", seen with 2025.3.1), so a trace with kernels
    means the range was hit; the first range of a cudaProfilerApi capture also shows its cudaProfilerStart call
    (later ranges of --repeat do not)."""
    v = Validation()
    c = info.counts
    kernels = int(c.get("CUPTI_ACTIVITY_KIND_KERNEL", 0))
    graphs = int(c.get("CUDA_GRAPH_TRACE", 0))
    mode = info.capture.get("cuda_graph_trace")
    dropped = [d for d in info.diagnostics if "might have been collected" in d or "dropped" in d.lower()]
    v.facts = {
        "kernels": kernels,
        "api_calls": int(c.get("CUPTI_ACTIVITY_KIND_RUNTIME", 0)),
        "nvtx_events": int(c.get("NVTX_EVENTS", 0)),
        "graph_launches_graph_level": graphs,
        "cuda_graph_trace": mode,
        "range": expected.describe(),
        "range_hit": kernels > 0 or graphs > 0,
        "profiler_start_in_trace": info.capture.get("capture_range") == "cudaProfilerApi",
        "duration_ns": info.duration_ns,
        "nsys_version": info.product_version,
        "dropped": dropped,
    }
    if kernels == 0:
        if graphs:
            v.problems.append(
                f"no per-kernel rows, only {graphs} whole-graph launches: CUDA graphs were traced at graph level"
            )
        elif expected.kind == "cuda-profiler":
            v.problems.append(
                "no CUDA kernels between cudaProfilerStart and cudaProfilerStop (does the workload get its "
                "profiler-capture flag?)"
            )
        else:
            hit = " (was the capture range ever entered?)" if expected.kind != "full" else ""
            v.problems.append(f"no CUDA kernels in the trace{hit}")
    if mode == "graph" or (graphs and kernels):
        msg = "graph-level CUDA graph tracing: kernels inside graphs are missing"
        (v.warnings if graph_asked else v.problems).append(msg)
    if dropped:
        v.warnings.append("nsys reports possibly dropped data: " + "; ".join(dropped)[:300])
    return v


def empty_hint(expected: Range) -> str:
    if expected.kind == "cuda-profiler":
        return (
            "pass the workload's profiler-capture flag (profiler_capture_flag in the workload template) or use "
            "--range full"
        )
    if expected.kind == "nvtx":
        return f"check the NVTX range name {expected.nvtx!r} (nsys-doctor info on a full capture lists them)"
    if expected.kind == "delay":
        return "the delay may outlast the GPU work: shorten it, or use --range cuda-profiler"
    return "check that the command runs CUDA work (and --trace includes cuda)"


# ------------------------------------------------------------------------------------------- running


@dataclass
class RunResult:
    exit_code: int
    output: str
    wall_s: float


def run_streaming(argv: Sequence[str], log: Path | None = None, echo: IO[str] | None = None) -> RunResult:
    """Run a command, copying its output (stdout and stderr merged) to ``echo`` as it comes and to ``log``.
    Bytes pass through as written, so nsys's carriage-return progress bars redraw in place."""
    import codecs

    echo = sys.stderr if echo is None else echo
    t0 = time.perf_counter()
    chunks: list[str] = []
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise NsysDoctorError(f"cannot run {argv[0]}: not found", "check the command (and PATH)") from exc
    except PermissionError as exc:
        raise NsysDoctorError(f"cannot run {argv[0]}: permission denied", "make it executable") from exc
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    fh = log.open("w", encoding="utf-8", newline="") if log else None
    try:
        stream = proc.stdout
        assert isinstance(stream, io.BufferedReader)  # a pipe with the default buffering: read1 returns what is there
        while True:
            data = stream.read1(65536)
            text = decoder.decode(data, final=not data)
            if text:
                chunks.append(text)
                if fh:
                    fh.write(text)
                echo.write(text)
                echo.flush()
            if not data:
                break
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    finally:
        if fh:
            fh.close()
    return RunResult(rc, "".join(chunks), time.perf_counter() - t0)


def timing(result: RunResult, regex: str | None, metric: str, where: str) -> dict[str, object]:
    """The measured number of one run: the regex's value, or the wall time without a regex."""
    out: dict[str, object] = {"metric": metric, "exit_code": result.exit_code, "wall_s": round(result.wall_s, 3)}
    if regex:
        value = timing_from_output(result.output, regex)
        out.update(value=value, unit=metric_unit(metric), source=f"regex {regex} on the {where} output")
        if value is None:
            out["note"] = f"the regex did not match the {where} output"
    else:
        out.update(value=round(result.wall_s, 3), unit="s", source=f"wall time of the {where} command")
    return out


def _timing_value(timing: Mapping[str, object] | None) -> float | None:
    """The measured value of a ``timing`` record; None when it has none (no run, no regex match, not a number)."""
    value = None if timing is None else timing.get("value")
    if not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def inflation(baseline: Mapping[str, object] | None, traced: Mapping[str, object] | None) -> float | None:
    b, t = _timing_value(baseline), _timing_value(traced)
    if b is None or t is None:
        return None
    return round(t / b, 4) if b > 0 else None


# ------------------------------------------------------------------------------------------- provenance


def git_revision(cwd: str | Path, runner: preflight.Runner | None = None) -> dict[str, object] | None:
    runner = runner or preflight.run_tool
    rc, out = runner(["git", "-C", str(cwd), "rev-parse", "HEAD"], 10)
    if rc != 0 or not re.fullmatch(r"[0-9a-f]{7,64}", out.strip()):
        return None
    rev = out.strip()
    rc, status = runner(["git", "-C", str(cwd), "status", "--porcelain", "--untracked-files=no"], 10)
    return {"revision": rev, "dirty": bool(status.strip()) if rc == 0 else None}


def versions(nsys_path: str | None, runner: preflight.Runner | None = None) -> dict[str, object]:
    """nsys, driver, CUDA (driver) and toolkit versions and the GPU, asked from the tools themselves."""
    runner = runner or preflight.run_tool
    out: dict[str, object] = {"nsys": None, "driver": None, "cuda_driver": None, "toolkit": None, "gpu": None}
    if nsys_path:
        rc, text = runner([nsys_path, "--version"], 30)
        out["nsys"] = preflight.parse_nsys_version(text) if rc == 0 else None
    rc, text = runner(["nvidia-smi", f"--query-gpu={preflight.GPU_QUERY}", "--format=csv,noheader"], 30)
    gpus = preflight.parse_nvidia_smi_query(text) if rc == 0 else []
    if gpus:
        out["driver"], out["gpu"] = gpus[0].driver, gpus[0].name
        rc, text = runner(["nvidia-smi"], 30)
        out["cuda_driver"] = preflight.parse_nvidia_smi_cuda(text) if rc == 0 else None
    nvcc = preflight.find_nvcc(dict(os.environ))
    if nvcc:
        rc, text = runner([nvcc, "--version"], 30)
        tk = preflight.parse_nvcc_version(text) if rc == 0 else None
        out["toolkit"] = tk.release if tk else None
    return out


def now_utc() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------- the capture


@dataclass
class CaptureRequest:
    nsys_argv: list[str]
    command: list[str]
    output_glob: str  # where the traces go, as a glob without extension
    range: Range
    graph_asked: bool = False
    baseline: bool = False
    timing_regex: str | None = None
    timing_metric: str = "wall_s"
    log_dir: Path | None = None
    name: str = "capture"
    meta: dict[str, object] = field(default_factory=dict)  # preset, workload values, options: into the sidecar


@dataclass
class TraceResult:
    path: Path
    info: TraceInfo
    validation: Validation
    sidecar: Path | None = None


@dataclass
class CaptureResult:
    traces: list[TraceResult]
    nsys: RunResult
    baseline: dict[str, object] | None
    traced: dict[str, object] | None
    record: dict[str, object]

    @property
    def inflation(self) -> float | None:
        return inflation(self.baseline, self.traced)


def capture(
    req: CaptureRequest,
    echo: IO[str] | None = None,
    runner: preflight.Runner | None = None,
    say: Callable[[str], None] | None = None,
) -> CaptureResult:
    """Baseline run (if asked), the nsys run, then each trace it wrote is opened, validated and gets a sidecar."""
    say = say or (lambda s: print(s, file=sys.stderr))
    log_dir = req.log_dir or Path(req.output_glob).parent
    log_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(req.output_glob).name.replace("*", "pid")
    baseline = None
    if req.baseline:
        say(f"nsys-doctor: baseline run without nsys: {shlex.join(req.command)}")
        b = run_streaming(req.command, log_dir / f"{stem}.baseline.log", echo)
        if b.exit_code != 0:
            raise CaptureError(
                f"the baseline run (without nsys) exited with {b.exit_code}",
                f"fix the command first; its output is in {log_dir / (stem + '.baseline.log')}",
            )
        baseline = timing(b, req.timing_regex, req.timing_metric, "unprofiled")
        if req.timing_regex and baseline.get("value") is None:
            raise CaptureError(
                f"the timing regex {req.timing_regex!r} matched nothing in the baseline output",
                "fix timing_regex in the workload template (or --timing-regex), or drop it to compare wall times",
            )
    say(f"nsys-doctor: {shlex.join(req.nsys_argv)}")
    started = time.time()
    r = run_streaming(req.nsys_argv, log_dir / f"{stem}.capture.log", echo)
    traced = timing(r, req.timing_regex, req.timing_metric, "profiled") if req.baseline else None
    if traced is not None and not req.timing_regex:
        traced["source"] = f"{traced['source']} (includes nsys start-up and export)"
    paths = find_traces(req.output_glob, started)
    if not paths:
        tail = " | ".join(line.strip() for line in r.output.strip().splitlines()[-3:])
        raise CaptureError(
            f"nsys exited with {r.exit_code} and wrote no trace at {req.output_glob}.sqlite ({tail or 'no output'})",
            empty_hint(req.range) if r.exit_code == 0 else f"see {log_dir / (stem + '.capture.log')}",
        )
    record: dict[str, object] = {
        "name": req.name,
        "created_utc": now_utc(),
        "host": socket.gethostname(),
        "cwd": os.getcwd(),
        "command": req.command,
        "nsys_command": req.nsys_argv,
        "nsys_exit_code": r.exit_code,
        "nsys_wall_s": round(r.wall_s, 3),
        "range": req.range.describe(),
        **req.meta,
        "versions": versions(req.nsys_argv[0], runner),
        "git": git_revision(os.getcwd(), runner),
        "baseline": baseline,
        "traced": traced,
        "inflation": inflation(baseline, traced),
        "logs": {
            "capture": str(log_dir / f"{stem}.capture.log"),
            "baseline": str(log_dir / f"{stem}.baseline.log") if req.baseline else None,
        },
    }
    results = record_traces(paths, record, req.range, req.graph_asked)
    return CaptureResult(results, r, baseline, traced, record)


def record_traces(
    paths: Sequence[Path], record: dict[str, object], expected: Range, graph_asked: bool = False
) -> list[TraceResult]:
    """Open, describe and validate each trace a capture wrote, and write its sidecar."""
    results: list[TraceResult] = []
    for p in paths:
        with Trace.open(p) as t:
            info = describe(t)
            sqlite = Path(t.path)
        v = validate(info, expected, graph_asked)
        rep = sqlite.with_suffix(".nsys-rep")
        entry = {
            **record,
            "trace": str(sqlite),
            "report": str(rep) if rep.exists() else None,
            "traces": [str(q) for q in paths],
            "validation": {"ok": v.ok, "problems": v.problems, "warnings": v.warnings, **v.facts},
        }
        tools = record.get("versions")
        entry["versions"] = {**(tools if isinstance(tools, dict) else {}), **_trace_versions(info)}
        results.append(TraceResult(sqlite, info, v, write_sidecar(sqlite, entry)))
    return results


def _trace_versions(info: TraceInfo) -> dict[str, object]:
    """What the trace itself says, where the tools did not answer."""
    out: dict[str, object] = {"nsys_export": info.product_version}
    if info.system.get("NvDriverVersion"):
        out["driver_in_trace"] = info.system["NvDriverVersion"]
    if info.system.get("CudaDriverVersion"):
        out["cuda_driver_in_trace"] = info.system["CudaDriverVersion"]
    return out


def update_sidecar(trace: str | Path, extra: dict[str, object]) -> Path | None:
    data = read_sidecar(trace)
    if data is None:
        return None
    data.update(extra)
    data.pop("schema", None)
    return write_sidecar(trace, data)
