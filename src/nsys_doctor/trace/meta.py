"""What a trace holds: versions, GPUs, session, row counts, capture settings, and what is missing.

``describe(trace)`` returns a ``TraceInfo``; renderers turn it into text or JSON.
"""

from __future__ import annotations

import os

from ..values import Value
from . import schema as S
from .gpuinfo import gpu_rows

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .open import Trace

COUNTED_TABLES = (
    S.KERNEL,
    S.RUNTIME,
    S.MEMCPY,
    S.MEMSET,
    S.SYNC,
    S.GRAPH_TRACE,
    S.NVTX,
    S.OSRT,
    S.CUDA_EVENT,
    S.GPU_MEMORY_USAGE,
    S.GPU_METRICS,
    S.PROFILER_OVERHEAD,
    S.DIAGNOSTIC,
)
FRIENDLY = {
    S.KERNEL: "kernels",
    S.RUNTIME: "CUDA API calls",
    S.MEMCPY: "memcpys",
    S.MEMSET: "memsets",
    S.SYNC: "synchronizations",
    S.GRAPH_TRACE: "graph launches (graph-level)",
    S.NVTX: "NVTX events",
    S.OSRT: "OS runtime calls",
    S.CUDA_EVENT: "CUDA events",
    S.GPU_MEMORY_USAGE: "GPU memory usage events",
    S.GPU_METRICS: "GPU metrics samples",
    S.PROFILER_OVERHEAD: "profiler overhead ranges",
    S.DIAGNOSTIC: "diagnostic messages",
}


class TraceInfo(Value):
    """What ``describe`` finds in a trace (``missing`` is filled in last, from the rest)."""

    _fields = (
        "path",
        "size_bytes",
        "product_version",
        "schema_version",
        "era",
        "session_start_utc",
        "duration_ns",
        "gpus",
        "counts",
        "capture",
        "system",
        "diagnostics",
        "missing",
    )
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(
        self,
        path: str,
        size_bytes: int,
        product_version: str | None,
        schema_version: str | None,
        era: str,
        session_start_utc: str | None,
        duration_ns: int | None,
        gpus: list[dict[str, object]],
        counts: dict[str, int] | Callable[[], dict[str, int]],
        capture: dict[str, object],
        system: dict[str, str],
        diagnostics: list[str] | None = None,
        missing: list[str] | None = None,
    ) -> None:
        self.path = path
        self.size_bytes = size_bytes
        self.product_version = product_version
        self.schema_version = schema_version
        self.era = era
        self.session_start_utc = session_start_utc
        self.duration_ns = duration_ns
        self.gpus = gpus
        self._counts = counts if isinstance(counts, dict) else None
        self._count = None if isinstance(counts, dict) else counts
        self.capture = capture
        self.system = system
        self.diagnostics = [] if diagnostics is None else diagnostics
        self.missing = [] if missing is None else missing

    @property
    def counts(self) -> dict[str, int]:
        """Rows per table (those of ``COUNTED_TABLES`` the trace has). Counted on first use where ``describe`` was
        asked not to count them (``counted=False``): its trace must then still be open."""
        if self._counts is None:
            assert self._count is not None
            self._counts, self._count = self._count(), None
        return self._counts

    @counts.setter
    def counts(self, value: dict[str, int]) -> None:
        self._counts, self._count = value, None

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "size_bytes": self.size_bytes,
            "nsys_version": self.product_version,
            "schema_version": self.schema_version,
            "schema_era": self.era,
            "session_start_utc": self.session_start_utc,
            "duration_ns": self.duration_ns,
            "gpus": self.gpus,
            "counts": self.counts,
            "capture": self.capture,
            "system": self.system,
            "diagnostics": self.diagnostics,
            "missing": self.missing,
        }


def _digits(text: str | None) -> int | None:
    """A non-negative decimal integer written in ASCII digits, else None."""
    return int(text) if text and text.isascii() and text.isdigit() and len(text) <= 18 else None


def capture_settings(trace: Trace) -> dict[str, object]:
    """Capture configuration from META_DATA_CAPTURE (nsys 2023+) and what the data itself shows."""
    sch = trace.schema
    meta: list[tuple[str, str]] = []
    if sch.has_column("META_DATA_CAPTURE", "name") and sch.has_column("META_DATA_CAPTURE", "value"):
        rows = trace.rows("SELECT name, value FROM META_DATA_CAPTURE")
        meta = [(str(k), "" if v is None else str(v)) for k, v in rows]
    kv: dict[str, str] = {}
    for k, v in meta:
        kv.setdefault(k, v)
    out: dict[str, object] = {}
    graph_mode = kv.get("PROCESS_0:CUDA_GRAPH_TRACE_OPTIONS:MODE")
    if graph_mode is None and sch.has(S.GRAPH_TRACE):
        graph_mode = "Graph"
    out["cuda_graph_trace"] = graph_mode.lower() if graph_mode else None
    traced = [v for k, v in meta if k == "CAPTURE_EVENT_TYPE"]
    collects = sorted(
        k.split(":", 1)[1][len("COLLECT_") : -len("_TRACE")].lower()
        for k, v in kv.items()
        if k.startswith("PROCESS_0:COLLECT_") and k.endswith("_TRACE") and v == "true"
    )
    out["traced"] = sorted(set(traced)) or None
    out["collect"] = collects or None
    args = sorted(
        (n, v)
        for k, v in kv.items()
        if k.startswith("PROCESS_0:ARGUMENT_") and (n := _digits(k.rsplit("_", 1)[1])) is not None
    )
    command = kv.get("PROCESS_0:COMMAND")
    out["command"] = " ".join([command, *(a for _, a in args)]) if command else None
    out["working_dir"] = kv.get("PROCESS_0:WORKING_DIR")
    out["start_trigger"] = kv.get("START_TRIGGER")
    out["start_delay_ms"] = _digits(kv.get("START_DELAY_MS"))
    out["run_duration_ms"] = _digits(kv.get("RUN_DURATION_MS"))
    out["gpu_memory_usage"] = kv.get("PROCESS_0:COLLECT_GPU_MEMORY_USAGE") == "true" or sch.has(S.GPU_MEMORY_USAGE)
    out["gpu_metrics"] = sch.has(S.GPU_METRICS)
    out["nvtx_domain_filter"] = kv.get("NVTX_OPTIONS:NVTX_DOMAIN_FILTER_STRING") or None
    # A cudaProfilerApi capture range shows as profiler start/stop calls in the API table.
    starts = has_call(trace, ("cuProfilerStart%", "cudaProfilerStart%"))
    out["capture_range"] = "cudaProfilerApi" if starts else "none (whole run)"
    return out


def has_call(trace: Trace, names: tuple[str, ...]) -> bool:
    """Whether the CUDA API table holds a call whose name is LIKE one of ``names`` (SQL patterns). Whether there is
    one, not how many: the first match ends the scan of the API table."""
    sch = trace.schema
    columns = ((S.RUNTIME, "nameId"), (S.STRINGS, "value"), (S.STRINGS, "id"))
    if not all(sch.has_column(table, column) for table, column in columns):
        return False
    like = " OR ".join("value LIKE ?" for _ in names)
    ids = [i for (i,) in trace.rows(f"SELECT id FROM StringIds WHERE typeof(id) = 'integer' AND ({like})", names)]
    if not ids:
        return False
    marks = ",".join(str(int(i)) for i in ids)
    return bool(trace.rows(f"SELECT 1 FROM {S.RUNTIME} WHERE nameId IN ({marks}) LIMIT 1"))


GRAPH_LAUNCH_CALLS = ("cudaGraphLaunch%", "cuGraphLaunch%")


def message_counts(msgs: list[str]) -> dict[str, int]:
    """nsys's diagnostics once each, whitespace folded, in first-seen order, with how often each came (a trace can
    repeat one message hundreds of times, once per process)."""
    counts: dict[str, int] = {}
    for m in msgs:
        key = " ".join(str(m).split())
        counts[key] = counts.get(key, 0) + 1
    return counts


def driver_text(value: str) -> str:
    """The NVIDIA driver version as it is written (``515.43.04``): nsys 2022 and 2023 recorded it as one number of
    seven digits (``5154304``: 3 for the major version, 2 each for the minor and the patch); later versions record
    the dotted text, kept as it is."""
    v = value.strip()
    return f"{v[:3]}.{v[3:5]}.{v[5:]}" if len(v) == 7 and v.isascii() and v.isdigit() else value


def describe(trace: Trace, counted: bool = True) -> TraceInfo:
    """What ``trace`` holds. ``counted=False``: its tables' rows are counted only when ``TraceInfo.counts`` is first
    asked for (a ``count(*)`` reads every page of a table: 61 ms for 2M kernels and 5M calls, before an analysis
    that needs no count); what the trace lacks is told from whether a table has a row at all."""
    sch = trace.schema
    tables = [t for t in COUNTED_TABLES if sch.has(t)]

    def count_rows() -> dict[str, int]:
        return {t: trace.count(t) for t in tables}

    counts = count_rows() if counted else None

    def has_rows(table: str) -> bool:
        if counts is not None:
            return bool(counts.get(table))
        return table in tables and bool(trace.rows(f"SELECT 1 FROM {table} LIMIT 1"))

    start_utc = None
    if sch.has_column("TARGET_INFO_SESSION_START_TIME", "utcTime"):
        r = trace.rows("SELECT utcTime FROM TARGET_INFO_SESSION_START_TIME LIMIT 1")
        start_utc = str(r[0][0]) if r and r[0][0] is not None else None
    duration = None
    if sch.has_column("ANALYSIS_DETAILS", "duration"):
        r = trace.rows("SELECT duration FROM ANALYSIS_DETAILS LIMIT 1")
        duration = r[0][0] if r and isinstance(r[0][0], int) else None
    system: dict[str, str] = {}
    if sch.has_column("TARGET_INFO_SYSTEM_ENV", "name") and sch.has_column("TARGET_INFO_SYSTEM_ENV", "value"):
        wanted = (
            "NvDriverVersion",
            "CudaDriverVersion",
            "Hostname",
            "OsDescription",
            "CpuDescription",
            "CpuCores",
            "LinuxParanoidLevel",
        )
        for name, value in trace.rows(
            f"SELECT name, value FROM TARGET_INFO_SYSTEM_ENV WHERE name IN ({','.join('?' * len(wanted))})", wanted
        ):
            system.setdefault(str(name), str(value))
    diagnostics: list[str] = []
    if sch.has_column(S.DIAGNOSTIC, "severity") and sch.has_column(S.DIAGNOSTIC, "text"):
        diagnostics = [str(t) for (t,) in trace.rows(f"SELECT text FROM {S.DIAGNOSTIC} WHERE severity >= 2")]
    capture = capture_settings(trace) if sch.is_nsys_export() else {}
    info = TraceInfo(
        path=trace.name,
        size_bytes=os.path.getsize(trace.name),
        product_version=sch.product_version,
        schema_version=sch.schema_version,
        era=sch.era,
        session_start_utc=start_utc,
        duration_ns=duration,
        gpus=gpu_rows(trace),
        counts=count_rows if counts is None else counts,
        capture=capture,
        system=system,
        diagnostics=diagnostics,
    )
    graphs = info.capture.get("cuda_graph_trace") == "graph" and has_call(trace, GRAPH_LAUNCH_CALLS)
    launches = not has_rows(S.KERNEL) and has_call(trace, LAUNCH_CALLS)
    info.missing = missing_features(info, sch, graphs, launches, has_rows)
    return info


LAUNCH_CALLS = ("cudaLaunch%", "cuLaunch%", "cudaGraphLaunch%", "cuGraphLaunch%")


def missing_features(
    info: TraceInfo,
    sch: S.Schema,
    graph_launches: bool = False,
    launches: bool = False,
    has_rows: Callable[[str], bool] | None = None,
) -> list[str]:
    """What the trace lacks for a full analysis, each with the capture flag that would add it. ``graph_launches``:
    CUDA graphs were launched (nsys's default graph-level tracing misses the kernels inside them only then);
    ``launches``: the API table holds kernel launches (with no kernel rows, CUDA was traced but no GPU activity
    was collected); ``has_rows``: whether a table has a row (by default, from ``info.counts``)."""
    out = []
    has = has_rows if has_rows is not None else (lambda table: bool(info.counts.get(table)))
    if not has(S.KERNEL):
        if has(S.GRAPH_TRACE):
            out.append(
                "no per-kernel rows: CUDA graphs were traced as whole launches; recapture with --cuda-graph-trace=node"
            )
        elif launches:
            out.append(
                "no CUDA kernels although kernel launches were traced: the GPU's activity was not collected (not "
                "supported on this platform, e.g. WSL 2, or the profiler's injection failed: see the diagnostics)"
            )
        else:
            out.append("no CUDA kernels: capture with --trace=cuda (and check the capture range was hit)")
    elif graph_launches or has(S.GRAPH_TRACE):
        out.append(
            "graph-level capture: kernels inside CUDA graphs are missing; recapture with --cuda-graph-trace=node"
        )
    if not has(S.NVTX):
        out.append("no NVTX ranges: step and request boundaries must be inferred (annotate with NVTX, --trace=nvtx)")
    if not sch.has(S.OSRT):
        out.append("no OS runtime trace (add --trace=osrt to see host-side blocking calls)")
    if sch.era == "legacy":
        out.append(
            f"old export schema ({sch.schema_version or 'unknown version'}): some reports use fallback "
            "labels; re-export with a recent nsys for full detail"
        )
    if not info.gpus:
        out.append("no GPU description table: peak bandwidth and SM count are unknown")
    if any("might have been collected" in d or "dropped" in d.lower() for d in info.diagnostics):
        out.append("profiler reported possibly dropped events (see diagnostics)")
    return out


# The usual benchmark flags of a captured command line (vLLM, SGLang, TensorRT-LLM and llama.cpp benchmarks, ...)
PROMPT_FLAGS = (
    "--prompt-len",
    "--prompt_len",
    "--prompt-length",
    "--prompt_length",
    "--input-len",
    "--input_len",
    "--input-length",
    "--input_length",
    "--isl",
    "--prompt-tokens",
)
OUTPUT_FLAGS = ("--output-len", "--output_len", "--osl", "--max-tokens", "--max_tokens", "--output-tokens")


def workload_shape(command: str | None) -> tuple[int | None, int | None]:
    """(prompt length, output length) read from the captured command line's usual benchmark flags
    (``--isl 512``, ``--prompt-length=2048``, ``--output-len 128`` ...); None where the flag is absent."""
    if not command:
        return None, None
    words = command.split()

    def value(flags: tuple[str, ...]) -> int | None:
        for i, w in enumerate(words):
            name, _, inline = w.partition("=")
            if name in flags:
                text = inline or (words[i + 1] if i + 1 < len(words) else "")
                if text.isascii() and text.isdigit():
                    return int(text)
        return None

    return value(PROMPT_FLAGS), value(OUTPUT_FLAGS)


def prompt_length(command: str | None) -> int | None:
    """The prompt length on a captured command line (tokens per prefill step), or None; a prompt of 0 tokens
    says nothing and is None too."""
    prompt, _ = workload_shape(command)
    return prompt or None
