"""The window of one trace as the exports write it (``TraceSession.export_data()``): ``ExportData`` and its builder.

Session layer: it gathers the session's frames, structure and steps for the window and resolves names; the
writers in ``report/export.py`` turn it into Chrome trace-event JSON or Parquet and never read the trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from .session import TraceSession

PID_MASK = 1 << 24


@dataclass(frozen=True)
class ExportData:
    """The window of one trace, as the exports write it. Times are integer nanoseconds of the trace's clock.

    kernels:  start, end, dur, deviceId, streamId, correlationId, pid, name (demangled), short, gridX/Y/Z,
              blockX/Y/Z, family, category, op (and whatever else the session's frame holds)
    api:      start, end, dur, pid, tid, correlationId, name (as recorded, e.g. ``cudaLaunchKernel_v7000``)
    memcpy:   start, end, dur, bytes, copyKind, copy_kind (label), srcKind, dstKind, correlationId, pid, deviceId,
              streamId
    memset:   start, end, dur, bytes, memKind, correlationId, pid, deviceId, streamId
    graphs:   graph-level launches on the GPU (``--cuda-graph-trace=graph``): start, end, deviceId, streamId,
              correlationId, pid
    nvtx:     start, end, eventType, pid, tid, text, domain
    steps:    the session's step table (idx, kind, start, end, wall, gpu_time, kernels, launches, gpu_start,
              gpu_end)
    requests: index, start, end, gpu_start, gpu_end, warmup, reason, prefill_steps, decode_steps, iterations
    phases:   kind, start, end, detail
    """

    kernels: pl.DataFrame
    api: pl.DataFrame
    memcpy: pl.DataFrame
    memset: pl.DataFrame
    graphs: pl.DataFrame
    nvtx: pl.DataFrame
    steps: pl.DataFrame
    requests: pl.DataFrame
    phases: pl.DataFrame
    window: dict[str, object]
    source: str = ""
    devices: dict[int, str] = field(default_factory=dict)  # deviceId -> GPU name
    processes: dict[int, str] = field(default_factory=dict)  # pid -> process name
    threads: dict[tuple[int, int], str] = field(default_factory=dict)  # (pid, tid) -> thread name


def build_export_data(session: TraceSession) -> ExportData:
    """The session's window as the exports write it: kernels (classified, with block sizes), API calls, memcpys,
    memsets and graph launches that start in the window (as ``TraceSession.kernels()`` counts them), the NVTX
    ranges, requests and phases that overlap it, and the window's steps."""
    import polars as pl

    from .trace.extras import process_names, thread_names
    from .trace.tables import gpus

    trace, f, w = session.trace, session.frames, session.window
    in_window = (pl.col("start") >= w.start) & (pl.col("start") <= w.end)
    overlaps = (pl.col("start") <= w.end) & (pl.col("end").is_null() | (pl.col("end") >= w.start))
    pid = ((pl.col("globalPid") // PID_MASK) % PID_MASK).alias("pid")
    order = ["start", "correlationId"]
    labels = trace.schema.enum_labels("ENUM_CUDA_MEMCPY_OPER")
    memcpy = (
        f.memcpy.filter(in_window)
        .with_columns(
            pl.col("copyKind").replace_strict(labels, default="Unknown", return_dtype=pl.Utf8).alias("copy_kind"), pid
        )
        .sort(order, maintain_order=True)
    )
    nvtx = (
        f.nvtx.filter(overlaps)
        .with_columns(
            ((pl.col("globalTid") // PID_MASK) % PID_MASK).alias("pid"), (pl.col("globalTid") % PID_MASK).alias("tid")
        )
        .sort(["start", "globalTid"], maintain_order=True)
    )
    structure = session.structure
    req_schema = {
        "index": pl.Int64,
        "start": pl.Int64,
        "end": pl.Int64,
        "gpu_start": pl.Int64,
        "gpu_end": pl.Int64,
        "warmup": pl.Boolean,
        "reason": pl.Utf8,
        "prefill_steps": pl.Int64,
        "decode_steps": pl.Int64,
        "iterations": pl.Int64,
    }
    requests = pl.DataFrame(
        [{c: getattr(r, c) for c in req_schema} for r in structure.requests], schema=req_schema
    ).filter(overlaps)
    ph_schema = {"kind": pl.Utf8, "start": pl.Int64, "end": pl.Int64, "detail": pl.Utf8}
    phases = pl.DataFrame([{c: getattr(p, c) for c in ph_schema} for p in structure.phases], schema=ph_schema)
    table = gpus(trace)
    devices = {int(d): str(n) for d, n in table.select("deviceId", "name").iter_rows() if d is not None and n}
    return ExportData(
        kernels=session.kernels(blocks=True),
        api=session.api().sort([*order, "globalTid", "end"], maintain_order=True),  # ties in a fixed order
        memcpy=memcpy,
        memset=f.memset.filter(in_window).with_columns(pid).sort(order, maintain_order=True),
        graphs=f.graph_launches.filter(in_window).with_columns(pid).sort(order, maintain_order=True),
        nvtx=nvtx,
        steps=session.step_set.table,
        requests=requests,
        phases=phases.filter(overlaps),
        window=w.to_dict(),
        source=session.path.name,
        devices=devices,
        processes=process_names(trace),
        threads=thread_names(trace),
    )
