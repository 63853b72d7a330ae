"""Loaders for what optional capture switches add: GPU metrics (``--gpu-metrics-devices``), device-memory usage
events (``--cuda-memory-usage=true``), CUDA API call chains (``--cudabacktrace``), and the captured command line.

Each returns None (or an empty frame) when the trace lacks the table, so callers need no schema probing.
Column semantics are in ../shared/reference/nsys-sqlite.md (GPU_METRICS, TARGET_INFO_GPU_METRICS,
CUDA_GPU_MEMORY_USAGE_EVENTS, CUDA_CALLCHAINS, CUPTI_ACTIVITY_KIND_RUNTIME.callchainId).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from . import schema as S
from .open import Trace

if TYPE_CHECKING:
    from .open import DType

I64 = pl.Int64
F64 = pl.Float64
STR = pl.Utf8

METRICS_INFO = "TARGET_INFO_GPU_METRICS"
CALLCHAINS = "CUDA_CALLCHAINS"
CAPTURE = "META_DATA_CAPTURE"

# The GPU metrics the report reads, by the names nsys gives them (every --gpu-metrics-set spells them alike:
# "SMs Active [Throughput %]", "DRAM Read Bandwidth [Throughput %]", "Tensor Active [Throughput %]"; older sets
# write "SM Active"). All are percentages of the GPU's peak.
METRIC_PATTERNS: dict[str, re.Pattern[str]] = {
    "sm_active": re.compile(r"^SMs? Active\b.*%", re.IGNORECASE),
    "dram_read": re.compile(r"^DRAM Read\b.*%", re.IGNORECASE),
    "dram_write": re.compile(r"^DRAM Write\b.*%", re.IGNORECASE),
    "tensor_active": re.compile(r"^Tensor (Active|Pipe)\b.*%", re.IGNORECASE),
}
METRIC_KEYS = tuple(METRIC_PATTERNS)

# ENUM_CUDA_MEM_KIND values that occupy device memory: Device, Array, Managed, Device Static, Managed Static
# (Pageable and Pinned are host memory)
DEVICE_MEM_KINDS = (2, 3, 4, 5, 6)
ALLOC_FAILED = 2  # cudaErrorMemoryAllocation and CUDA_ERROR_OUT_OF_MEMORY are both 2


@dataclass(frozen=True)
class GpuMetricSamples:
    """GPU metric samples of one GPU, one row per sample time: ``timestamp`` and the columns of ``names`` (null
    where the set lacks the metric). A sample at ``timestamp`` covers the sampling period that starts there."""

    gpu: int  # the metrics' GPU id (typeId & 0xFF), which is TARGET_INFO_GPU.id / KERNEL.deviceId
    names: dict[str, str]  # key (sm_active, dram_read, dram_write, tensor_active) -> the metric name in the trace
    frame: pl.DataFrame  # timestamp, and one Float64 column per key


def gpu_metric_samples(trace: Trace, gpu: int | None = None) -> GpuMetricSamples | None:
    """The samples of the metrics in ``METRIC_PATTERNS`` for ``gpu`` (the only GPU with metrics when None, or
    when ``gpu`` has none and just one GPU has them). None without GPU metrics."""
    sch = trace.schema
    need = [(METRICS_INFO, c) for c in ("typeId", "metricId", "metricName")]
    need += [(S.GPU_METRICS, c) for c in ("timestamp", "typeId", "metricId", "value")]
    if not all(sch.has_column(t, c) for t, c in need):
        return None
    info = trace.rows(f"SELECT typeId, metricId, metricName FROM {METRICS_INFO}")
    gpus = sorted({int(t) & 0xFF for t, _, _ in info if isinstance(t, int)})
    if not gpus:
        return None
    chosen = gpu if gpu in gpus else (gpus[0] if len(gpus) == 1 else None)
    if chosen is None:
        return None
    wanted: dict[tuple[int, int], str] = {}
    names: dict[str, str] = {}
    for type_id, metric_id, name in sorted(info, key=lambda r: (str(r[2]), r[0], r[1])):
        if not (isinstance(type_id, int) and isinstance(metric_id, int)) or (type_id & 0xFF) != chosen:
            continue
        for key, pat in METRIC_PATTERNS.items():
            if pat.search(str(name)) and names.get(key, str(name)) == str(name):
                names[key] = str(name)
                wanted[(type_id, metric_id)] = key
    if not wanted:
        return None
    cond = " OR ".join(f"(typeId = {int(t)} AND metricId = {int(m)})" for t, m in sorted(wanted))
    raw = trace.read_table(S.GPU_METRICS, {"timestamp": I64, "typeId": I64, "metricId": I64, "value": F64}, cond)
    keys = pl.DataFrame(
        {"typeId": [t for t, _ in wanted], "metricId": [m for _, m in wanted], "key": list(wanted.values())},
        schema={"typeId": I64, "metricId": I64, "key": STR},
    )
    long = raw.join(keys, on=["typeId", "metricId"], how="inner").drop_nulls(["timestamp", "value"])
    wide = (
        long.group_by("timestamp", "key").agg(pl.col("value").mean()).pivot("key", index="timestamp", values="value")
        if long.height
        else pl.DataFrame(schema={"timestamp": I64})
    )
    for key in METRIC_KEYS:
        if key not in wide.columns:
            wide = wide.with_columns(pl.lit(None, F64).alias(key))
    wide = wide.select("timestamp", *(pl.col(k).cast(F64) for k in METRIC_KEYS)).sort("timestamp")
    return GpuMetricSamples(chosen, names, wide)


MEMORY_SCHEMA: dict[str, DType] = {
    "seq": I64,
    "start": I64,
    "deviceId": I64,
    "pid": I64,
    "bytes": I64,
    "memKind": I64,
    "op": I64,
    "correlationId": I64,
}


def memory_usage_events(trace: Trace) -> pl.DataFrame | None:
    """Device-memory allocations and frees (``--cuda-memory-usage=true``), in recorded order (``seq``: rows at one
    timestamp keep the order nsys wrote them in): seq, start, deviceId, pid, bytes, memKind, op (0 allocation,
    1 deallocation), correlationId. None without the table."""
    t = S.GPU_MEMORY_USAGE
    cols = ("start", "deviceId", "bytes", "memKind", "memoryOperationType", "globalPid")
    if not all(trace.schema.has_column(t, c) for c in cols):
        return None
    corr = "correlationId" if trace.schema.has_column(t, "correlationId") else "NULL"
    return trace.frame(
        f"SELECT rowid, start, deviceId, {S.pid_sql('globalPid')}, bytes, memKind, memoryOperationType, {corr} "
        f"FROM {t} WHERE typeof(start) = 'integer' AND typeof(bytes) = 'integer' ORDER BY start, rowid",
        MEMORY_SCHEMA,
    )


def allocation_failures(trace: Trace) -> pl.DataFrame:
    """CUDA allocation calls that failed for lack of memory (return value 2): start, name, pid."""
    schema: dict[str, DType] = {"start": I64, "name": STR, "pid": I64}
    if not all(trace.schema.has_column(S.RUNTIME, c) for c in ("start", "nameId", "returnValue", "globalTid")):
        return pl.DataFrame(schema=schema)
    return trace.frame(
        f"SELECT r.start, s.value, {S.pid_sql('r.globalTid')} FROM {S.RUNTIME} r JOIN {S.STRINGS} s "
        f"ON s.id = r.nameId WHERE r.returnValue = {ALLOC_FAILED} AND (s.value LIKE 'cudaMalloc%' OR "
        "s.value LIKE 'cuMemAlloc%' OR s.value LIKE 'cuMemCreate%' OR s.value LIKE 'cudaMallocAsync%') "
        "ORDER BY r.start",
        schema,
    )


@dataclass(frozen=True)
class CallChains:
    """CUDA API calls with a host call stack (``--cudabacktrace``) and the stacks' frames.

    calls: start, end, dur (of the API call itself where its CUPTI row is found, else of the backtrace row), name
           (the API as the backtrace row names it, e.g. cudaStreamSynchronize), pid, tid, correlationId, chain
    frames: chain, depth (0 = innermost), symbol, module, unresolved (bool)"""

    calls: pl.DataFrame
    frames: pl.DataFrame


def api_callchains(trace: Trace) -> CallChains | None:
    """The call chains of CUDA API calls; None when the trace has none."""
    sch = trace.schema
    need = [(S.RUNTIME, c) for c in ("start", "end", "nameId", "globalTid", "correlationId", "callchainId")]
    need += [(CALLCHAINS, c) for c in ("id", "symbol", "module", "stackDepth")]
    if not all(sch.has_column(t, c) for t, c in need):
        return None
    bt = trace.frame(
        f"SELECT r.start, r.end, s.value, r.globalTid, r.correlationId, r.callchainId FROM {S.RUNTIME} r "
        f"JOIN {S.STRINGS} s ON s.id = r.nameId WHERE r.callchainId IS NOT NULL AND typeof(r.start) = 'integer' "
        "AND typeof(r.end) = 'integer' ORDER BY r.start, r.rowid",
        {"start": I64, "end": I64, "name": STR, "globalTid": I64, "correlationId": I64, "chain": I64},
    )
    if bt.is_empty():
        return None
    # the API call itself: the row of the same thread and correlation id without a call chain (the CUPTI record;
    # the backtrace row spans it and the stack walk)
    cls = f"AND eventClass != {S.CUDA_BACKTRACE_EVENT_CLASS}" if sch.has_column(S.RUNTIME, "eventClass") else ""
    api = trace.frame(
        f"SELECT globalTid, correlationId, min(end - start) FROM {S.RUNTIME} WHERE callchainId IS NULL {cls} "
        f"AND correlationId IN (SELECT correlationId FROM {S.RUNTIME} WHERE callchainId IS NOT NULL) "
        "GROUP BY globalTid, correlationId",
        {"globalTid": I64, "correlationId": I64, "api_dur": I64},
    )
    mask = 1 << 24
    calls = (
        bt.join(api, on=["globalTid", "correlationId"], how="left", maintain_order="left")
        .with_columns(
            pl.coalesce("api_dur", pl.col("end") - pl.col("start")).alias("dur"),
            ((pl.col("globalTid") // mask) % mask).alias("pid"),
            (pl.col("globalTid") % mask).alias("tid"),
        )
        .select("start", "end", "dur", "name", "pid", "tid", "correlationId", "chain")
    )
    unresolved = "c.unresolved" if sch.has_column(CALLCHAINS, "unresolved") else "0"
    frames = trace.frame(
        f"SELECT c.id, c.stackDepth, sy.value, mo.value, coalesce({unresolved}, 0) FROM {CALLCHAINS} c "
        f"LEFT JOIN {S.STRINGS} sy ON sy.id = c.symbol LEFT JOIN {S.STRINGS} mo ON mo.id = c.module "
        f"WHERE c.id IN (SELECT callchainId FROM {S.RUNTIME} WHERE callchainId IS NOT NULL) "
        "ORDER BY c.id, c.stackDepth",
        {"chain": I64, "depth": I64, "symbol": STR, "module": STR, "unresolved": I64},
    ).with_columns(pl.col("unresolved").cast(pl.Boolean))
    return CallChains(calls, frames)


def capture_argv(trace: Trace) -> tuple[list[str] | None, str | None]:
    """The profiled command line as recorded (``PROCESS_0:COMMAND`` and ``ARGUMENT_N``, in order) and its working
    directory; (None, None) when the trace does not record them."""
    if not (trace.schema.has_column(CAPTURE, "name") and trace.schema.has_column(CAPTURE, "value")):
        return None, None
    kv: dict[str, str] = {}
    for k, v in trace.rows(f"SELECT name, value FROM {CAPTURE} WHERE name LIKE 'PROCESS_0:%'"):
        kv.setdefault(str(k), "" if v is None else str(v))
    command = kv.get("PROCESS_0:COMMAND")
    if not command:
        return None, kv.get("PROCESS_0:WORKING_DIR") or None
    args: list[tuple[int, str]] = []
    for k, v in kv.items():
        tail = k.rsplit("_", 1)[-1]
        if k.startswith("PROCESS_0:ARGUMENT_") and tail.isascii() and tail.isdigit() and len(tail) <= 9:
            args.append((int(tail), v))
    return [command, *(v for _, v in sorted(args))], kv.get("PROCESS_0:WORKING_DIR") or None
