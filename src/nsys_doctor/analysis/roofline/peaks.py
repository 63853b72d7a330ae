"""GPU peaks: the shipped GPU table, lookup by name, and the peaks a roofline is measured against."""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

from ...errors import UsageError


@dataclass(frozen=True)
class GpuSpec:
    """One row of ``data/gpus.toml``: peak DRAM bandwidth (B/s) and dense tensor-core TFLOP/s per dtype."""

    name: str
    match: str
    bandwidth_Bps: float
    tflops: dict[str, float]


@lru_cache(maxsize=1)
def gpu_table() -> tuple[GpuSpec, ...]:
    """The shipped GPU table, in file order (first match wins)."""
    doc = tomllib.loads((files("nsys_doctor") / "data" / "gpus.toml").read_text(encoding="utf-8"))
    out = []
    for row in doc["gpu"]:
        tflops = {d: float(row[f"{d}_tflops"]) for d in ("bf16", "fp16", "fp8") if f"{d}_tflops" in row}
        out.append(GpuSpec(row["name"], row["match"], float(row["memory_bandwidth_TBps"]) * 1e12, tflops))
    return tuple(out)


def lookup_gpu(name: str | None) -> GpuSpec | None:
    """The table entry for a GPU name as the trace records it (``NVIDIA H100 80GB HBM3``), or None."""
    if not name:
        return None
    return next((g for g in gpu_table() if re.search(g.match, name, re.IGNORECASE)), None)


@dataclass(frozen=True)
class Peaks:
    """The ceilings: peak DRAM bandwidth and dense FLOP/s for the compute dtype, each with where it came from."""

    gpu: str | None
    bandwidth_Bps: float | None
    bandwidth_source: str
    flops: float | None  # FLOP/s
    flops_dtype: str
    flops_source: str
    sm_count: int | None = None
    l2_bytes: int | None = None

    @property
    def ridge(self) -> float | None:
        """FLOPs per byte above which a kernel is compute-bound."""
        return self.flops / self.bandwidth_Bps if self.flops and self.bandwidth_Bps else None

    def to_dict(self) -> dict[str, object]:
        return {
            "gpu": self.gpu,
            "bandwidth_Bps": self.bandwidth_Bps,
            "bandwidth_source": self.bandwidth_source,
            "flops": self.flops,
            "flops_dtype": self.flops_dtype,
            "flops_source": self.flops_source,
            "ridge_flops_per_byte": self.ridge,
            "sm_count": self.sm_count,
            "l2_bytes": self.l2_bytes,
        }


def resolve_peaks(
    gpu: dict[str, Any] | None,
    compute_dtype: str = "bf16",
    peak_bw_Bps: float | None = None,
    peak_flops: float | None = None,
) -> Peaks:
    """Peaks for a GPU row of ``trace.tables.gpus`` (or None): bandwidth from ``peak_bw_Bps`` (--peak-bw), else
    the trace's ``memoryBandwidth``, else the shipped table; FLOP/s from ``peak_flops`` (--peak-flops), else the
    table's dense peak for ``compute_dtype``."""
    for value, option in ((peak_bw_Bps, "--peak-bw"), (peak_flops, "--peak-flops")):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise UsageError(f"{option} must be a positive, finite rate, not {value!r}", "e.g. --peak-bw 3.35")
    gpu = gpu or {}
    name = gpu.get("name")
    spec = lookup_gpu(name if isinstance(name, str) else None)
    trace_bw = _positive(gpu.get("memoryBandwidth"))
    if peak_bw_Bps:
        bw, bw_src = float(peak_bw_Bps), "--peak-bw"
    elif trace_bw is not None:
        bw, bw_src = trace_bw, "the trace (TARGET_INFO_GPU.memoryBandwidth)"
    elif spec is not None:
        bw, bw_src = spec.bandwidth_Bps, f"the GPU table ({spec.name} datasheet)"
    else:
        bw, bw_src = None, "unknown (pass --peak-bw)"
    if peak_flops:
        fl, fl_src = float(peak_flops), "--peak-flops"
    elif spec is not None and compute_dtype in spec.tflops:
        fl, fl_src = spec.tflops[compute_dtype] * 1e12, f"the GPU table ({spec.name} datasheet)"
    else:
        why = "no such GPU in the table" if spec is None else f"no dense {compute_dtype} peak for {spec.name}"
        fl, fl_src = None, f"unknown ({why}; pass --peak-flops)"
    sm = _positive(gpu.get("smCount"))
    l2 = _positive(gpu.get("l2CacheSize"))
    return Peaks(name, bw, bw_src, fl, compute_dtype, fl_src, int(sm) if sm else None, int(l2) if l2 else None)


def _positive(value: object) -> float | None:
    """A trace's number if it is a positive, finite one (a damaged or empty field is treated as unknown)."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None
