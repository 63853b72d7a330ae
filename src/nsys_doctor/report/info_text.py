"""Renderers for ``TraceInfo``: a readable terminal summary and JSON (``"kind": "info"``)."""

from __future__ import annotations

from ..trace.meta import FRIENDLY, TraceInfo, driver_text, message_counts
from ..units import format_bytes, format_ns, scalar_int
from .serialize import dumps


def render_info(info: TraceInfo) -> str:
    lines = [f"Trace     {info.path} ({format_bytes(info.size_bytes)})"]
    lines.append(
        f"nsys      {info.product_version or 'unknown'} (export schema {info.schema_version or 'unknown'}, {info.era})"
    )
    if info.session_start_utc or info.duration_ns is not None:
        lines.append(f"Session   started {info.session_start_utc or '?'} UTC, lasted {format_ns(info.duration_ns)}")
    for g in info.gpus:
        bw = g.get("memoryBandwidth")
        mem = g.get("totalMemory")
        parts = [f"GPU {g['deviceId']}     {g.get('name') or 'unknown'}"]
        if g.get("smCount"):
            parts.append(f"{g['smCount']} SMs")
        if mem:
            parts.append(f"{scalar_int(mem) / 2**30:.1f} GiB")
        if bw:
            parts.append(f"peak DRAM {scalar_int(bw) / 1e12:.3f} TB/s")
        lines.append(", ".join(parts))
    if info.system:
        s = info.system
        drv = ", ".join(
            x
            for x in (
                f"driver {driver_text(s['NvDriverVersion'])}" if "NvDriverVersion" in s else "",
                f"CUDA {int(s['CudaDriverVersion']) // 1000}.{int(s['CudaDriverVersion']) % 1000 // 10}"
                if s.get("CudaDriverVersion", "").isdigit()
                else "",
                s.get("OsDescription", ""),
            )
            if x
        )
        if drv:
            lines.append(f"System    {drv}")
    lines.append("Counts")
    for table, n in info.counts.items():
        lines.append(f"  {FRIENDLY.get(table, table):<32} {n:>12,}")
    cap = info.capture
    if cap:
        lines.append("Capture")
        if cap.get("command"):
            lines.append(f"  command            {cap['command']}")
        lines.append(f"  CUDA graph trace   {cap.get('cuda_graph_trace') or 'unknown'}")
        lines.append(f"  capture range      {cap.get('capture_range')}")
        traced = cap.get("collect") or cap.get("traced")
        if traced:
            lines.append(f"  traced             {', '.join(traced)}")  # type: ignore[arg-type]
        extras = [name for name in ("gpu_memory_usage", "gpu_metrics") if cap.get(name)]
        if extras:
            lines.append(f"  extras             {', '.join(e.replace('_', ' ') for e in extras)}")
    if info.diagnostics:
        # once each, with how often (nsys repeats a message per process: 28 "No NVTX events collected" in one trace)
        lines.append("Diagnostics")
        lines.extend(f"  {d}" + (f" (x{n})" if n > 1 else "") for d, n in message_counts(info.diagnostics).items())
    if info.missing:
        lines.append("Missing")
        lines.extend(f"  - {m}" for m in info.missing)
    return "\n".join(lines) + "\n"


def render_info_json(info: TraceInfo) -> str:
    """``info --format json``: the trace's description under ``info``."""
    return dumps("info", {"info": info.to_dict()})
