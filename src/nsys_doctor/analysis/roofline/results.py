"""The result types (per shape, per step, per phase, the whole roofline), ratings and thresholds."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..findings import Finding
from ..model import Model
from .peaks import Peaks

NEAR_LIMIT = 0.80  # rule of thumb: above this share of peak bandwidth there is little headroom left
HEADROOM = 0.70  # below it, a better GEMV kernel can win
SMALL_GEMV_BYTES = 5_000_000  # GEMVs under 5 MB do not reach peak bandwidth (launch, tail and ramp effects)
COMPUTE_GOOD = 0.70  # tuned dense GEMMs reach about 70-80% of the datasheet's dense peak
CONSISTENT = 0.90  # below this share of instances on one kernel signature, position matching is suspect


@dataclass(frozen=True)
class ShapeResult:
    phase: str
    name: str
    label: str
    M: int
    K: int
    N: int | None  # tokens per instance (1 for decode GEMVs; the prompt length for prefill GEMMs; None: unknown)
    dtype: str
    weight_bytes: int  # per instance
    per_step: int  # instances per step
    instances: int
    kernels: tuple[str, ...]  # kernel signatures, most frequent first ("A + splitKreduce_kernel")
    p50_ns: int
    mean_ns: float
    achieved_Bps: float  # weight bytes / p50
    efficiency: float | None  # achieved / peak bandwidth
    efficiency_mean: float | None  # weight bytes / mean / peak
    flops: float | None  # per instance, 2 M N K
    intensity: float | None  # FLOPs per byte moved (weights + activations in and out)
    bound: str | None  # "memory", "compute" or None (unknown)
    achieved_flops: float | None  # FLOP/s at p50
    flops_efficiency: float | None
    consistency: float  # share of instances on the most common kernel signature
    tile_check: str  # "agrees" or "unchecked"
    rating: str  # a key of RATINGS

    @property
    def verdict(self) -> str:
        return RATINGS[self.rating]

    @property
    def small(self) -> bool:
        return self.weight_bytes < SMALL_GEMV_BYTES

    @property
    def time_per_step_ns(self) -> float:
        return self.mean_ns * self.per_step

    def to_dict(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "shape": self.name,
            "label": self.label,
            "M": self.M,
            "K": self.K,
            "N": self.N,
            "dtype": self.dtype,
            "weight_bytes": self.weight_bytes,
            "per_step": self.per_step,
            "instances": self.instances,
            "kernels": list(self.kernels),
            "p50_ns": self.p50_ns,
            "mean_ns": self.mean_ns,
            "time_per_step_ns": self.time_per_step_ns,
            "achieved_Bps": self.achieved_Bps,
            "efficiency": self.efficiency,
            "efficiency_mean": self.efficiency_mean,
            "small": self.small,
            "flops": self.flops,
            "intensity": self.intensity,
            "bound": self.bound,
            "achieved_flops": self.achieved_flops,
            "flops_efficiency": self.flops_efficiency,
            "consistency": self.consistency,
            "tile_check": self.tile_check,
            "rating": self.rating,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class MatchFit:
    """How the kernels were matched to shapes and how well they fit."""

    method: str  # "position" or "mapping"
    layout: str
    layout_detail: str  # "16 layers x 4 linears (qkv, o, gate_up, down) + lm_head = 65"
    expected_per_step: int
    observed: dict[int, int]  # linear kernels per step -> number of steps
    steps_fit: int
    steps_total: int
    reductions: int  # split-K reductions added to their GEMV
    consistency: float
    tiles_agree: tuple[str, ...]
    tiles_unchecked: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def quality(self) -> str:
        if self.steps_fit == self.steps_total and self.consistency >= 0.999:
            return "exact"
        return "good" if self.steps_fit >= 0.9 * self.steps_total and self.consistency >= CONSISTENT else "partial"

    def summary(self) -> str:
        how = "by position" if self.method == "position" else "by the --mapping file"
        parts = [
            f"matched {how}, layout {self.layout} ({self.layout_detail})",
            f"{self.steps_fit} of {self.steps_total} steps fit",
            f"{100 * self.consistency:.1f}% of instances on their shape's usual kernel",
        ]
        if self.reductions:
            parts.append(f"{self.reductions:,} split-K reductions added to their GEMV")
        if self.tiles_agree or self.tiles_unchecked:
            n = len(self.tiles_agree)
            tile = f"grid check: {n} shape{'s' if n != 1 else ''} agree{'s' if n == 1 else ''}"
            if self.tiles_unchecked:
                tile += f", {len(self.tiles_unchecked)} not checkable ({', '.join(self.tiles_unchecked)})"
            parts.append(tile)
        return "; ".join(parts) + f" (fit: {self.quality})"

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "layout": self.layout,
            "layout_detail": self.layout_detail,
            "expected_per_step": self.expected_per_step,
            "observed_per_step": {str(k): v for k, v in sorted(self.observed.items())},
            "steps_fit": self.steps_fit,
            "steps_total": self.steps_total,
            "reductions": self.reductions,
            "consistency": self.consistency,
            "tiles_agree": list(self.tiles_agree),
            "tiles_unchecked": list(self.tiles_unchecked),
            "quality": self.quality,
            "summary": self.summary(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class StepResult:
    """The whole step against the speed of light."""

    bytes_per_step: int
    linear_bytes: int  # weight bytes of the matched shapes per step (bytes_per_step unless a mapping is partial)
    gpu_time_p50_ns: int | None  # sum of kernel durations per step (phases.find_steps), matched steps
    wall_p50_ns: int | None  # step wall time (the step's range), for comparison
    gpu_time_mean_ns: float | None
    achieved_Bps: float | None  # bytes / p50 step GPU time
    efficiency: float | None
    sol_ns: float | None  # bytes / peak bandwidth
    linear_time_ns: float  # mean per step, linear kernels (with their reductions)
    linear_share: float | None  # of the mean step GPU time
    linear_Bps: float | None
    linear_efficiency: float | None
    flops_per_step: float | None
    linear_flops: float | None  # FLOP/s over the linear time
    verdict: str

    def to_dict(self) -> dict[str, object]:
        return {
            "bytes_per_step": self.bytes_per_step,
            "linear_bytes": self.linear_bytes,
            "gpu_time_p50_ns": self.gpu_time_p50_ns,
            "wall_p50_ns": self.wall_p50_ns,
            "gpu_time_mean_ns": self.gpu_time_mean_ns,
            "achieved_Bps": self.achieved_Bps,
            "efficiency": self.efficiency,
            "speed_of_light_ns": self.sol_ns,
            "linear_time_ns": self.linear_time_ns,
            "linear_share": self.linear_share,
            "linear_Bps": self.linear_Bps,
            "linear_efficiency": self.linear_efficiency,
            "flops_per_step": self.flops_per_step,
            "linear_flops": self.linear_flops,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class PhaseResult:
    phase: str  # "decode" or "prefill"
    tokens: int | None  # tokens per step the GEMMs run on (None: unknown)
    tokens_source: str
    fit: MatchFit
    shapes: tuple[ShapeResult, ...]
    step: StepResult

    def shape(self, name: str) -> ShapeResult:
        return next(s for s in self.shapes if s.name == name)

    def to_dict(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "tokens": self.tokens,
            "tokens_source": self.tokens_source,
            "fit": self.fit.to_dict(),
            "shapes": [s.to_dict() for s in self.shapes],
            "step": self.step.to_dict(),
        }


@dataclass(frozen=True)
class Roofline:
    model: Model
    peaks: Peaks
    decode: PhaseResult | None
    prefill: PhaseResult | None
    steps_source: str
    trace: dict[str, object] = field(default_factory=dict)
    window: dict[str, object] | None = None
    notes: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()  # roofline_findings(self), computed once by roofline()

    @property
    def phases(self) -> list[PhaseResult]:
        return [p for p in (self.decode, self.prefill) if p is not None]

    def to_dict(self) -> dict[str, object]:
        """The JSON payload of `roofline` (docs/report-json.md); report/serialize.py adds the envelope."""
        return {
            "trace": self.trace,
            "window": self.window,
            "steps_source": self.steps_source,
            "model": self.model.to_dict(),
            "peaks": self.peaks.to_dict(),
            "decode": self.decode.to_dict() if self.decode else None,
            "prefill": self.prefill.to_dict() if self.prefill else None,
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
        }


_NVJET_TILE = re.compile(r"nvjet_[^_]+_[^_]+_(\d+)x(\d+)_\d+x\d+_(\d+)x(\d+)_")


def tile_check(short: str, tiles: int, m: int, n: int) -> str:
    """Whether an nvjet kernel's grid can have computed an ``m x n`` output: ``agrees``, ``unchecked`` (fewer
    CTAs than tiles, as persistent kernels launch, or not an nvjet kernel) or ``contradicts`` (more CTAs than the
    output has tiles, and not a split-K kernel: the shape is smaller than what ran).

    An nvjet name carries the CTA tile (``nvjet_sm90_tst_64x8_...``: 64 rows of M by 8 columns of N, the small
    side being the tokens) and the cluster shape. A non-persistent grid has one CTA per output tile, rounded up
    to whole clusters, times the split-K factor. A shape larger than what ran is left to the bandwidth check."""
    mt = _NVJET_TILE.search(short or "")
    if mt is None or tiles <= 0:
        return "unchecked"
    a, b, cx, cy = (int(x) for x in mt.groups())
    if b <= 16 < a:
        orientations = [(a, b)]
    elif a <= 16 < b:
        orientations = [(b, a)]
    else:
        orientations = [(a, b), (b, a)]
    split_k = "splitk" in short.lower()
    verdicts = []
    for tm, tn in orientations:
        rows, cols = math.ceil(m / tm), math.ceil(n / tn)
        low = rows * cols
        cr, cc = (cx, cy) if (tm, tn) == (a, b) else (cy, cx)
        high = math.ceil(rows / cr) * cr * math.ceil(cols / cc) * cc
        factors = range(1, 65) if split_k else (1,)
        if any(k * low <= tiles <= k * high for k in factors):
            verdicts.append("agrees")
        elif tiles < low:
            verdicts.append("unchecked")
        else:
            verdicts.append("contradicts")
    for v in ("agrees", "unchecked"):
        if v in verdicts:
            return v
    return "contradicts"


RATINGS: dict[str, str] = {
    "near-limit": "80% of peak bandwidth or more: little headroom, fewer bytes (quantization) or batching is the path",
    "some-headroom": "70-80% of peak bandwidth",
    "headroom": "under 70% of peak bandwidth: a better-tuned or custom GEMV kernel can win",
    "small": "under 5 MB: small GEMVs stay below peak bandwidth (launch and ramp-up dominate), as expected",
    "compute-near-peak": "compute-bound at 70% of dense peak or more: close to what tuned GEMMs reach",
    "compute-headroom": "compute-bound under 70% of dense peak: other tile configurations or FP8 can win",
    "unknown-peak": "the peak is unknown: pass --peak-bw / --peak-flops",
}
