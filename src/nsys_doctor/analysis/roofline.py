"""Speed of light: achieved memory bandwidth and compute per linear-layer shape, against the GPU's peaks.

Inside every step found by ``phases.find_steps`` the linear-layer kernels (the ``gemv`` and ``gemm`` families
of the op rules) run in layer order: QKV, O, gate/up, down per layer, then the LM head. ``roofline`` matches
them to the model's shapes (``analysis/model.py``):

- **by position** (the default): a step must run exactly ``layers x linears per layer + final`` linear kernels;
  of the model's candidate layouts (fused or separate QKV and gate/up) the one that fits most steps is used, the
  k-th kernel of a step is the k-th shape of the layout, and steps with another count are left out;
- **by an explicit mapping** (``--mapping FILE``): ``[[map]]`` tables with ``kernel`` (a regex searched in the
  short and demangled names), optional ``grid`` (``XxYxZ``) and ``shape``; a step fits when it runs every shape
  as often as the model says.

A split-K reduction (op rule "linear split-K reduction", e.g. cuBLASLt's ``splitKreduce_kernel``) finishes the
GEMV before it, so its time is added to that instance. The fit is checked three ways, and a model that does not
fit the trace raises ``UsageError`` instead of printing wrong numbers: the kernel count per step, the grid of
cuBLASLt ``nvjet`` kernels against the shape (tiles x tile rows must cover M, unless split-K or persistent), and
physics (no shape may beat the GPU's peak bandwidth or FLOP/s by more than ``IMPOSSIBLE``).

Per shape: ``M x K``, weight bytes, kernels, instances, p50 and mean time (nearest-rank, ``distribution.py``),
achieved bandwidth = weight bytes / p50 time and its share of peak; with a token count ``N`` (prefill GEMMs)
FLOPs = ``2 x M x N x K``, arithmetic intensity against the ridge point and achieved TFLOP/s. Per phase: weight
bytes per token / step GPU time, and the speed-of-light step time (bytes / peak bandwidth).

Pure functions over polars frames; ``gpu_table`` reads the shipped ``data/gpus.toml`` once.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import polars as pl

from .. import JSON_SCHEMA
from ..errors import UsageError
from ..units import format_bytes, format_ns
from .distribution import percentile, percentile_expr
from .findings import CATALOGUE
from .model import DTYPES, Layout, LinearShape, Model
from .ops import OpRule, classify, label_frame
from .phases import Steps, assign_to_steps, launched_kernels

LINEAR_FAMILIES = ("gemv", "gemm")
SPLIT_K_OP = "(?i)split-?k"  # searched in the op rule's name ("linear split-K reduction")

NEAR_LIMIT = 0.80  # rule of thumb: above this share of peak bandwidth there is little headroom left
HEADROOM = 0.70  # below it, a better GEMV kernel can win
SMALL_GEMV_BYTES = 5_000_000  # GEMVs under 5 MB do not reach peak bandwidth (launch, tail and ramp effects)
COMPUTE_GOOD = 0.70  # tuned dense GEMMs reach about 70-80% of the datasheet's dense peak
IMPOSSIBLE = 1.20  # a shape "faster" than 1.2x peak means the model's shapes are not what ran
CONSISTENT = 0.90  # below this share of instances on one kernel signature, position matching is suspect


# ------------------------------------------------------------------------------------------------ GPU peaks


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


# ------------------------------------------------------------------------------------------------ mapping file


@dataclass(frozen=True)
class MapRule:
    """``[[map]]``: kernels whose short or demangled name matches ``kernel`` (and whose grid is ``grid``) run
    ``shape``."""

    kernel: str
    shape: str
    grid: str | None = None
    source: str = ""  # the mapping file, for errors


def parse_mapping(text: str, source: str) -> list[MapRule]:
    """Parse and validate a mapping file (``[[map]]`` tables with ``kernel``, ``shape`` and optional ``grid``)."""
    hint = "write [[map]] tables with kernel = '<regex>', shape = '<shape name>' and optionally grid = 'XxYxZ'"
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"mapping file {source} is not valid TOML: {exc}", hint) from exc
    except RecursionError as exc:
        raise UsageError(f"mapping file {source} is nested too deeply to be a mapping file", hint) from exc
    tables = doc.get("map")
    if set(doc) - {"map"} or not isinstance(tables, list) or not tables:
        extra = sorted(set(doc) - {"map"})
        what = f"unknown top-level key(s) {', '.join(extra)}" if extra else "expected [[map]] tables"
        raise UsageError(f"mapping file {source}: {what}", hint)
    out = []
    for i, t in enumerate(tables, start=1):
        where = f"mapping file {source}, map {i}"
        if not isinstance(t, dict):
            raise UsageError(f"{where}: not a table", hint)
        for key in ("kernel", "shape"):
            if key not in t:
                raise UsageError(f"{where}: missing {key}", hint)
            if not isinstance(t[key], str) or not t[key].strip():
                raise UsageError(f"{where}: {key} must be a non-empty string, not {t[key]!r}", hint)
        if set(t) - {"kernel", "shape", "grid"}:
            raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(set(t) - {'kernel', 'shape', 'grid'}))}", hint)
        try:
            re.compile(t["kernel"])
        except (re.error, OverflowError, RecursionError, ValueError) as exc:
            k = t["kernel"]
            shown = repr(k) if len(k) <= 80 else f"{k[:77]!r}..."
            raise UsageError(f"{where}: kernel {shown} is not a valid regex: {exc}", hint) from exc
        grid = t.get("grid")
        if grid is not None and not (isinstance(grid, str) and re.fullmatch(r"[1-9]\d*x[1-9]\d*x[1-9]\d*", grid)):
            raise UsageError(
                f"{where}: grid must be written XxYxZ with positive sizes, e.g. '2x64x1', not {grid!r}", hint
            )
        out.append(MapRule(t["kernel"], t["shape"], grid, source))
    return out


def read_mapping(path: str | Path) -> list[MapRule]:
    """Read ``--mapping``; ``UsageError`` naming the file (and the ``[[map]]`` entry) when it is not a valid one."""
    p = Path(path)
    hint = "pass a TOML file of [[map]] tables (kernel, shape, optional grid; see docs/roofline.md)"
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"mapping file {p} is not UTF-8 text (byte {exc.start}): not a TOML file", hint) from exc
    except OSError as exc:
        raise UsageError(f"cannot read mapping file {p}: {exc.strerror or exc}", hint) from exc
    return parse_mapping(text, str(p))


# ------------------------------------------------------------------------------------------------ results


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

    @property
    def phases(self) -> list[PhaseResult]:
        return [p for p in (self.decode, self.prefill) if p is not None]

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": JSON_SCHEMA,
            "kind": "roofline",
            "trace": self.trace,
            "window": self.window,
            "steps_source": self.steps_source,
            "model": self.model.to_dict(),
            "peaks": self.peaks.to_dict(),
            "decode": self.decode.to_dict() if self.decode else None,
            "prefill": self.prefill.to_dict() if self.prefill else None,
            "findings": roofline_findings(self),
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------------------------------------ matching


def tokens_from_command(command: str | None) -> int | None:
    """The prompt length on a captured command line (``--prompt-len 2048``, ``--input-len=512``), or None."""
    if not command:
        return None
    m = re.search(r"--(?:prompt|input)[-_]len(?:gth)?[= ](\d+)\b", command)
    return (int(m.group(1)) or None) if m else None  # a prompt of 0 tokens says nothing


def _linear_instances(
    lk: pl.DataFrame, steps: pl.DataFrame, rules: list[OpRule], mapping: Sequence[MapRule] | None
) -> tuple[pl.DataFrame, int]:
    """One row per linear kernel instance inside a step: idx, kind, pos (order in the step), dur (plus its
    split-K reduction), label, grid, tiles, family, short, sig (kernel signature), mapped (shape from the mapping
    or null). Also the number of split-K reductions that had no GEMV before them in their step."""
    ks = lk.with_columns(pl.coalesce("l_start", "start").alias("t_launch"))
    ks = assign_to_steps(ks, steps.select("idx", "start", "end"), "t_launch").filter(pl.col("idx").is_not_null())
    empty = pl.DataFrame(
        schema={
            "idx": pl.Int64, "kind": pl.Utf8, "pos": pl.Int64, "start": pl.Int64, "dur": pl.Int64, "label": pl.Utf8,
            "grid": pl.Utf8, "tiles": pl.Int64, "family": pl.Utf8, "short": pl.Utf8, "sig": pl.Utf8,
            "mapped": pl.Utf8, "reduce": pl.Utf8,
        }
    )  # fmt: skip
    if ks.is_empty():
        return empty, 0
    names = ks.select("name", "short").unique()
    ops = classify(names["name"], rules, names["short"]).select("name", "family", "op").unique("name")
    ks = label_frame(ks.join(ops, on="name", how="left")).with_columns(
        pl.concat_str([pl.col("gridX"), pl.col("gridY"), pl.col("gridZ")], separator="x").alias("grid"),
        (pl.col("gridX") * pl.col("gridY") * pl.col("gridZ")).alias("tiles"),
    )
    mapped = pl.lit(None, pl.Utf8)
    if mapping:
        keys = ks.select("name", "short", "grid").unique()
        hit = [
            next(
                (
                    r.shape
                    for r in mapping
                    if (r.grid is None or r.grid == g) and any(t and re.search(r.kernel, t) for t in (s, n))
                ),
                None,
            )
            for n, s, g in keys.iter_rows()
        ]
        ks = ks.join(keys.with_columns(pl.Series("mapped", hit, dtype=pl.Utf8)), on=["name", "short", "grid"])
        mapped = pl.col("mapped")
    ks = ks.with_columns(mapped.alias("mapped"))
    is_reduce = pl.col("op").fill_null("").str.contains(SPLIT_K_OP)
    is_linear = pl.col("mapped").is_not_null() | (pl.col("family").is_in(LINEAR_FAMILIES) & ~is_reduce)
    ks = ks.with_columns(is_linear.alias("_lin"), (is_reduce & pl.col("mapped").is_null()).alias("_red"))
    ks = ks.filter(pl.col("_lin") | pl.col("_red")).sort("idx", "start")
    ks = ks.with_columns((pl.col("_lin").cast(pl.Int64).cum_sum().over("idx") - 1).alias("pos"))
    orphans = ks.filter(pl.col("pos") < 0).height
    ks = ks.filter(pl.col("pos") >= 0)
    reduce_label = pl.col("label").filter(pl.col("_red")).first()
    inst = (
        ks.group_by("idx", "pos", maintain_order=True)
        .agg(
            pl.col("start").first(),
            pl.col("dur").sum(),
            pl.col("label").first(),
            pl.col("grid").first(),
            pl.col("tiles").first(),
            pl.col("family").first(),
            pl.col("short").first(),
            pl.col("mapped").first(),
            reduce_label.alias("reduce"),
        )
        .join(steps.select("idx", "kind"), on="idx", how="left")
    )
    sig = (
        pl.when(pl.col("reduce").is_not_null())
        .then(pl.concat_str([pl.col("label"), pl.lit(" + "), pl.col("reduce")]))
        .otherwise(pl.col("label"))
    )
    inst = inst.with_columns(sig.alias("sig"))
    return inst.select(empty.columns), orphans


def _fits_hint(n: int) -> str:
    fits = [f"{(n - 1) // per} layers of {per}" for per in (4, 5, 6, 7) if n > 1 and (n - 1) % per == 0]
    return f"{n} = layers x linears + 1 would fit {' or '.join(fits)}" if fits else ""


def _mismatch(model: Model, phase: str, observed: dict[int, int], expected: list[Layout], reds: int) -> UsageError:
    common = max(observed, key=lambda k: observed[k])
    other = ", ".join(f"{lay.kernels_per_step}" for lay in expected[1:])
    steps = sum(observed.values())
    per_step = f" and {reds / steps:.3g} split-K reductions" if reds and steps else ""
    msg = (
        f"model {model.name} does not fit the trace: {observed[common]} of {steps} {phase} steps run {common} "
        f"GEMV/GEMM kernels{per_step} each, but the model has {expected[0].describe()}"
        + (f" (with separate Q/K/V or gate/up: {other})" if other else "")
    )
    fit = _fits_hint(common)
    hint = (
        (f"{fit}; " if fit else "")
        + "check that --model is the traced model's config, or map kernels to shapes with --mapping FILE "
        "(see docs/roofline.md)"
    )
    return UsageError(msg, hint)


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
"""A shape's rating (``ShapeResult.rating``) and what it means."""


def _rating(bound: str | None, eff: float | None, feff: float | None, weight_bytes: int) -> str:
    """The field's rule of thumb, on efficiencies rounded to 0.1% (as printed)."""
    if bound == "compute":
        if feff is None:
            return "unknown-peak"
        return "compute-near-peak" if round(feff, 3) >= COMPUTE_GOOD else "compute-headroom"
    if eff is None:
        return "unknown-peak"
    e = round(eff, 3)
    if e >= NEAR_LIMIT:
        return "near-limit"
    if weight_bytes < SMALL_GEMV_BYTES:
        return "small"
    return "headroom" if e < HEADROOM else "some-headroom"


def _match_phase(
    inst: pl.DataFrame,
    step_table: pl.DataFrame,
    phase: str,
    model: Model,
    peaks: Peaks,
    mapping: Sequence[MapRule] | None,
    tokens: int | None,
    tokens_source: str,
) -> PhaseResult | None:
    kinds = ["prefill"] if phase == "prefill" else ["decode", "step"]
    steps = step_table.filter(pl.col("kind").is_in(kinds))
    if steps.is_empty():
        return None
    pi = inst.filter(pl.col("kind").is_in(kinds))
    per_step = (
        steps.select("idx")
        .join(
            pi.group_by("idx").agg(pl.len().alias("n"), pl.col("reduce").is_not_null().sum().alias("r")),
            on="idx",
            how="left",
        )
        .with_columns(pl.col("n").fill_null(0), pl.col("r").fill_null(0))
    )
    observed = {int(k): int(v) for k, v in per_step.group_by("n").len().iter_rows()}
    reds = int(per_step["r"].sum())
    notes: list[str] = []
    if mapping:
        wanted = {r.shape for r in mapping}
        layout = next((lay for lay in model.layouts if wanted <= {s.name for s, _ in lay.sequence()}), None)
        if layout is None:
            known = ", ".join(s.name for s in model.shapes())
            sources = sorted({r.source for r in mapping if r.source})
            where = f"mapping file {', '.join(sources)}" if sources else "mapping"
            missing = sorted(wanted - {s.name for s in model.shapes()})
            what = (
                f"shape(s) {', '.join(missing)} are not shapes of model {model.name}"
                if missing
                else f"shapes {', '.join(sorted(wanted))} do not all run in one layout of model {model.name}"
            )
            raise UsageError(f"{where}: {what}", f"use the shape names of one layout of the model: {known}")
        expected_counts: dict[str, int] = {}  # a mapping may name only some shapes: those are checked
        for s, _ in layout.sequence():
            if s.name in wanted:
                expected_counts[s.name] = expected_counts.get(s.name, 0) + 1
        counts = pi.filter(pl.col("mapped").is_not_null()).group_by("idx", "mapped").len()
        exp = pl.DataFrame({"mapped": list(expected_counts), "want": list(expected_counts.values())})
        full = steps.select("idx").join(exp, how="cross").join(counts, on=["idx", "mapped"], how="left")
        ok = full.group_by("idx").agg((pl.col("len").fill_null(0) == pl.col("want")).all().alias("ok"))
        fit_ids = ok.filter(pl.col("ok"))["idx"]
        matched = pi.filter(pl.col("idx").is_in(fit_ids.to_list()) & pl.col("mapped").is_not_null())
        matched = matched.with_columns(pl.col("mapped").alias("shape"))
        unmapped = pi.filter(pl.col("idx").is_in(fit_ids.to_list()) & pl.col("mapped").is_null())
        if unmapped.height:
            top = unmapped.group_by("label").len().sort("len", descending=True)["label"].head(3).to_list()
            notes.append(f"{unmapped.height:,} GEMV/GEMM instances match no [[map]] entry ({', '.join(top)})")
        if fit_ids.len() == 0:
            raise UsageError(
                f"no {phase} step runs every mapped shape as often as model {model.name} says "
                f"({', '.join(f'{k} x{v}' for k, v in expected_counts.items())})",
                "check the [[map]] patterns against the kernel names (nsys-doctor report lists them) and --model",
            )
        method = "mapping"
    else:
        candidates = sorted(
            model.layouts, key=lambda lay: -observed.get(lay.kernels_per_step, 0)
        )  # stable: the preferred layout wins ties
        layout = candidates[0]
        if set(observed) == {0}:
            raise UsageError(
                f"the {phase} steps run no GEMV/GEMM kernels, so there is nothing to match to model {model.name}",
                "if the steps launch CUDA graphs, recapture with --cuda-graph-trace=node (by default nsys records a "
                "graph as one opaque launch); otherwise map the linear-layer kernels with --mapping FILE or add op "
                "rules with --ops",
            )
        if observed.get(layout.kernels_per_step, 0) == 0:
            raise _mismatch(model, phase, observed, list(model.layouts), reds)
        seq = layout.sequence()
        order = pl.DataFrame(
            {"pos": list(range(len(seq))), "shape": [s.name for s, _ in seq]},
            schema={"pos": pl.Int64, "shape": pl.Utf8},
        )
        fit_ids = per_step.filter(pl.col("n") == layout.kernels_per_step)["idx"]
        matched = pi.filter(pl.col("idx").is_in(fit_ids.to_list())).join(order, on="pos", how="inner")
        method = "position"
    steps_fit = int(fit_ids.len())
    if steps_fit < steps.height:
        why = "have another kernel count" if method == "position" else "do not run the mapped shapes as expected"
        notes.append(f"{steps.height - steps_fit} of {steps.height} {phase} steps {why} and are left out")
    shapes_by_name = {s.name: s for s, _ in layout.sequence()}
    count_in_step = {n: sum(1 for s, _ in layout.sequence() if s.name == n) for n in shapes_by_name}

    # the kernel signature each shape usually runs, and how consistently
    sigs = matched.group_by("shape", "sig", "short", "tiles", "family").len().sort("len", descending=True)
    totals = matched.group_by("shape").len().rename({"len": "total"})
    stats = matched.group_by("shape").agg(
        pl.len().alias("instances"),
        percentile_expr("dur", 50).alias("p50"),
        pl.col("dur").mean().alias("mean"),
    )
    act_bytes = DTYPES.get(model.activation, 16) / 8
    rows: list[ShapeResult] = []
    dominant_total = 0
    agree: list[str] = []
    unchecked: list[str] = []
    bw = peaks.bandwidth_Bps
    for name in shapes_by_name:
        shape: LinearShape = shapes_by_name[name]
        st = stats.filter(pl.col("shape") == name)
        if st.is_empty():
            continue
        srow = st.row(0, named=True)
        ssig = sigs.filter(pl.col("shape") == name)
        top = ssig.row(0, named=True)
        total = int(totals.filter(pl.col("shape") == name)["total"][0])
        dominant_total += int(top["len"])
        # decode runs one token; in prefill a GEMV-family kernel (e.g. the LM head on the last token) runs one
        n_tok: int | None = 1 if phase == "decode" or top["family"] == "gemv" else tokens
        tc = tile_check(top["short"] or "", int(top["tiles"] or 0), shape.M, n_tok or 1)
        if tc == "contradicts" and n_tok is not None:
            raise UsageError(
                f"model {model.name} does not fit the trace: shape {name} [{shape.M} x {shape.K}] cannot be what "
                f"{top['short']} ran in the {phase} steps (grid of {top['tiles']} CTAs for an output of "
                f"{shape.M} x {n_tok}{' tokens' if n_tok > 1 else ''})",
                ("check --tokens (the prompt length of the prefill), " if n_tok > 1 else "")
                + "check that --model is the traced model's config (hidden size, heads, intermediate size), or map "
                "kernels to shapes with --mapping FILE",
            )
        (agree if tc == "agrees" else unchecked).append(name)
        p50 = int(srow["p50"])
        mean = float(srow["mean"])
        wb = shape.bytes
        achieved = wb / (p50 * 1e-9) if p50 > 0 else float("inf")
        eff = achieved / bw if bw else None
        eff_mean = wb / (mean * 1e-9) / bw if bw and mean > 0 else None
        flops = 2.0 * shape.M * n_tok * shape.K if n_tok else None
        moved = wb + (n_tok or 0) * (shape.K + shape.M) * act_bytes
        intensity = flops / moved if flops else None
        ridge = peaks.ridge
        bound = None if intensity is None or ridge is None else ("compute" if intensity >= ridge else "memory")
        if bound is None and n_tok == 1:
            bound = "memory"
        achieved_flops = flops / (p50 * 1e-9) if flops and p50 > 0 else None
        feff = achieved_flops / peaks.flops if achieved_flops and peaks.flops else None
        _check_physics(model, name, shape, phase, eff, feff, peaks, bound)
        kernels = tuple(str(x) for x in ssig["sig"].unique(maintain_order=True).to_list())
        rating = _rating(bound, eff, feff, wb)
        rows.append(
            ShapeResult(
                phase=phase,
                name=name,
                label=shape.title,
                M=shape.M,
                K=shape.K,
                N=n_tok,
                dtype=shape.fmt.label,
                weight_bytes=wb,
                per_step=count_in_step[name],
                instances=int(srow["instances"]),
                kernels=kernels,
                p50_ns=p50,
                mean_ns=mean,
                achieved_Bps=achieved,
                efficiency=eff,
                efficiency_mean=eff_mean,
                flops=flops,
                intensity=intensity,
                bound=bound,
                achieved_flops=achieved_flops,
                flops_efficiency=feff,
                consistency=int(top["len"]) / total,
                tile_check="agrees" if tc == "agrees" else "unchecked",
                rating=rating,
            )
        )
    consistency = dominant_total / matched.height if matched.height else 0.0
    if consistency < CONSISTENT:
        notes.append(
            f"only {100 * consistency:.0f}% of instances run their shape's usual kernel: the order of linear "
            "kernels varies, so position matching may be off (consider --mapping)"
        )
    fit = MatchFit(
        method=method,
        layout=layout.name,
        layout_detail=layout.describe(),
        expected_per_step=layout.kernels_per_step,
        observed=observed,
        steps_fit=steps_fit,
        steps_total=steps.height,
        reductions=int(matched["reduce"].is_not_null().sum()),
        consistency=consistency,
        tiles_agree=tuple(agree),
        tiles_unchecked=tuple(unchecked),
        notes=tuple(notes),
    )
    fit_steps = steps.filter(pl.col("idx").is_in(fit_ids.to_list()))
    step = _step_result(rows, fit_steps, matched, steps_fit, layout, peaks, phase)
    return PhaseResult(phase, tokens if phase == "prefill" else 1, tokens_source, fit, tuple(rows), step)


def _check_physics(
    model: Model, name: str, shape: LinearShape, phase: str, eff: float | None, feff: float | None, peaks: Peaks,
    bound: str | None,
) -> None:  # fmt: skip
    """Refuse numbers no GPU can produce: the model's shapes (or --dtype, --tokens) are not what ran."""
    cached = peaks.l2_bytes is not None and model.bytes_per_token <= peaks.l2_bytes
    if eff is not None and eff > IMPOSSIBLE and bound != "compute" and not cached:
        raise UsageError(
            f"model {model.name} does not fit the trace: shape {name} [{shape.M} x {shape.K}, "
            f"{format_bytes(shape.bytes)}] would have moved {100 * eff:.0f}% of the GPU's peak bandwidth in the "
            f"{phase} steps",
            "the traced kernels read fewer bytes: check --model (sizes) and --dtype (a quantized model?), or --peak-bw",
        )
    if feff is not None and feff > IMPOSSIBLE:
        raise UsageError(
            f"shape {name} [{shape.M} x {shape.K}] would have run at {100 * feff:.0f}% of the GPU's dense peak "
            f"FLOP/s in the {phase} steps",
            "the token count is too high: check --tokens (or the prompt length of the run), --model and --peak-flops",
        )


def _step_result(
    rows: list[ShapeResult],
    fit_steps: pl.DataFrame,
    matched: pl.DataFrame,
    n_steps: int,
    layout: Layout,
    peaks: Peaks,
    phase: str,
) -> StepResult:
    bytes_step = layout.bytes_per_step
    linear_bytes = sum(r.weight_bytes * r.per_step for r in rows)  # all of bytes_step unless a mapping is partial
    gpu = fit_steps["gpu_time"].drop_nulls().to_list()
    p50 = percentile(gpu, 50)
    wall = percentile(fit_steps["wall"].drop_nulls().to_list(), 50)
    mean = sum(gpu) / len(gpu) if gpu else None
    bw = peaks.bandwidth_Bps
    achieved = bytes_step / (p50 * 1e-9) if p50 else None
    eff = achieved / bw if achieved and bw else None
    sol = bytes_step / bw * 1e9 if bw else None
    linear = float(matched["dur"].sum()) / n_steps if n_steps else 0.0
    lin_bps = linear_bytes / (linear * 1e-9) if linear else None
    lin_eff = lin_bps / bw if lin_bps and bw else None
    share = linear / mean if mean else None
    flops = sum(r.flops * r.per_step for r in rows) if rows and all(r.flops is not None for r in rows) else None
    lin_flops = flops / (linear * 1e-9) if flops and linear else None
    compute = [r for r in rows if r.bound == "compute"]
    if phase == "prefill" and compute:
        best = max(compute, key=lambda r: r.time_per_step_ns)
        fe = f"{100 * best.flops_efficiency:.0f}% of dense peak" if best.flops_efficiency else "unknown peak"
        verdict = (
            f"prefill GEMMs are compute-bound ({len(compute)} of {len(rows)} shapes above the ridge point); the "
            f"heaviest, {best.label}, runs at {fe}"
        )
    elif lin_eff is None:
        verdict = "peak bandwidth unknown: pass --peak-bw"
    else:
        if round(lin_eff, 3) >= NEAR_LIMIT:
            rule = "over 80%: little headroom in the GEMVs; quantization or batching is the path"
        elif round(lin_eff, 3) < HEADROOM:
            rule = "under 70%: custom or better-tuned GEMV kernels can win"
        else:
            rule = "between 70% and 80%: some headroom in the GEMVs"
        what = "linear layers" if linear_bytes == bytes_step else "the mapped shapes"
        verdict = f"{what} move weights at {100 * lin_eff:.1f}% of peak bandwidth ({rule})"
        if eff is not None and share is not None and mean:
            verdict += (
                f"; the whole step reaches {100 * eff:.1f}% of the speed of light, and "
                f"{format_ns(mean - linear)} of its {format_ns(mean)} GPU time is outside the {what} "
                "(attention, norms, elementwise)"
            )
        if wall and p50 and wall > 1.5 * p50:
            verdict += (
                f"; the steps last {format_ns(wall)} (p50) for {format_ns(p50)} of GPU time: the GPU waits for the "
                "host, which no kernel can fix (see nsys-doctor report)"
            )
    return StepResult(
        bytes_per_step=bytes_step,
        linear_bytes=linear_bytes,
        gpu_time_p50_ns=int(p50) if p50 is not None else None,
        wall_p50_ns=int(wall) if wall is not None else None,
        gpu_time_mean_ns=mean,
        achieved_Bps=achieved,
        efficiency=eff,
        sol_ns=sol,
        linear_time_ns=linear,
        linear_share=share,
        linear_Bps=lin_bps,
        linear_efficiency=lin_eff,
        flops_per_step=flops,
        linear_flops=lin_flops,
        verdict=verdict,
    )


def roofline(
    kernels: pl.DataFrame,
    api: pl.DataFrame,
    steps: Steps,
    rules: list[OpRule],
    model: Model,
    peaks: Peaks,
    mapping: Sequence[MapRule] | None = None,
    prefill_tokens: int | None = None,
    tokens_source: str = "",
    lk: pl.DataFrame | None = None,
    trace: dict[str, object] | None = None,
    window: dict[str, object] | None = None,
) -> Roofline:
    """Match the linear kernels of every step to ``model``'s shapes and measure them against ``peaks``.

    ``kernels``/``api`` are ``TraceFrames`` columns, ``steps`` is ``phases.find_steps``'s result (``lk`` is
    ``launched_kernels(kernels, api)`` when the caller has it), ``rules`` the op rules, ``prefill_tokens`` the
    prompt length (tokens per prefill step; None: unknown). Raises ``UsageError`` when the model does not fit."""
    if prefill_tokens is not None and (isinstance(prefill_tokens, bool) or prefill_tokens < 1):
        raise UsageError(f"the prefill token count must be 1 or more, not {prefill_tokens!r}", "check --tokens")
    lk = launched_kernels(kernels, api) if lk is None else lk
    table = steps.table
    if table.is_empty():
        raise UsageError(
            "no steps found in the window, so kernels cannot be matched to the model's layers",
            "annotate steps with NVTX ranges, or choose the window with --window / --filter-nvtx",
        )
    inst, orphans = _linear_instances(lk, table, rules, mapping)
    if inst.is_empty():
        raise UsageError(
            "the steps of the window run no GEMV/GEMM kernels, so there is nothing to match to the model",
            "if the steps launch CUDA graphs, recapture with --cuda-graph-trace=node (by default nsys records a graph "
            "as one opaque launch); otherwise check the window, or map the linear-layer kernels with --mapping FILE "
            "(or op rules with --ops)",
        )
    notes = list(model.notes)
    if orphans:
        notes.append(f"{orphans} split-K reductions had no GEMV before them in their step and are left out")
    decode = _match_phase(inst, table, "decode", model, peaks, mapping, 1, "decode: one token per step")
    prefill_src = tokens_source or ("unknown (pass --tokens N)" if prefill_tokens is None else "")
    prefill = _match_phase(inst, table, "prefill", model, peaks, mapping, prefill_tokens, prefill_src)
    if decode is not None:
        notes.append(
            "decode assumes one token per step (batch 1): weight bytes per step are the bytes per token; FLOPs "
            "and intensity use N = 1"
        )
    return Roofline(model, peaks, decode, prefill, steps.source, trace or {}, window, tuple(notes))


# ------------------------------------------------------------------------------------------------ findings

FINDING_TEXT = {k: CATALOGUE[k] for k in ("gemv-near-bandwidth-limit", "gemv-bandwidth-headroom")}
"""Titles and actions of the roofline findings (they live in the finding catalogue)."""


def _shape_evidence(s: ShapeResult, peak: float) -> dict[str, object]:
    return {
        "shape": s.name,
        "label": s.label,
        "M": s.M,
        "K": s.K,
        "weight_bytes": s.weight_bytes,
        "per_step": s.per_step,
        "kernels": list(s.kernels),
        "p50_ns": s.p50_ns,
        "achieved_Bps": s.achieved_Bps,
        "efficiency": s.efficiency,
        # what the shape would save per step at NEAR_LIMIT of peak (0 when it is already there)
        "saving_per_step_ns": max(0.0, s.time_per_step_ns - s.per_step * s.weight_bytes / (NEAR_LIMIT * peak) * 1e9),
    }


def roofline_findings(result: Roofline) -> list[dict[str, object]]:
    """Findings about the decode GEMVs: ``gemv-near-bandwidth-limit`` (info) names the shapes at or above 80% of
    peak bandwidth, ``gemv-bandwidth-headroom`` (warning) those under 70% that are not small (>= 5 MB). Each dict
    has ``id``, ``severity``, ``title``, ``summary`` (with the numbers), ``evidence`` and ``action``."""
    d = result.decode
    peak = result.peaks.bandwidth_Bps
    if d is None or not peak:
        return []
    near = [s for s in d.shapes if s.rating == "near-limit"]
    room = [s for s in d.shapes if s.rating == "headroom"]
    out: list[dict[str, object]] = []

    def describe(s: ShapeResult) -> str:
        return (
            f"{s.label} [{s.M} x {s.K}, {format_bytes(s.weight_bytes)}] at {100 * (s.efficiency or 0):.1f}% "
            f"({s.achieved_Bps / 1e12:.2f} TB/s, p50 {format_ns(s.p50_ns)})"
        )

    for fid, severity, group in (
        ("gemv-near-bandwidth-limit", "info", near),
        ("gemv-bandwidth-headroom", "warning", room),
    ):
        if not group:
            continue
        group = sorted(group, key=lambda s: -s.time_per_step_ns)
        evidence: dict[str, object] = {
            "peak_bandwidth_Bps": peak,
            "shapes": [_shape_evidence(s, peak) for s in group],
        }
        summary = f"{'; '.join(describe(s) for s in group)} of {peak / 1e12:.3f} TB/s peak"
        if fid == "gemv-bandwidth-headroom":
            saving = sum(float(e["saving_per_step_ns"]) for e in evidence["shapes"])  # type: ignore[arg-type,union-attr]
            evidence["saving_per_step_ns"] = saving
            summary += f"; reaching 80% would save about {format_ns(saving)} per decode step"
        title, action = FINDING_TEXT[fid]
        out.append(
            {"id": fid, "severity": severity, "title": title, "summary": summary, "evidence": evidence,
             "action": action}
        )  # fmt: skip
    return out
