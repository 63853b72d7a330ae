"""The structure of a run, found in the data: what kind of run it is, its phases, requests and steps.

``find_structure`` is computed once per trace and answers, with the evidence for each answer:

- the **run kind**: ``"llm-decode"`` (token-by-token generation: a prefill pass, then one forward pass per token),
  ``"llm-prefill"`` (prompt processing only, no decode), ``"iterations"`` (repeated forward passes that are not
  token-by-token decode: CNN, ViT, encoders, training steps) or ``"unstructured"`` (tests, HPC codes, no repeat);
- the **phases**: loading (module loads, weight copies, random initialisation), compilation and autotuning (XLA's
  ``RedzoneAllocatorKernelImpl``/``DelayKernel``/comparison kernels), warm-up and measured requests;
- the **requests** and which are warm-up (left out of ``measured_*`` and of ``to_dict()["steps"]``): any request
  with lazy module loading, JIT compilation or autotuning inside; requests outside NVTX request ranges when such
  ranges line up; in a whole-run capture the first of identical requests, and the requests before the steady ones
  (those with the steps and per-step kernel counts of the last request, when at least two share them); inside each
  request its **steps**: prefill and decode steps for an LLM, iterations (forward passes) otherwise.

Method. The core signal is the repeating structure of the kernel-name sequence (kernels of the main process in
launch order). A kernel that runs once per forward pass (LM head, argmax/sampling, embedding, a classifier head)
occurs exactly P times and regularly, one period apart; kernels of every layer occur L x P times with a period L
times shorter; a once-per-request kernel occurs R times. Every count shared by kernels whose occurrences are evenly
spaced is a candidate level; levels with the same period are one cluster (P, P - R decode-only and P + R names).
The forward-pass level is the cluster the other signals agree with: host round trips (token reads: stream, event
and device syncs, synchronous and device-to-host copies, graph launches) about one to four per period and far
fewer per layer; sampling/argmax or embedding kernels among its names; a finer level (layers) inside; then the
coarser of equal candidates. A level whose unit is k >= 2 repeats of a finer level plus a few extra kernels is a
group of passes (a request), not a pass, when those extra kernels are at most 5% of one finer unit in kernels and
in GPU time (an argmax over a request's outputs once per 5 CNN passes); the finer level is then the pass. Layers
never qualify: a pass adds to them an embedding, a final norm, an LM head and sampling, a sizeable share of one
layer (the LM head alone, in GPU time). A repeating unit with none of layers, sampling kernels or graph launches is
not a forward pass (an HPC time step, a test looping over one kernel): such runs are ``unstructured``. When the
repeating unit has no sampling kernels but sampling/embedding kernels run a few times around many of its repeats
(a prefill-only run), those kernels mark the passes and the unit is a layer.
The once-per-pass names keep one order inside a pass; a pass boundary lies between the last of them in one pass
and the first in the next, at the largest host launch gap there (where the host waited for the token).
Each pass is measured (kernels, GPU time, names that run in few passes, share of graph-launched kernels). A pass
whose kernel mix differs (names rare elsewhere, or far heavier with such names, or eager among graphed passes)
leads a request as its prefill; an eager prefill without the once-per-pass kernels of compiled or graphed decode
steps (kernels with matrix products and sampling/embedding kernels before a pass's once-per-pass kernels, or just
before the first pass) becomes a pass of its own; identical passes that run GEMMs rather than GEMVs are prefill
passes of a prefill-only run, one request each; decode passes of one request share one kernel mix up to kernels
whose shape grows with the context. Requests also split at idle gaps far longer than the gaps between passes, at
a kind of host sync that occurs between a few passes only (end of request; the next request then starts at that
sync), at cudaProfilerStart calls, at NVTX request ranges, and where a signal that is no boundary by itself (a
host-to-device input copy, a read back, a kind of sync, an idle gap a few times the typical one) recurs at a fixed
stride: at every k-th pass boundary and no other, at least twice, so that it divides the passes into equal
requests of k passes (a boundary where modules load counts when the stride holds with it). Passes that no signal
separates stay one request (back-to-back requests of an eager loop without a sync, a copy or a gap between them
cannot be told apart). Gaps and syncs do not split requests where modules load between the passes (compilation,
lazy loading) nor, when requests are led by prefill passes, before a decode pass.
The run is an LLM (decode or prefill) on sampling/embedding kernels once per pass, NVTX prefill/decode ranges or
requests led by a pass of their own mix, unless its kernel time is led by convolution with no attention kernel at
all (a CNN whose argmax or classifier looks like sampling): then it is iterations.
NVTX ranges count only where they line up with this structure (one pass per range); library ranges (domains such
as XLA's ``TSL``, ``NCCL``, ``CCCL``), per-op annotations (DLProf dictionaries, ``aten::`` ops) never do; nested
levels are used one level at a time, per-layer ranges are never steps, and numbered names (``layer_3_token_7``)
are grouped as ``layer_N_token_N``. When the kernel sequence has no usable period, NVTX step ranges that are not
library ranges, then graph launches, give the steps. ``memset`` is accepted for a uniform signature.

All work is columnar: numpy over the kernel sequence, Python loops only over distinct names, candidate levels and
passes. The result is deterministic.

Time base. ``Step.start``/``Step.end`` and ``Request.start``/``Request.end`` are host times in trace nanoseconds:
a step starts at the launch call (CUDA API start) of its first kernel and ends just before the next step of its
request starts (so the host round trip after a token belongs to the step that produced the token); the last step
of a request ends at the end of the launch call of its last kernel. A kernel belongs to the step whose
``[start, end]`` holds its launch time (kernels are joined to their launch calls by correlationId and pid, as
``phases.launched_kernels`` does; kernels without a launch call use their GPU start). ``gpu_start``/``gpu_end``
give the GPU execution span of the same kernels.

API::

    find_structure(kernels, api, memcpy=None, memset=None, nvtx=None, capture_range=None, ops=None,
                   graph_launches=None) -> RunStructure
    structure_of(frames, capture_range=None, ops=None) -> RunStructure  # frames: a TraceFrames

    RunStructure(kind, source, confidence, steps: tuple[Step], requests: tuple[Request], phases: tuple[Phase],
                 evidence: tuple[Evidence], notes: tuple[str], period: int | None, marker: str | None,
                 pid: int | None)
      .measured_requests / .warmup_requests  (tuples of Request)
      .measured_steps  (steps of measured requests)
      .count(kind, measured=True) -> int
      .window -> (start, end) of the measured requests, or None
      .steps_frame(measured=True) -> pl.DataFrame (idx, kind, start, end, gpu_start, gpu_end, kernels, gpu_time,
                                                   request)
      .to_dict() -> dict for JSON: kind, source, confidence, requests, warmup_requests, measured_requests,
                    iterations, steps {prefill, decode, iteration}, steps_all, period_kernels, marker, time_base,
                    request_list, phases, evidence, notes
    Step(index, request, kind, start, end, gpu_start, gpu_end, kernels, gpu_time)   # kind: prefill|decode|iteration
    Request(index, start, end, gpu_start, gpu_end, warmup, reason, prefill_steps, decode_steps, iterations)
    Phase(kind, start, end, detail)   # kind: loading | compilation | autotuning | warm-up | measured
    Evidence(fact, source, confidence, detail)   # confidence: high | medium | low
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from .phases import GRAPH_LAUNCH_API, LAUNCH_API, PROFILER_START_API

RUN_KINDS = ("llm-decode", "llm-prefill", "iterations", "unstructured")
STEP_KINDS = ("prefill", "decode", "iteration")
CONFIDENCE = ("high", "medium", "low")

SYNC_API = re.compile(
    r"^(cudaStreamSynchronize|cuStreamSynchronize|cudaDeviceSynchronize|cuCtxSynchronize|cudaEventSynchronize|"
    r"cuEventSynchronize|cudaThreadSynchronize|cudaStreamQuery|cudaMemcpy(_v\d+)?$|cuMemcpyDtoH(_v\d+)?$|"
    r"cuMemcpy(_v\d+)?$)"
)
MODULE_LOAD_API = re.compile(
    r"^(cuModuleLoad|cuLibraryLoad|cudaLibraryLoad|cuLinkComplete|nvrtc|cuModuleGetFunction|cuLibraryGetKernel|"
    r"cuKernelGetFunction)"
)
LOAD_ONLY_API = re.compile(r"^(cuModuleLoad|cuLibraryLoad|cudaLibraryLoad|cuLinkComplete)")  # lazy loading, JIT
PROFILER_STOP_API = re.compile(r"^(cuProfilerStop|cudaProfilerStop)")
AUTOTUNE_KERNELS = re.compile(r"RedzoneAllocatorKernel|DelayKernel|xla_fp_comparison|(?i:autotun)")
INIT_KERNELS = re.compile(
    r"(?i)(init_?weights?|fill_kernel|distribution_elementwise|distribution_nullary|curand|philox|"
    r"normal_kernel|uniform_kernel|randperm)"
)
TOKEN_ANCHORS = re.compile(r"(?i)(argmax|arg_max|ArgMaxOps|top_?k|top_?p|sampl|multinomial|embedding|lm_?head|logits)")
ANCHOR_FAMILIES = frozenset({"sampling", "embedding"})
SOFTMAX = re.compile(r"(?i)soft_?max")
PREFILL_NAMES = re.compile(r"(?i)(prefill|prompt|context|extend|encode)")
DECODE_NAMES = re.compile(r"(?i)(decode|token|generat|step)")
STEP_NAMES = re.compile(r"(?i)(decode|prefill|step|forward|fwd|token|extend|iter|batch)")
REQUEST_NAMES = re.compile(
    r"(?i)^(iter|iteration|request|req|generate|generation|inference|e2e|serve|run|sample)(_N)?$"
)
LIBRARY_DOMAINS = frozenset({"TSL", "NCCL", "CCCL", "CUBLAS", "CUDNN", "CUTLASS", "NVSHMEM", "MPI", "UCX", "NVTX"})
LIBRARY_TEXT = re.compile(
    r"^(\{|\[|aten::|Thunk:|Xla|XLA|cub::|thrust::|nccl|cublas|cudnn|void |at::|torch\.|c10::|autograd::)"
)
MIN_SEGMENTS = 3  # a level must repeat at least this often
REGULAR_TOL = 0.1  # occurrences one period (within 10%) apart are regular
MAX_ROUND_TRIPS_PER_PASS = 4.0
GAP_FACTOR = 8.0  # an idle gap this many times the typical gap between steps separates requests
MIN_REQUEST_GAP_NS = 2_000_000
HEAVY_FACTOR = 3.0  # a leading pass this many times heavier (GPU time) than the steady ones is a prefill pass
WEIGHT_COPY_BYTES = 1 << 20
STRIDE_MIN_CUTS = 2  # a signal at a regular stride splits requests when it recurs at least this often
STRIDE_GAP_FACTOR = 3.0  # an idle gap this many times the typical one counts as a signal that may recur
MIN_STRIDE_GAP_NS = 50_000
GROUP_EXTRA_SHARE = 0.05  # a level is a group of passes when its extra kernels are at most this share of one pass
CONV_FAMILIES = frozenset({"conv", "convolution"})
ATTENTION_FAMILIES = frozenset({"attention", "attention-prefill", "attention-decode"})


# ------------------------------------------------------------------------------------------------ result types


@dataclass(frozen=True)
class Evidence:
    """Where a structural fact came from. ``fact``: passes, boundaries, requests, warm-up, prefill, phase, kind.
    ``source``: kernel-period, capture-range, nvtx, graph-launches, host-syncs, idle-gaps, copies, module-loads,
    weight-copies, autotuning, kernel-mix, kernel-names."""

    fact: str
    source: str
    confidence: str
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"fact": self.fact, "source": self.source, "confidence": self.confidence, "detail": self.detail}


@dataclass(frozen=True)
class Step:
    """One forward pass. ``start``/``end``: host launch time base (see the module docstring)."""

    index: int
    request: int  # index of its request in RunStructure.requests
    kind: str  # prefill | decode | iteration
    start: int
    end: int
    gpu_start: int
    gpu_end: int
    kernels: int
    gpu_time: int

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "request": self.request,
            "kind": self.kind,
            "start_ns": self.start,
            "end_ns": self.end,
            "gpu_start_ns": self.gpu_start,
            "gpu_end_ns": self.gpu_end,
            "kernels": self.kernels,
            "gpu_time_ns": self.gpu_time,
        }


@dataclass(frozen=True)
class Request:
    index: int
    start: int
    end: int
    gpu_start: int
    gpu_end: int
    warmup: bool
    reason: str  # why it is warm-up ("" when measured)
    prefill_steps: int
    decode_steps: int
    iterations: int

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "start_ns": self.start,
            "end_ns": self.end,
            "gpu_start_ns": self.gpu_start,
            "gpu_end_ns": self.gpu_end,
            "warmup": self.warmup,
            "reason": self.reason,
            "prefill_steps": self.prefill_steps,
            "decode_steps": self.decode_steps,
            "iterations": self.iterations,
        }


@dataclass(frozen=True)
class Phase:
    kind: str  # loading | compilation | autotuning | warm-up | measured
    start: int
    end: int
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "start_ns": self.start, "end_ns": self.end, "detail": self.detail}


@dataclass(frozen=True)
class RunStructure:
    kind: str  # llm-decode | llm-prefill | iterations | unstructured
    source: str  # what the steps came from: kernel-period, nvtx, graph-launches, none
    confidence: str  # high | medium | low
    steps: tuple[Step, ...] = ()
    requests: tuple[Request, ...] = ()
    phases: tuple[Phase, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    notes: tuple[str, ...] = ()
    period: int | None = None  # kernels per steady step (median)
    marker: str | None = None  # the once-per-pass kernel the periods were measured on
    pid: int | None = None  # the process analyzed

    @property
    def measured_requests(self) -> tuple[Request, ...]:
        return tuple(r for r in self.requests if not r.warmup)

    @property
    def warmup_requests(self) -> tuple[Request, ...]:
        return tuple(r for r in self.requests if r.warmup)

    @property
    def measured_steps(self) -> tuple[Step, ...]:
        warm = {r.index for r in self.requests if r.warmup}
        return tuple(s for s in self.steps if s.request not in warm)

    def count(self, kind: str, measured: bool = True) -> int:
        """Number of steps of ``kind`` (prefill, decode, iteration), in measured requests only by default."""
        return sum(1 for s in (self.measured_steps if measured else self.steps) if s.kind == kind)

    @property
    def window(self) -> tuple[int, int] | None:
        """Host-time span of the measured requests (None when there are none)."""
        reqs = self.measured_requests
        if not reqs:
            return None
        return min(r.start for r in reqs), max(r.end for r in reqs)

    def steps_frame(self, measured: bool = True) -> pl.DataFrame:
        """Steps as a frame: idx, kind, start, end, gpu_start, gpu_end, kernels, gpu_time, request."""
        rows = [
            (i, s.kind, s.start, s.end, s.gpu_start, s.gpu_end, s.kernels, s.gpu_time, s.request)
            for i, s in enumerate(self.measured_steps if measured else self.steps)
        ]
        schema = {
            "idx": pl.Int64,
            "kind": pl.Utf8,
            "start": pl.Int64,
            "end": pl.Int64,
            "gpu_start": pl.Int64,
            "gpu_end": pl.Int64,
            "kernels": pl.Int64,
            "gpu_time": pl.Int64,
            "request": pl.Int64,
        }
        return pl.DataFrame(rows, schema=schema, orient="row")

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "source": self.source,
            "confidence": self.confidence,
            "requests": len(self.requests),
            "warmup_requests": len(self.warmup_requests),
            "measured_requests": len(self.measured_requests),
            "iterations": self.count("iteration"),
            "steps": {k: self.count(k) for k in STEP_KINDS},
            "steps_all": {k: self.count(k, measured=False) for k in STEP_KINDS},
            "period_kernels": self.period,
            "marker": self.marker,
            "pid": self.pid,
            "time_base": "host launch time (ns)",
            "request_list": [r.to_dict() for r in self.requests],
            "phases": [p.to_dict() for p in self.phases],
            "evidence": [e.to_dict() for e in self.evidence],
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------------------------------------ helpers


class _Api:
    """API rows of the analyzed process, names coded once: patterns are matched per distinct name (a few dozen),
    rows are selected with a boolean mask (traces have millions of calls)."""

    def __init__(self, api: pl.DataFrame, pid: int | None) -> None:
        own = api if pid is None or api.is_empty() else api.filter(pl.col("pid") == pid)
        self.frame = own
        self.names: list[str] = own["name"].drop_nulls().unique().sort().to_list() if own.height else []
        if own.height:
            phys = own["name"].cast(pl.Enum(self.names)).to_physical().cast(pl.Int64)
            self.codes = phys.fill_null(len(self.names)).to_numpy()
        else:
            self.codes = np.zeros(0, dtype=np.int64)

    def mask(self, pattern: re.Pattern[str]) -> np.ndarray:
        hit = np.array([bool(pattern.search(n)) for n in self.names] + [False])
        return hit[self.codes]

    def calls(self, pattern: re.Pattern[str]) -> pl.DataFrame:
        m = self.mask(pattern)
        return self.frame.filter(pl.Series(m)) if m.any() else self.frame.clear()


def _empty(df: pl.DataFrame | None) -> bool:
    return df is None or df.is_empty()


@dataclass
class _Seq:
    """The kernel sequence of the main process in launch order, as numpy arrays."""

    names: list[str]  # distinct names, code -> name
    shorts: list[str]
    code: np.ndarray
    t: np.ndarray  # launch time (API start; GPU start when no launch call)
    t_end: np.ndarray  # end of the launch call (GPU start when none)
    start: np.ndarray  # GPU start
    end: np.ndarray  # GPU end
    dur: np.ndarray
    graph: np.ndarray  # launched by a graph launch
    counts: np.ndarray
    pos_order: np.ndarray  # positions sorted by code (stable): positions of code c are a slice
    pos_offsets: np.ndarray

    def __len__(self) -> int:
        return int(self.code.shape[0])

    def positions(self, c: int) -> np.ndarray:
        return self.pos_order[self.pos_offsets[c] : self.pos_offsets[c + 1]]


def _sequence(kernels: pl.DataFrame, api: _Api, pid: int | None) -> _Seq:
    k = kernels if pid is None else kernels.filter(pl.col("pid") == pid)
    k = k.with_columns(
        pl.col("name").fill_null(pl.col("short")).fill_null("?"),
        pl.col("short").fill_null(pl.col("name")).fill_null("?"),
    )
    start = k["start"].to_numpy()
    end = k["end"].to_numpy()
    t = start.copy()
    t_end = start.copy()
    graph = np.zeros(k.height, dtype=bool)
    lmask = api.mask(LAUNCH_API)
    launches = api.frame.filter(pl.Series(lmask)) if lmask.any() else api.frame.clear()
    if launches.height and k.height:
        # kernels joined to their launch calls by correlationId (the process is fixed): a sorted-array lookup
        cl = launches["correlationId"].fill_null(-1).to_numpy()
        ck = k["correlationId"].fill_null(-2).to_numpy()
        order = np.argsort(cl, kind="stable")
        srt = cl[order]
        i = np.minimum(np.searchsorted(srt, ck), srt.size - 1)
        ok = srt[i] == ck
        row = order[i]
        t = np.where(ok, launches["start"].to_numpy()[row], start)
        t_end = np.where(ok, launches["end"].to_numpy()[row], start)
        graph = ok & api.mask(GRAPH_LAUNCH_API)[lmask][row]
    names = k["name"].unique().sort().to_list()
    code = k["name"].cast(pl.Enum(names)).to_physical().cast(pl.Int64).to_numpy()
    first_of = np.unique(code, return_index=True)[1] if code.size else np.zeros(0, dtype=np.int64)
    shorts = k["short"].gather(first_of).to_list()
    o = np.lexsort((code, end, start, t))  # launch order; ties by GPU start, end, name: deterministic
    code, t, t_end, start, end, graph = code[o], t[o], t_end[o], start[o], end[o], graph[o]
    counts = np.bincount(code, minlength=len(names)) if code.size else np.zeros(len(names), dtype=np.int64)
    pos_order = np.argsort(code, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return _Seq(names, shorts, code, t, t_end, start, end, end - start, graph, counts, pos_order, offsets)


# ------------------------------------------------------------------------------------------------ levels


@dataclass
class _Level:
    count: int
    codes: list[int]  # names with exactly this count (the regular ones)
    marker: int  # the most regular of them
    period: float  # median distance (kernels) between its occurrences
    regular: float  # share of distances within tolerance of the period
    coverage: float  # share of the marker's span covered by regular distances
    span: float  # share of the sequence between the marker's first and last occurrence
    min_ratio: float  # smallest distance / period (a name that occurs twice per period has a small one)


@dataclass
class _Cluster:
    levels: list[_Level]
    period: float
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)
    round_trips: float = 0.0
    anchors: list[str] = field(default_factory=list)
    finer: bool = False  # a finer repeating level inside (layers)
    graphs: bool = False  # one graph launch per period
    round_trip_ok: bool = False  # one to a few host round trips per period
    whole: bool = False  # whole forward passes: found inside a level that groups them (requests)

    @property
    def count(self) -> int:
        return max(lv.count for lv in self.levels)

    @property
    def names(self) -> int:
        return sum(len(lv.codes) for lv in self.levels)


def _regularity(pos: np.ndarray) -> tuple[float, float, float, float, float]:
    d = np.diff(pos)
    if d.size == 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    med = float(np.median(d))
    ok = np.abs(d - med) <= REGULAR_TOL * med + 0.5
    width = float(pos[-1] - pos[0])
    cov = float(d[ok].sum()) / width if width > 0 else 0.0
    return med, float(ok.mean()), cov, width, float(d.min()) / med if med > 0 else 0.0


def _levels(seq: _Seq) -> list[_Level]:
    """Counts shared by names whose occurrences are evenly spaced (a level of the run's hierarchy)."""
    n = len(seq)
    out: list[_Level] = []
    if n == 0:
        return out
    by_count: dict[int, list[int]] = {}
    for c, cnt in enumerate(seq.counts.tolist()):
        if cnt >= MIN_SEGMENTS:
            by_count.setdefault(int(cnt), []).append(c)
    for cnt in sorted(by_count):
        codes = by_count[cnt]
        scored = []
        for c in codes:
            med, reg, cov, width, mr = _regularity(seq.positions(c))
            if med >= 1 and reg * cov >= 0.6:
                scored.append((reg * cov, width, -c, c, med, reg, cov, mr))
        if not scored:
            continue
        scored.sort(reverse=True)
        best = scored[0]
        out.append(
            _Level(
                cnt,
                sorted(s[3] for s in scored),
                best[3],
                best[4],
                best[5],
                best[6],
                best[1] / n,
                min(s[7] for s in scored if abs(s[4] - best[4]) <= REGULAR_TOL * best[4] + 0.5),
            )
        )
    return out


def _clusters(levels: list[_Level]) -> list[_Cluster]:
    """Levels with the same period (within 5%) are one level of the hierarchy seen through several names."""
    out: list[_Cluster] = []
    for lv in sorted(levels, key=lambda x: (x.period, x.count)):
        if out and abs(lv.period - out[-1].period) <= 0.05 * out[-1].period + 0.5:
            out[-1].levels.append(lv)
        else:
            out.append(_Cluster([lv], lv.period))
    return out


# ------------------------------------------------------------------------------------------------ signals


@dataclass
class _Signals:
    """Host-side facts placed in the kernel sequence (as kernel positions) or in time."""

    round_trips: np.ndarray  # sorted distinct kernel positions where the host waited for the GPU or read back
    round_trip_kinds: list[str]
    graph_launches: int
    module_loads: np.ndarray  # host times of module/library loads (lazy loading, JIT)
    profiler_starts: np.ndarray
    profiler_stops: np.ndarray
    weight_copies: np.ndarray  # end times of big host-to-device copies
    sync_positions: dict[str, np.ndarray]  # per sync API (version suffix dropped): kernel positions of its calls
    copy_positions: dict[str, np.ndarray]  # per copy direction: kernel positions of the copies' API calls


def _signals(seq: _Seq, api: _Api, memcpy: pl.DataFrame | None, pid: int | None) -> _Signals:
    own = api.frame
    times: list[np.ndarray] = []
    kinds: list[str] = []
    syncs = api.calls(SYNC_API)
    by_api: dict[str, np.ndarray] = {}
    if syncs.height and len(seq):
        base = syncs.with_columns(pl.col("name").str.replace(r"_v\d+$", "").alias("_api"))
        for name in sorted(base["_api"].unique().to_list()):
            t = np.sort(base.filter(pl.col("_api") == name)["start"].to_numpy())
            by_api[name] = np.searchsorted(seq.t, t, side="left")
    if syncs.height:
        times.append(syncs["start"].to_numpy())
        kinds.append(f"{syncs.height} host syncs")
    graphs = api.calls(GRAPH_LAUNCH_API)
    if graphs.height:
        times.append(graphs["start"].to_numpy())
        kinds.append(f"{graphs.height} graph launches")
    copies_h2d = np.zeros(0, dtype=np.int64)
    copy_pos: dict[str, np.ndarray] = {}
    if not _empty(memcpy):
        assert memcpy is not None
        mc = memcpy
        if pid is not None and "globalPid" in mc.columns:
            mc = mc.filter(((pl.col("globalPid") // (1 << 24)) % (1 << 24)) == pid)
        for kind, label in ((1, "host-to-device copy"), (2, "device-to-host copy")):
            part = mc.filter(pl.col("copyKind") == kind)
            if not part.height:
                continue
            t = np.sort(_host_times(part, own)["_h"].to_numpy())
            if kind == 2:  # a read back: a host round trip
                times.append(t)
                kinds.append(f"{part.height} device-to-host copies")
            if len(seq):
                copy_pos[label] = np.searchsorted(seq.t, t, side="left")
        big = mc.filter((pl.col("copyKind") == 1) & (pl.col("bytes") >= WEIGHT_COPY_BYTES))
        copies_h2d = np.sort(big["end"].to_numpy())
    rt = np.concatenate(times) if times else np.zeros(0, dtype=np.int64)
    pos = np.unique(np.searchsorted(seq.t, rt, side="left")) if rt.size and len(seq) else np.zeros(0, dtype=np.int64)
    loads = api.calls(LOAD_ONLY_API)
    return _Signals(
        pos,
        kinds,
        graphs.height,
        np.sort(loads["start"].to_numpy()) if loads.height else np.zeros(0, dtype=np.int64),
        np.sort(api.calls(PROFILER_START_API)["start"].to_numpy()) if own.height else np.zeros(0, dtype=np.int64),
        np.sort(api.calls(PROFILER_STOP_API)["start"].to_numpy()) if own.height else np.zeros(0, dtype=np.int64),
        copies_h2d,
        by_api,
        copy_pos,
    )


def _host_times(copies: pl.DataFrame, own: pl.DataFrame) -> pl.DataFrame:
    """Copies with ``_h``: the host time of their API call (joined by correlationId), their GPU start when none."""
    if not own.height:
        return copies.with_columns(pl.col("start").alias("_h"))
    ids = copies["correlationId"].unique()
    a = (
        own.filter(pl.col("correlationId").is_in(ids.implode()))
        .select("correlationId", pl.col("start").alias("_ls"))
        .unique("correlationId", keep="first")
    )
    return copies.join(a, on="correlationId", how="left").with_columns(pl.coalesce("_ls", "start").alias("_h"))


def _families(names: Sequence[str], shorts: Sequence[str], ops: pl.DataFrame | None) -> list[str]:
    """Operation family per distinct name, from ``ops`` (columns name, family) or the shipped op rules."""
    if ops is not None and {"name", "family"} <= set(ops.columns):
        fam = dict(zip(ops["name"].to_list(), ops["family"].to_list(), strict=False))
        return [str(fam.get(n) or "other") for n in names]
    try:
        from .ops import classify, load_rules

        return [str(f) for f in classify(list(names), load_rules(), list(shorts))["family"].to_list()]
    except Exception:  # the op rules are an aid, never a requirement
        return ["other"] * len(names)


def _is_anchor(name: str, short: str, family: str) -> bool:
    if INIT_KERNELS.search(name) or AUTOTUNE_KERNELS.search(name):
        return False
    if TOKEN_ANCHORS.search(short) or TOKEN_ANCHORS.search(name):
        return True
    return family in ANCHOR_FAMILIES and not SOFTMAX.search(name)  # softmax runs inside attention too


def _score_clusters(clusters: list[_Cluster], seq: _Seq, sig: _Signals, fams: list[str]) -> list[_Cluster]:
    """Score each cluster as the forward-pass level; return the candidates, best first."""
    cands = [c for c in clusters if c.count >= MIN_SEGMENTS and max(lv.span for lv in c.levels) >= 0.2]
    for cl in cands:
        cut = _cut_level(cl)
        pos = seq.positions(cut.marker)
        notes = []
        score = 0.0
        if sig.round_trips.size >= cut.count // 2:
            per = np.histogram(sig.round_trips, bins=pos)[0] if pos.size > 1 else np.zeros(0)
            if per.size:
                med = float(np.median(per))
                cl.round_trips = med
                share = float((per >= 1).mean())
                if sig.graph_launches and abs(sig.graph_launches - cut.count) <= max(2, 0.05 * cut.count):
                    cl.graphs = True
                if 1 <= med <= MAX_ROUND_TRIPS_PER_PASS and share >= 0.8:
                    cl.round_trip_ok = True
                    score += 3
                    notes.append(f"{med:g} host round trip(s) per period ({', '.join(sig.round_trip_kinds)})")
                elif med < 0.5:
                    score -= 1
        anchors = sorted(
            {seq.shorts[c] for lv in cl.levels for c in lv.codes if _is_anchor(seq.names[c], seq.shorts[c], fams[c])}
        )
        if anchors:
            cl.anchors = anchors
            score += 2
            notes.append("once-per-pass kernels " + ", ".join(anchors[:3]))
        if any(o is not cl and o.count >= 2 * cl.count and o.period <= cl.period / 2 for o in cands):
            cl.finer = True
            score += 1
            notes.append("a finer repeating level inside (layers)")
        if cl.count >= 8:
            score += 1
        cl.score = score
        cl.reasons = notes
    return sorted(cands, key=lambda c: (-c.score, c.count, -c.names))


def _cut_level(cl: _Cluster) -> _Level:
    """The level whose names occur once in every pass: the largest count whose names never occur twice within one
    period (a name with one extra occurrence per request has a short distance somewhere)."""
    for lv in sorted(cl.levels, key=lambda x: -x.count):
        if lv.min_ratio >= 0.3:
            return lv
    return max(cl.levels, key=lambda x: (len(x.codes), x.count))


# ------------------------------------------------------------------------------------------------ passes


@dataclass
class _Passes:
    first: np.ndarray  # kernel index of the first kernel of each pass
    last: np.ndarray  # kernel index after the last kernel of each pass (exclusive)
    cycle_ok: float  # share of passes whose once-per-pass kernels come in the same order


def _passes_from_level(seq: _Seq, lv: _Level) -> _Passes:
    codes = [c for c in lv.codes if seq.counts[c] == lv.count]
    mat = np.stack([seq.positions(c) for c in codes])  # (k, P)
    order = np.argsort(mat[:, 0], kind="stable")
    mat = mat[order]
    ok = float(np.mean(np.all(np.diff(mat, axis=0) > 0, axis=0))) if mat.shape[0] > 1 else 1.0
    if mat.shape[0] > 1 and ok < 0.9:  # the names do not keep one order: cut at the most regular one alone
        mat = seq.positions(lv.marker)[None, :]
        ok = 1.0
    firsts = mat.min(axis=0)
    lasts = mat.max(axis=0)
    n = len(seq)
    p = firsts.shape[0]
    dt = np.diff(seq.t) if n > 1 else np.zeros(0, dtype=np.int64)
    bounds = np.empty(max(0, p - 1), dtype=np.int64)
    for i in range(p - 1):
        a, b = int(lasts[i]), int(firsts[i + 1])
        bounds[i] = a + 1 + int(np.argmax(dt[a:b])) if b > a else b
    if p > 1:
        head = int(np.median(firsts[1:] - bounds))
        tail = int(np.median(bounds - 1 - lasts[:-1]))
    else:
        head = tail = 0
    head_allow = max(2 * head, head + 16)
    tail_allow = max(2 * tail, tail + 16)
    starts = np.concatenate([[max(0, int(firsts[0]) - head)], bounds])
    ends = np.concatenate([bounds, [min(n, int(lasts[-1]) + 1 + tail)]])
    starts = np.where(firsts - starts > head_allow, firsts - head, starts)
    ends = np.where(ends - 1 - lasts > tail_allow, lasts + 1 + tail, ends)
    starts = np.maximum(starts, 0)
    ends = np.minimum(np.maximum(ends, starts + 1), n)
    return _Passes(starts.astype(np.int64), ends.astype(np.int64), ok)


@dataclass
class _PassStats:
    first: np.ndarray
    last: np.ndarray
    t_start: np.ndarray
    t_end: np.ndarray
    gpu_start: np.ndarray
    gpu_end: np.ndarray
    gpu_time: np.ndarray
    kernels: np.ndarray
    rare_share: np.ndarray  # share of the pass's kernels whose names run in few passes
    rare_names: np.ndarray  # distinct rare names per pass
    graph_share: np.ndarray  # share of the pass's kernels launched by graph launches
    t_mid: np.ndarray  # launch time of the pass's middle kernel (to match NVTX ranges)
    mark_first: np.ndarray  # position of the pass's first once-per-pass kernel (its first kernel when none)
    mark_last: np.ndarray  # position of its last once-per-pass kernel (its last kernel when none)


def _pass_stats(seq: _Seq, first: np.ndarray, last: np.ndarray, markers: np.ndarray | None = None) -> _PassStats:
    """Measures of the passes [first, last); ``markers`` are the sorted positions of once-per-pass kernels."""
    n = len(seq)
    idx = np.empty(2 * first.size, dtype=np.int64)
    idx[0::2] = first
    idx[1::2] = last
    pad = np.concatenate  # a sentinel element lets an interval end at n
    gs = np.minimum.reduceat(pad([seq.start, seq.start[-1:]]), idx)[0::2]
    ge = np.maximum.reduceat(pad([seq.end, seq.end[-1:]]), idx)[0::2]
    te = np.maximum.reduceat(pad([seq.t_end, seq.t_end[-1:]]), idx)[0::2]
    cs = np.concatenate([[0], np.cumsum(seq.dur)])
    cg = np.concatenate([[0], np.cumsum(seq.graph.astype(np.int64))])
    gpu_time = cs[last] - cs[first]
    kernels = last - first
    # names that run in few passes (prefill-only kernels, autotuning, lazy initialisation)
    pid = np.searchsorted(first, np.arange(n), side="right") - 1
    inside = (pid >= 0) & (np.arange(n) < last[np.maximum(pid, 0)])
    ncodes = len(seq.names)
    key = np.unique(pid[inside].astype(np.int64) * ncodes + seq.code[inside])
    passes_per_code = np.bincount(key % ncodes, minlength=ncodes)
    rare_code = passes_per_code < max(2.0, 0.25 * first.size)
    rare_k = np.bincount(pid[inside], weights=rare_code[seq.code[inside]].astype(np.float64), minlength=first.size)
    rare_n = np.bincount(key // ncodes, weights=rare_code[key % ncodes].astype(np.float64), minlength=first.size)
    return _PassStats(
        first,
        last,
        seq.t[first],
        te,
        gs,
        ge,
        gpu_time,
        kernels,
        rare_k / np.maximum(kernels, 1),
        rare_n,
        (cg[last] - cg[first]) / np.maximum(kernels, 1),
        seq.t[(first + last - 1) // 2],
        *_marker_spans(first, last, markers),
    )


def _marker_spans(first: np.ndarray, last: np.ndarray, markers: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if markers is None or markers.size == 0:
        return first.copy(), last - 1
    a = np.searchsorted(markers, first, side="left")
    b = np.searchsorted(markers, last, side="left")
    has = b > a
    mf = np.where(has, markers[np.minimum(a, markers.size - 1)], first)
    ml = np.where(has, markers[np.maximum(b - 1, 0)], last - 1)
    return mf, ml


# ------------------------------------------------------------------------------------------------ entry points


def structure_of(frames: Any, capture_range: str | None = None, ops: pl.DataFrame | None = None) -> RunStructure:
    """``find_structure`` on a ``TraceFrames`` (anything with kernels, api, memcpy, memset, nvtx, graph_launches)."""
    return find_structure(
        frames.kernels,
        frames.api,
        getattr(frames, "memcpy", None),
        getattr(frames, "memset", None),
        getattr(frames, "nvtx", None),
        capture_range,
        ops,
        getattr(frames, "graph_launches", None),
    )


def find_structure(
    kernels: pl.DataFrame,
    api: pl.DataFrame,
    memcpy: pl.DataFrame | None = None,
    memset: pl.DataFrame | None = None,
    nvtx: pl.DataFrame | None = None,
    capture_range: str | None = None,
    ops: pl.DataFrame | None = None,
    graph_launches: pl.DataFrame | None = None,
) -> RunStructure:
    """The run's kind, phases, requests and steps, with evidence (see the module docstring).

    ``kernels``/``api``/``memcpy``/``memset``/``nvtx``/``graph_launches`` are ``TraceFrames`` columns;
    ``capture_range`` is ``"cudaProfilerApi"`` when the trace was captured inside a cudaProfilerApi range;
    ``ops`` is an op classification (columns ``name``, ``family``; the shipped rules when None)."""
    b = _Builder(kernels, api, memcpy, nvtx, capture_range, ops, graph_launches)
    return b.run()


# ------------------------------------------------------------------------------------------------ NVTX


@dataclass
class _NvtxGroup:
    name: str  # digits replaced by N
    texts: list[str]
    start: np.ndarray
    end: np.ndarray


def _nvtx_groups(nvtx: pl.DataFrame | None, pid: int | None) -> list[_NvtxGroup]:
    """User NVTX ranges of the analyzed process grouped by name (numbers as N), outermost ranges of one thread
    per group; library ranges and per-op annotations are left out."""
    if _empty(nvtx):
        return []
    assert nvtx is not None
    nv = nvtx.filter(pl.col("end").is_not_null() & pl.col("text").is_not_null() & (pl.col("end") >= pl.col("start")))
    if pid is not None and "globalTid" in nv.columns:
        nv = nv.filter(((pl.col("globalTid") // (1 << 24)) % (1 << 24)) == pid)
    if nv.is_empty():
        return []
    if "domain" in nv.columns:
        nv = nv.filter(pl.col("domain").is_null() | ~pl.col("domain").str.to_uppercase().is_in(list(LIBRARY_DOMAINS)))
    nv = nv.filter(~pl.col("text").str.contains(LIBRARY_TEXT.pattern) & (pl.col("text").str.len_chars() <= 80))
    if nv.is_empty():
        return []
    nv = nv.with_columns(pl.col("text").str.replace_all(r"\d+", "N").alias("_g"))
    out = []
    for g in sorted(nv["_g"].unique().to_list()):
        part = nv.filter(pl.col("_g") == g)
        tid = part.group_by("globalTid").len().sort(["len", "globalTid"], descending=[True, False])["globalTid"][0]
        part = part.filter(pl.col("globalTid") == tid).sort("start", "end")
        part = part.with_columns(pl.col("end").cum_max().shift(1).alias("_pe")).filter(
            pl.col("_pe").is_null() | (pl.col("start") >= pl.col("_pe"))
        )
        out.append(_NvtxGroup(g, sorted(set(part["text"].to_list())), part["start"].to_numpy(), part["end"].to_numpy()))
    return out


def _regular_stride(at: np.ndarray, cut: np.ndarray) -> int | None:
    """The stride k when the step boundaries ``at`` (boundary i lies between step i and i + 1) are every k-th
    boundary (k >= 2, at least ``STRIDE_MIN_CUTS`` of them, the last k steps after the last one) and the k steps
    before the first one start at the first step or at a boundary of ``cut``: equal groups of k steps. None
    otherwise (an irregular signal, one at every boundary, one seen once)."""
    idx = np.nonzero(at)[0]
    if idx.size < STRIDE_MIN_CUTS:
        return None
    d = np.diff(idx)
    k = int(d[0])
    if k < 2 or not bool((d == k).all()) or at.size - int(idx[-1]) != k:
        return None
    before = int(idx[0]) - k
    if before < -1 or (before >= 0 and not bool(cut[before])):
        return None
    return k


def _inside(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """How many of the sorted ``points`` each [start, end] range holds."""
    return np.searchsorted(points, end, side="right") - np.searchsorted(points, start, side="left")


# ------------------------------------------------------------------------------------------------ the builder


class _Builder:
    def __init__(
        self,
        kernels: pl.DataFrame,
        api: pl.DataFrame,
        memcpy: pl.DataFrame | None,
        nvtx: pl.DataFrame | None,
        capture_range: str | None,
        ops: pl.DataFrame | None,
        graph_launches: pl.DataFrame | None,
    ) -> None:
        self.kernels = kernels
        self.api = api
        self.memcpy = memcpy
        self.nvtx = nvtx
        self.capture = capture_range == "cudaProfilerApi"
        self.ops = ops
        self.graph_launches = graph_launches
        self.evidence: list[Evidence] = []
        self.notes: list[str] = []
        self.markers: np.ndarray | None = None

    def ev(self, fact: str, source: str, confidence: str, detail: str) -> None:
        self.evidence.append(Evidence(fact, source, confidence, detail))

    # -- the whole analysis
    def run(self) -> RunStructure:
        k = self.kernels
        if k.is_empty():
            self.notes.append("the trace has no kernel rows: no structure to find")
            return RunStructure("unstructured", "none", "high", notes=tuple(self.notes))
        pids = k.group_by("pid").len().sort(["len", "pid"], descending=[True, False])
        pid = int(pids["pid"][0]) if pids["pid"][0] is not None else None
        if pids.height > 1:
            self.notes.append(
                f"{pids.height} processes launch kernels; the structure is that of process {pid} "
                f"({int(pids['len'][0])} of {k.height} kernels)"
            )
        self.pid = pid
        self.api_index = _Api(self.api, pid)
        seq = _sequence(k, self.api_index, pid)
        self.seq = seq
        self.sig = _signals(seq, self.api_index, self.memcpy, pid)
        self.capture = self.capture or self.sig.profiler_starts.size > 0
        self.fams = _families(seq.names, seq.shorts, self.ops)
        self.groups = _nvtx_groups(self.nvtx, pid)
        clusters = _score_clusters(_clusters(_levels(seq)), seq, self.sig, self.fams)
        self.cluster: _Cluster | None = None
        first = last = None
        source = "none"
        above = self._anchor_level(clusters[0]) if clusters and clusters[0].score >= 1 else None
        if above is not None:
            inner = clusters[0]
            self.ev(
                "passes",
                "kernel-names",
                "medium",
                f"sampling/embedding kernels ({', '.join(sorted({seq.shorts[c] for c in above.codes})[:3])}) run "
                f"{above.count} time(s), around {inner.count // above.count} repeats each of a "
                f"{round(inner.period)}-kernel unit (layers)",
            )
            cl = _Cluster([above], float(len(seq)) / above.count, inner.score, list(inner.reasons))
            cl.anchors = sorted({seq.shorts[c] for c in above.codes})
            clusters = [cl]
        elif clusters and clusters[0].score >= 1 and (found := self._passes_inside(clusters)) is not None:
            while found is not None:  # a group of passes: the passes are inside (and maybe finer groups)
                outer = clusters[0]
                clusters = [found, *(c for c in clusters if c is not found and c is not outer)]
                found = self._passes_inside(clusters)
        elif clusters and clusters[0].score >= 1 and not self._forward_like(clusters[0]):
            cl = clusters[0]
            self.notes.append(
                f"a loop of {round(cl.period)} kernel(s) repeats {cl.count} times without layers, sampling or "
                "graph launches: not a forward pass"
            )
            clusters = []
        if clusters and clusters[0].score >= 1:
            cl = clusters[0]
            self.cluster = cl
            cut = above if above is not None else _cut_level(cl)
            pas = _passes_from_level(seq, cut)
            first, last = pas.first, pas.last
            self.markers = np.sort(np.concatenate([seq.positions(c) for c in cut.codes]))
            source = "kernel-period"
            self.marker = seq.shorts[cut.marker]
            if above is None:
                conf = "high" if cl.score >= 5 else "medium" if cl.score >= 3 else "low"
                why = "; ".join(cl.reasons) if cl.reasons else "no other signal"
                self.ev(
                    "passes",
                    "kernel-period",
                    conf,
                    f"repeating kernel sequence, period {round(cl.period)} kernels, {cut.count} repeats of "
                    f"{len(cut.codes)} once-per-pass kernel name(s) (marker {self.marker}); {why}",
                )
            if pas.cycle_ok < 1:
                self.notes.append(f"once-per-pass kernels keep one order in {pas.cycle_ok:.0%} of the passes")
            for other in clusters[1:3]:
                if other.score >= cl.score - 1:
                    self.notes.append(
                        f"another repeating level ({other.count} repeats, period {round(other.period)} kernels) "
                        f"scored close: {'; '.join(other.reasons) or 'no other signal'}"
                    )
        else:
            self.marker = None
            found = self._nvtx_passes()
            if found is not None:
                first, last = found
                source = "nvtx"
            else:
                found = self._graph_passes()
                if found is not None:
                    first, last = found
                    source = "graph-launches"
        if first is None or last is None or first.size == 0:
            return self._unstructured(seq)
        first, last = self._add_leading_prefills(first, last)
        ps = _pass_stats(seq, first, last, self.markers)
        return self._assemble(ps, source)

    def _forward_like(self, cl: _Cluster) -> bool:
        """A forward pass has layers inside, sampling/embedding kernels or one graph launch; a loop of a few
        kernels (HPC time steps, a test repeating one kernel) is not one."""
        return cl.finer or bool(cl.anchors) or cl.graphs or cl.whole

    def _passes_inside(self, clusters: list[_Cluster]) -> _Cluster | None:
        """The forward-pass level inside the best level ``clusters[0]`` when that level is a group of passes (a
        request) rather than one pass: its unit is k >= 2 repeats of a finer level plus a few extra kernels, and
        the extra kernels are a small part of one finer unit in both kernels and GPU time (at most
        ``GROUP_EXTRA_SHARE``). A request of passes adds little to its passes (an input conversion, an argmax over
        the outputs); a pass adds to its layers an embedding, a final norm, an LM head and sampling, a sizeable part
        of one layer (the LM head alone is a large share of a layer's GPU time), so layers never pass. On success
        the finer cluster is marked ``whole``, gets the reason and the evidence, and is returned."""
        outer = clusters[0]
        seq = self.seq
        ocut = _cut_level(outer)
        pos = seq.positions(ocut.marker)
        nper, nc = pos.size - 1, len(seq.names)
        if nper < 2 or nper * nc > 20_000_000:
            return None
        inners = [c for c in clusters if c is not outer and c.period <= outer.period / 2 and c.count >= 2 * ocut.count]
        if not inners:
            return None
        # each name's count per outer unit (between consecutive markers; the lower median over the units) and its
        # mean GPU time
        n = len(seq)
        unit = np.searchsorted(pos, np.arange(n), side="right") - 1
        ok = (unit >= 0) & (unit < nper)
        per = np.bincount(unit[ok] * nc + seq.code[ok], minlength=nper * nc).reshape(nper, nc)
        m = np.sort(per, axis=0)[(nper - 1) // 2]
        dur = np.bincount(seq.code, weights=seq.dur.astype(np.float64), minlength=nc) / np.maximum(seq.counts, 1)
        for inner in sorted(inners, key=lambda c: (-c.period, c.count)):
            k = round(outer.period / inner.period)
            icut = _cut_level(inner)
            if k < 2 or abs(icut.count - k * ocut.count) > k + 0.05 * icut.count:
                continue
            extra = m % k  # what does not divide evenly among the k finer units
            body = m - extra
            ek, bk = float(extra.sum()), float(body.sum()) / k
            et, bt = float((extra * dur).sum()), float((body * dur).sum()) / k
            if not (1 <= ek <= GROUP_EXTRA_SHARE * bk and et <= GROUP_EXTRA_SHARE * bt and bt > 0):
                continue
            names = sorted({seq.shorts[c] for c in np.nonzero(extra)[0].tolist()})
            share = k * bt / (k * bt + et)
            why = (
                f"whole forward passes: {k} of them make up {k * bk:.0f} of the {k * bk + ek:.0f} kernels and "
                f"{share:.1%} of the GPU time of the {round(outer.period)}-kernel level ({ocut.count} repeats, "
                f"marker {seq.shorts[ocut.marker]}), whose {ek:.0f} other kernel(s) per repeat "
                f"({', '.join(names[:3])}) belong to no pass: that level groups {k} passes (requests)"
            )
            inner.whole = True
            inner.score += 3
            inner.reasons = [*inner.reasons, why]
            if outer.round_trip_ok:
                inner.reasons.append(f"{outer.round_trips:g} host round trip(s) per group of {k} passes")
            self.notes.append(
                f"the {round(outer.period)}-kernel level ({outer.count} repeats: {'; '.join(outer.reasons)}) is a "
                f"group of {k} forward passes, not a pass"
            )
            return inner
        return None

    def _anchor_level(self, cl: _Cluster) -> _Level | None:
        """When the most regular level has no sampling/embedding kernels but such kernels run a few times each
        around many repeats of it (a prefill-only run: embedding, the layers, the LM head and argmax), the level of
        those kernels is the forward pass and the repeating unit is a layer."""
        if cl.anchors or cl.graphs or cl.round_trip_ok:
            return None
        seq = self.seq
        unit = seq.positions(_cut_level(cl).marker)
        by: dict[int, list[int]] = {}
        for c, n in enumerate(seq.counts.tolist()):
            if 1 <= n <= cl.count // 2 and _is_anchor(seq.names[c], seq.shorts[c], self.fams[c]):
                by.setdefault(int(n), []).append(c)
        best = [(len(v), n) for n, v in by.items() if len(v) >= 2 and (n < MIN_SEGMENTS or n >= cl.count // 64)]
        if not best:
            return None
        _, n = max(best)
        codes = sorted(by[n])
        pos = seq.positions(codes[0])
        med, reg, cov, width, mr = _regularity(pos) if n > 1 else (float(len(seq)), 1.0, 1.0, 0.0, 1.0)
        if n >= MIN_SEGMENTS and reg * cov < 0.6:
            return None
        span = np.concatenate([seq.positions(c) for c in codes])
        held = _inside(unit, np.array([span.min()]), np.array([span.max()]))[0]
        if held < 0.5 * unit.size:  # the sampling/embedding kernels must hold the repeating unit
            return None
        return _Level(n, codes, codes[0], med, reg, cov, width / max(len(seq), 1), mr)

    # -- fallbacks
    def _nvtx_passes(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Steps from NVTX step ranges when the kernel sequence has no period: the step-named group with the
        most ranges (one nesting level)."""
        steps = [g for g in self.groups if STEP_NAMES.search(g.name) and not REQUEST_NAMES.search(g.name)]
        steps = [g for g in steps if g.start.size >= 1 and not re.search(r"(?i)layer", g.name)]
        if not steps:
            return None
        g = max(steps, key=lambda x: (x.start.size, x.name))
        t = self.seq.t
        first = np.searchsorted(t, g.start, side="left")
        last = np.searchsorted(t, g.end, side="right")
        keep = last > first
        if not keep.any():
            return None
        self.nvtx_step_group = g
        self.ev("passes", "nvtx", "medium", f"NVTX ranges '{g.name}' ({g.start.size}): no repeating kernel sequence")
        return first[keep], last[keep]

    def _graph_passes(self) -> tuple[np.ndarray, np.ndarray] | None:
        graphs = self.api_index.calls(GRAPH_LAUNCH_API)
        if graphs.height < 2:
            return None
        t = np.sort(graphs["start"].to_numpy())
        first = np.searchsorted(self.seq.t, t, side="left")
        last = np.concatenate([first[1:], [len(self.seq)]])
        keep = last > first
        self.ev("passes", "graph-launches", "medium", f"{graphs.height} graph launches, one step each")
        return first[keep], last[keep]

    def _add_leading_prefills(self, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A prefill pass that lacks the once-per-pass kernels of the decode passes (eager prefill before graphed
        decode steps whose kernels the trace does not show): forward-pass kernels launched just before a pass,
        after an idle stretch, with sampling/embedding kernels among them."""
        seq = self.seq
        if first.size < 2:
            return first, last
        dt_host = seq.t[first[1:]] - seq.t[last[:-1] - 1]
        typical = float(np.median(dt_host)) if dt_host.size else 0.0
        prev_end = np.concatenate([[0], last[:-1]])
        add_first: list[int] = []
        add_last: list[int] = []
        med_k = float(np.median(last - first))
        for i in range(first.size):
            a, b = int(prev_end[i]), int(first[i])
            if b - a < 4:
                continue
            gaps = np.diff(seq.t[a : b + 1])
            big = np.nonzero(gaps > max(GAP_FACTOR * typical, MIN_REQUEST_GAP_NS))[0]
            s = a + int(big[-1]) + 1 if big.size else a
            if b - s < max(4, 0.25 * med_k) or (s == a and i > 0 and big.size == 0 and a > 0):
                continue
            codes = seq.code[s:b]
            anchor = any(_is_anchor(seq.names[c], seq.shorts[c], self.fams[c]) for c in np.unique(codes).tolist())
            init = all(INIT_KERNELS.search(seq.names[c]) or AUTOTUNE_KERNELS.search(seq.names[c]) for c in codes[:64])
            loads = self.sig.module_loads
            compiling = loads.size > 0 and _inside(loads, seq.t[s : s + 1], seq.t[b - 1 : b])[0] > 0
            # kernels run while modules load are compilation/autotuning; a forward pass has about as many kernels
            # as the others unless they run inside graphs the trace does not show
            hidden = self.graph_launches is not None and self.graph_launches.height > 0
            sized = hidden or b - s <= 3 * med_k
            if anchor and not init and not compiling and sized:
                add_first.append(s)
                add_last.append(b)
        if not add_first:
            return first, last
        f = np.concatenate([first, np.array(add_first, dtype=np.int64)])
        la = np.concatenate([last, np.array(add_last, dtype=np.int64)])
        o = np.argsort(f, kind="stable")
        self.ev(
            "prefill",
            "kernel-mix",
            "medium",
            f"{len(add_first)} forward pass(es) without the decode steps' once-per-pass kernels just before a "
            "request's steps",
        )
        return f[o], la[o]

    def _unstructured(self, seq: _Seq) -> RunStructure:
        self.ev("kind", "kernel-period", "medium", "no kernel sequence repeats with a period; no step ranges")
        t0, t1 = int(seq.t.min()), int(max(seq.t_end.max(), seq.t.max()))
        phases = self._loading_phases(t0, None)
        return RunStructure(
            "unstructured",
            "none",
            "medium",
            phases=tuple(phases),
            evidence=tuple(self.evidence),
            notes=(*self.notes, f"{len(seq)} kernels, {len(seq.names)} distinct names between {t0} and {t1}"),
            pid=self.pid,
        )

    # -- requests, kinds, warm-up, phases
    def _assemble(self, ps: _PassStats, source: str, again: bool = True) -> RunStructure:
        seq = self.seq
        p = ps.first.size
        n_evidence, n_notes = len(self.evidence), len(self.notes)
        med_gpu = float(np.median(ps.gpu_time)) if p else 0.0
        heavy = ps.gpu_time >= HEAVY_FACTOR * max(med_gpu, 1.0)
        mode = float(np.median(ps.graph_share)) if p else 0.0
        distinct = (
            (ps.rare_share >= 0.1)
            | (heavy & (ps.rare_names >= 2))
            | (np.abs(ps.graph_share - mode) > 0.5)  # eager prefill before graphed decode steps
        )
        if p < 3:
            distinct = heavy | (ps.rare_share >= 0.5)
        # NVTX ranges that line up with the passes
        nv_prefill, nv_request = self._nvtx_check(ps)
        if nv_prefill is not None:
            distinct = nv_prefill
        # request boundaries between pass i and i+1
        gap = np.maximum(ps.gpu_start[1:] - ps.gpu_end[:-1], 0)  # GPU idle between steps
        cut = np.zeros(max(p - 1, 0), dtype=bool)
        moves: dict[int, int] = {}
        reasons: list[str] = []
        if p > 1:
            med_gap = float(np.median(gap))
            thr = max(GAP_FACTOR * med_gap, MIN_REQUEST_GAP_NS)
            by_gap = gap >= thr
            led = distinct[1:] & ~distinct[:-1]
            # modules loaded between two steps: set-up work inside a request (compilation, lazy loading), not its end
            compiling = _inside(self.sig.module_loads, ps.t_end[:-1], ps.t_start[1:]) > 0
            if (by_gap & compiling).any():
                self.notes.append(
                    f"{int((by_gap & compiling).sum())} idle gap(s) between steps hold module loads "
                    "(compilation, lazy loading): not request boundaries"
                )
                by_gap &= ~compiling
            if led.any() and (by_gap & ~led).any():
                # requests start with a prefill step: a long gap before a decode step is inside a request
                inner = by_gap & ~led
                self.notes.append(
                    f"{int(inner.sum())} idle gap(s) of at least {thr / 1e6:.2f} ms before decode steps are inside "
                    "requests (compilation, host work), not request boundaries"
                )
                by_gap = by_gap & led
            if by_gap.any():
                cut |= by_gap
                self.ev(
                    "requests",
                    "idle-gaps",
                    "medium",
                    f"{int(by_gap.sum())} idle gap(s) of at least {thr / 1e6:.2f} ms between steps "
                    f"(typical gap {med_gap / 1e6:.3f} ms)",
                )
            by_prefill = distinct[1:] & ~distinct[:-1]
            if by_prefill.any():
                cut |= by_prefill
                reasons.append("prefill")
                self.ev(
                    "requests",
                    "kernel-mix",
                    "high" if nv_prefill is not None else "medium",
                    f"{int(by_prefill.sum())} step(s) whose kernel mix differs from the steps before them "
                    "(prefill) start a request",
                )
            for api_name, spos in self.sig.sync_positions.items():
                # a kind of sync that sits between some steps only (end of a request), never inside a step: between
                # the last once-per-pass kernel of a step and the first of the next
                lo = ps.mark_last[:-1] + 1
                hi = ps.mark_first[1:]
                at = _inside(spos, lo, hi) > 0
                inner = int((_inside(spos, ps.mark_first + 1, ps.mark_last) > 0).sum())
                at &= ~compiling
                if led.any():
                    at &= led
                # (a pass with syncs of its own, such as cuDNN autotuning in the first pass, may exist)
                if 1 <= at.sum() <= 0.5 * at.size and inner <= max(1, 0.1 * p) and not (at & cut).all():
                    cut |= at
                    for i in np.nonzero(at)[0].tolist():  # the next request starts at the sync
                        moves[i] = int(spos[np.searchsorted(spos, lo[i])])
                    self.ev(
                        "requests",
                        "host-syncs",
                        "medium",
                        f"{api_name} between steps at {int(at.sum())} of {at.size} step boundaries only",
                    )
            if self.sig.profiler_starts.size > 1:
                st = self.sig.profiler_starts
                by_cap = _inside(st, ps.t_end[:-1], ps.t_start[1:]) > 0
                if by_cap.any():
                    cut |= by_cap
                    self.ev("requests", "capture-range", "high", f"{st.size} cudaProfilerStart calls")
            if nv_request is not None and self.nv_requests_inside is not None and self.nv_requests_inside.all():
                # NVTX request ranges that hold every step are the requests: a gap, a sync or a copy inside one of
                # them is the request's own work (an allocation, a slow step), not a boundary
                inside = cut & ~nv_request
                if inside.any():
                    self.notes.append(
                        f"{int(inside.sum())} boundary signal(s) (idle gaps, syncs, kernel mix) fall inside NVTX "
                        "request ranges that hold every step: not request boundaries"
                    )
                    self.evidence = [e for e in self.evidence if e.fact != "requests" or e.source == "nvtx"]
                cut = nv_request.copy()
            else:
                if nv_request is not None:
                    cut |= nv_request
                self._stride_cuts(ps, cut, gap, med_gap, compiling, led)
        moves = {i: q for i, q in moves.items() if cut[i] and ps.first[i] < q < ps.last[i + 1]}
        if moves:
            first, last = ps.first.copy(), ps.last.copy()
            for i, q in moves.items():
                last[i] = q
                first[i + 1] = q
            ps = _pass_stats(seq, first, last, self.markers)
        split = self._split_heads(ps) if p else None
        if split is not None and again:
            # a request's first pass holds a prefill without the once-per-pass kernels (eager prefill before
            # compiled or graphed decode steps): measure again with the prefill as a pass of its own
            del self.evidence[n_evidence:], self.notes[n_notes:]
            self.ev("prefill", "kernel-mix", "medium", split[2])
            return self._assemble(_pass_stats(seq, split[0], split[1], self.markers), source, again=False)
        req_of = np.concatenate([[0], np.cumsum(cut)]).astype(np.int64) if p else np.zeros(0, dtype=np.int64)
        nreq = int(req_of[-1]) + 1 if p else 0
        req_first = np.searchsorted(req_of, np.arange(nreq), side="left")
        req_last = np.searchsorted(req_of, np.arange(nreq), side="right") - 1
        # kinds
        lead = np.zeros(p, dtype=bool)  # leading distinct passes of each request
        for r in range(nreq):
            i = int(req_first[r])
            while i <= req_last[r] and distinct[i]:
                lead[i] = True
                i += 1
        starts_distinct = [bool(lead[req_first[r]]) for r in range(nreq)]
        kind, kind_conf = self._run_kind(ps, lead, starts_distinct, req_first, req_last)
        if (
            kind == "llm-decode"
            and not lead.any()
            and not self.nv_decode
            and p > 1
            and self._gemm_led(ps).mean() >= 0.9
        ):
            # identical passes that multiply matrices (GEMM, prefill attention) rather than vectors: prompts only
            kind = "llm-prefill"
            self.evidence = [e for e in self.evidence if e.fact != "kind"]
            self.ev("kind", "kernel-mix", "medium", f"all {p} passes run GEMMs, not GEMVs: prefill passes")
            req_of = np.arange(p, dtype=np.int64)
            nreq = p
            req_first = req_of.copy()
            req_last = req_of.copy()
            lead = np.ones(p, dtype=bool)
        if kind == "llm-decode" or kind == "llm-prefill":
            step_kind = np.where(lead, "prefill", "decode")
            if kind == "llm-prefill":
                step_kind[:] = "prefill"
        else:
            step_kind = np.full(p, "iteration")
        # host end of each step: just before the next step of its request
        t_end = ps.t_end.copy()
        same = req_of[1:] == req_of[:-1]
        t_end[:-1] = np.where(same, ps.t_start[1:] - 1, t_end[:-1])
        warm, warm_why = self._warmup(ps, req_first, req_last, step_kind, nv_request is not None)
        steps = tuple(
            Step(
                i,
                int(req_of[i]),
                str(step_kind[i]),
                int(ps.t_start[i]),
                int(t_end[i]),
                int(ps.gpu_start[i]),
                int(ps.gpu_end[i]),
                int(ps.kernels[i]),
                int(ps.gpu_time[i]),
            )
            for i in range(p)
        )
        requests = []
        for r in range(nreq):
            a, b = int(req_first[r]), int(req_last[r])
            ks = step_kind[a : b + 1]
            requests.append(
                Request(
                    r,
                    int(ps.t_start[a]),
                    int(t_end[b]),
                    int(ps.gpu_start[a : b + 1].min()),
                    int(ps.gpu_end[a : b + 1].max()),
                    warm[r],
                    warm_why[r],
                    int((ks == "prefill").sum()),
                    int((ks == "decode").sum()),
                    int((ks == "iteration").sum()),
                )
            )
        phases = self._loading_phases(int(seq.t.min()), int(ps.t_start[0]))
        for rq in requests:
            if rq.warmup:
                phases.append(Phase("warm-up", rq.start, rq.end, f"request {rq.index}: {rq.reason}"))
        measured = [rq for rq in requests if not rq.warmup]
        if measured:
            phases.append(
                Phase(
                    "measured",
                    min(r.start for r in measured),
                    max(r.end for r in measured),
                    f"{len(measured)} request(s)",
                )
            )
        per = int(np.median(ps.kernels[~lead])) if (~lead).any() else int(np.median(ps.kernels))
        conf = min(
            (e.confidence for e in self.evidence if e.fact == "passes"),
            key=CONFIDENCE.index,
            default="low",
        )
        if kind_conf == "low" and conf == "high":
            conf = "medium"
        return RunStructure(
            kind,
            source,
            conf,
            steps,
            tuple(requests),
            tuple(sorted(phases, key=lambda ph: (ph.start, ph.end))),
            tuple(self.evidence),
            tuple(self.notes),
            per,
            self.marker,
            self.pid,
        )

    def _nvtx_check(self, ps: _PassStats) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Check NVTX groups against the passes. Returns (prefill mask from lined-up prefill ranges, request cuts
        from lined-up request ranges)."""
        p = ps.first.size
        prefill: np.ndarray | None = None
        cuts: np.ndarray | None = None
        self.nv_llm = False
        self.nv_decode = False  # lined-up NVTX ranges named like decode steps or tokens
        self.nv_requests_inside: np.ndarray | None = None
        step_like = [g for g in self.groups if STEP_NAMES.search(g.name) and not REQUEST_NAMES.search(g.name)]
        for g in step_like:
            cnt = _inside(ps.t_mid, g.start, g.end)
            share = float((cnt == 1).mean()) if cnt.size else 0.0
            if share >= 0.8:
                self.ev(
                    "passes",
                    "nvtx",
                    "high",
                    f"NVTX ranges '{g.name}' ({g.start.size}) line up with the steps (one step each in {share:.0%})",
                )
                if PREFILL_NAMES.search(g.name) or DECODE_NAMES.search(g.name):
                    self.nv_llm = True
                if DECODE_NAMES.search(g.name) and not PREFILL_NAMES.search(g.name):
                    self.nv_decode = True
                if PREFILL_NAMES.search(g.name):
                    idx = np.searchsorted(g.start, ps.t_mid, side="right") - 1
                    hit = (idx >= 0) & (ps.t_mid <= g.end[np.maximum(idx, 0)])
                    prefill = hit if prefill is None else (prefill | hit)
            elif g.start.size >= 3:
                self.notes.append(
                    f"NVTX ranges '{g.name}' ({g.start.size}) do not line up with the steps "
                    f"(median {float(np.median(cnt)) if cnt.size else 0:g} steps per range): not used"
                )
        for g in self.groups:
            if not REQUEST_NAMES.search(g.name):
                continue
            cnt = _inside(ps.t_mid, g.start, g.end)
            if not cnt.size or (cnt >= 1).mean() < 0.9:
                continue
            idx = np.searchsorted(g.start, ps.t_mid, side="right") - 1
            hit = (idx >= 0) & (ps.t_mid <= g.end[np.maximum(idx, 0)])
            label = np.where(hit, idx, -1)
            if p > 1:
                c = label[1:] != label[:-1]
                cuts = c if cuts is None else (cuts | c)
            self.nv_requests_inside = hit if self.nv_requests_inside is None else (self.nv_requests_inside | hit)
            self.ev(
                "requests",
                "nvtx",
                "high",
                f"NVTX request ranges '{g.name}' ({g.start.size}) hold {int(hit.sum())} of {p} steps",
            )
        return prefill, cuts

    def _stride_cuts(
        self,
        ps: _PassStats,
        cut: np.ndarray,
        gap: np.ndarray,
        med_gap: float,
        compiling: np.ndarray,
        led: np.ndarray,
    ) -> None:
        """Request boundaries from a signal that is not one by itself (a host-to-device input copy, a read back, a
        kind of sync, an idle gap a few times the typical one) but recurs at a fixed stride: every k-th step
        boundary (k >= 2), at least twice, up to the last k steps, from the run start or an earlier boundary, and
        nowhere else between steps; the stride then divides the steps into equal requests. Boundaries with module
        loads in them (lazy loading of a request's last kernel, compilation) count as such a boundary when the
        stride holds with them; otherwise they are left out and the stride is sought among the others. Adds to
        ``cut``."""
        p = ps.first.size
        if p < 2 * STRIDE_MIN_CUTS + 1:
            return
        lo = ps.mark_last[:-1] + 1
        hi = ps.mark_first[1:]
        signals: list[tuple[str, str, np.ndarray]] = []
        for api_name, spos in self.sig.sync_positions.items():
            signals.append(("host-syncs", api_name, spos))
        for label, cpos in self.sig.copy_positions.items():
            signals.append(("copies", label, cpos))
        for source, label, pos in signals:
            if int((_inside(pos, ps.mark_first + 1, ps.mark_last) > 0).sum()) > max(1, 0.1 * p):
                continue  # it also runs inside the steps
            at = _inside(pos, lo, hi) > 0
            self._stride_cut(cut, at, compiling, led, source, label)
        floor = max(STRIDE_GAP_FACTOR * med_gap, MIN_STRIDE_GAP_NS)
        self._stride_cut(
            cut, gap >= floor, compiling, led, "idle-gaps", f"an idle gap of at least {floor / 1e6:.3f} ms"
        )

    def _stride_cut(
        self, cut: np.ndarray, at: np.ndarray, compiling: np.ndarray, led: np.ndarray, source: str, label: str
    ) -> None:
        if led.any():
            at = at & led  # requests start with a prefill step: never cut before a decode step
        k = _regular_stride(at, cut)
        if k is None:
            at = at & ~compiling
            k = _regular_stride(at, cut)
        if k is None or not (at & ~cut).any():
            return
        cut |= at
        self.ev(
            "requests",
            source,
            "medium",
            f"{label} between steps every {k} steps ({int(at.sum())} of {at.size} step boundaries) and nowhere "
            f"else between steps: requests of {k} steps",
        )

    def _split_heads(self, ps: _PassStats) -> tuple[np.ndarray, np.ndarray, str] | None:
        """Split a pass whose kernels before its once-per-pass kernels are far more than the other passes have
        there and form a forward pass of their own (matrix products and sampling/embedding kernels): that head is
        an eager prefill before compiled or graphed decode steps."""
        if self.markers is None or ps.first.size < 4:
            return None
        seq = self.seq
        head = ps.mark_first - ps.first
        typical = int(np.median(head))
        med_k = float(np.median(ps.kernels))
        linear = {"gemm", "gemv", "attention", "attention-prefill", "attention-decode", "moe"}
        cuts: list[int] = []
        long_head = (head - typical >= max(16, 0.25 * med_k)) & (head - typical <= 4 * med_k)
        for i in np.nonzero(long_head)[0].tolist():
            a, m = int(ps.first[i]), int(ps.mark_first[i]) - typical
            codes = seq.code[a:m]
            if int(np.isin(np.array(self.fams, dtype=object)[codes], list(linear)).sum()) < 2:
                continue
            if any(_is_anchor(seq.names[c], seq.shorts[c], self.fams[c]) for c in np.unique(codes).tolist()):
                cuts.append(i)
        if not cuts:
            return None
        at = np.array(cuts, dtype=np.int64)
        mid = ps.mark_first[at] - typical
        first = np.sort(np.concatenate([ps.first, mid]))
        last = np.sort(np.concatenate([ps.last, mid]))
        return first, last, f"{at.size} request(s) start with an eager prefill before their first repeating step"

    def _gemm_led(self, ps: _PassStats) -> np.ndarray:
        """Passes whose matrix products are GEMMs (a prompt's tokens) more than GEMVs (one token)."""
        fam = np.array([*self.fams, "other"])
        gemm = np.isin(fam, ["gemm", "attention-prefill"])[self.seq.code]
        gemv = np.isin(fam, ["gemv", "attention-decode"])[self.seq.code]
        cm = np.concatenate([[0], np.cumsum(gemm)])
        cv = np.concatenate([[0], np.cumsum(gemv)])
        return (cm[ps.last] - cm[ps.first]) > (cv[ps.last] - cv[ps.first])

    def _run_kind(
        self,
        ps: _PassStats,
        lead: np.ndarray,
        starts_distinct: list[bool],
        req_first: np.ndarray,
        req_last: np.ndarray,
    ) -> tuple[str, str]:
        anchors = self.cluster.anchors if self.cluster is not None else []
        nreq = len(starts_distinct)
        by_req = nreq >= 2 and sum(starts_distinct) >= max(2, 0.5 * nreq)
        signals = []
        if anchors:
            signals.append("once-per-pass sampling/embedding kernels " + ", ".join(anchors[:3]))
        if self.nv_llm:
            signals.append("NVTX prefill/decode ranges line up with the steps")
        if by_req:
            signals.append(f"{sum(starts_distinct)} of {nreq} requests start with a step of their own kernel mix")
        if not signals:
            self.ev("kind", "kernel-mix", "medium", "repeated forward passes, no prefill/decode or sampling signal")
            return "iterations", "medium"
        conv = self._convolution_led(ps)
        if conv is not None:
            self.ev(
                "kind",
                "kernel-mix",
                "medium",
                f"not an LLM: {conv}; the LLM signals ({'; '.join(signals)}) do not make it one: repeated forward "
                "passes",
            )
            return "iterations", "medium"
        conf = "high" if len(signals) >= 2 else "medium"
        decode = int((~lead).sum())
        if decode == 0 or decode <= nreq // 2:
            self.ev("kind", "kernel-mix", conf, "LLM without decode steps: " + "; ".join(signals))
            return "llm-prefill", conf
        self.ev("kind", "kernel-mix", conf, "LLM decode: " + "; ".join(signals))
        return "llm-decode", conf

    def _convolution_led(self, ps: _PassStats) -> str | None:
        """Why the passes are not an LLM's when their kernel time is led by convolution and no kernel is attention
        (a CNN: an argmax over its outputs or a classifier head looks like sampling); None otherwise."""
        seq = self.seq
        a, b = int(ps.first[0]), int(ps.last[-1])
        if b <= a:
            return None
        codes = seq.code[a:b]
        nc = len(seq.names)
        t = np.bincount(codes, weights=seq.dur[a:b].astype(np.float64), minlength=nc)
        n = np.bincount(codes, minlength=nc)
        by: dict[str, float] = {}
        for c in np.nonzero(n)[0].tolist():
            by[self.fams[c]] = by.get(self.fams[c], 0.0) + float(t[c])
        if not by or any(f in ATTENTION_FAMILIES for f in by):
            return None
        total = sum(by.values())
        top = min(by, key=lambda f: (-by[f], f))
        if top not in CONV_FAMILIES or total <= 0:
            return None
        share = by[top] / total
        return f"kernel time led by convolution ({top} {share:.0%} of the passes' GPU time), no attention kernels"

    def _warmup(
        self,
        ps: _PassStats,
        req_first: np.ndarray,
        req_last: np.ndarray,
        step_kind: np.ndarray,
        nv_requests: bool,
    ) -> tuple[list[bool], list[str]]:
        nreq = req_first.size
        warm = [False] * nreq
        why = [""] * nreq
        seq = self.seq
        if nv_requests and self.nv_requests_inside is not None:
            for r in range(nreq):
                if not self.nv_requests_inside[req_first[r] : req_last[r] + 1].any():
                    warm[r] = True
                    why[r] = "outside the NVTX request ranges"
            if any(warm):
                self.ev("warm-up", "nvtx", "high", f"{sum(warm)} request(s) outside the NVTX request ranges")
        loads = self.sig.module_loads
        tune_codes = [c for c, n in enumerate(seq.names) if AUTOTUNE_KERNELS.search(n)]
        tune_pos = np.sort(np.concatenate([seq.positions(c) for c in tune_codes])) if tune_codes else np.zeros(0)
        for r in range(nreq):
            a, b = int(req_first[r]), int(req_last[r])
            t0, t1 = int(ps.t_start[a]), int(ps.t_end[b])
            nl = int(_inside(loads, np.array([t0]), np.array([t1]))[0]) if loads.size else 0
            nt = int(_inside(tune_pos, np.array([ps.first[a]]), np.array([ps.last[b] - 1]))[0]) if tune_pos.size else 0
            parts = []
            if nl:
                parts.append(f"{nl} module load(s) inside (lazy loading or JIT)")
            if nt:
                parts.append(f"{nt} autotuning kernel(s) inside")
            if parts and not warm[r]:
                warm[r] = True
                why[r] = "; ".join(parts)
                self.ev("warm-up", "module-loads" if nl else "autotuning", "high", f"request {r}: {why[r]}")
        if not self.capture and not nv_requests and nreq >= 2 and not warm[0]:

            def shape(r: int) -> tuple[int, int, int]:
                ks = step_kind[req_first[r] : req_last[r] + 1]
                return int((ks == "prefill").sum()), int((ks == "decode").sum()), int((ks == "iteration").sum())

            s0, s1 = shape(0), shape(1)
            if s0[0] == s1[0] and all(abs(x - y) <= 1 for x, y in zip(s0, s1, strict=True)):
                warm[0] = True
                why[0] = "the first of identical requests in a whole-run capture"
                self.ev("warm-up", "kernel-mix", "medium", f"request 0 has the same steps as request 1 {s1}")
        if not self.capture and not nv_requests and nreq >= 3:
            # whole run: requests before the first one shaped like the last are warm-up when at least two requests
            # share the last one's shape (the steady measured requests)
            def shape_of(r: int) -> tuple[int, int, int]:
                ks = step_kind[req_first[r] : req_last[r] + 1]
                return int((ks == "prefill").sum()), int((ks == "decode").sum()), int((ks == "iteration").sum())

            shapes = [shape_of(r) for r in range(nreq)]
            ref = ps.kernels[req_first[-1] : req_last[-1] + 1]

            def same_steps(r: int) -> bool:
                # the same steps with the same kernel counts (one step may differ, two may not)
                ks = ps.kernels[req_first[r] : req_last[r] + 1]
                n = min(ks.size, ref.size)
                off = np.abs(ks[:n] - ref[:n]) > np.maximum(2, 0.05 * ref[:n])
                return abs(ks.size - ref.size) <= 1 and int(off.sum()) <= 1

            steady = [
                all(abs(x - y) <= 1 for x, y in zip(sh, shapes[-1], strict=True)) and same_steps(r)
                for r, sh in enumerate(shapes)
            ]
            if sum(steady) >= 2:
                lead_n = steady.index(True)
                for r in range(lead_n):
                    if not warm[r]:
                        warm[r] = True
                        why[r] = "before the steady requests (the steps and kernel counts of the last request)"
                if lead_n:
                    self.ev(
                        "warm-up",
                        "kernel-mix",
                        "medium",
                        f"{lead_n} request(s) before the first one with the steps and kernel counts of the last one",
                    )
        if nreq and all(warm):
            warm[-1] = False
            self.notes.append(f"every request looked like warm-up; request {nreq - 1} is kept as measured")
            why[-1] = ""
        return warm, why

    def _loading_phases(self, t0: int, first_start: int | None) -> list[Phase]:
        """Loading, compilation and autotuning before the first step (or in the whole trace when none)."""
        seq = self.seq
        out: list[Phase] = []
        end = first_start if first_start is not None else int(seq.t.max()) + 1
        found = []
        api0 = int(self.api["start"].min()) if self.api.height else t0  # type: ignore[arg-type]
        start = min(t0, api0)
        loads = self.sig.module_loads
        nl = int((loads < end).sum())
        if nl:
            found.append(f"{nl} module loads")
            self.ev("phase", "module-loads", "high", f"{nl} module loads before the first step")
        nw = int((self.sig.weight_copies < end).sum())
        if nw:
            found.append(f"{nw} host-to-device copies of 1 MiB or more (weights)")
            self.ev("phase", "weight-copies", "high", f"{nw} large host-to-device copies before the first step")
        head = seq.code[seq.t < end]
        init = [c for c in np.unique(head).tolist() if INIT_KERNELS.search(seq.names[c])]
        n_init = int(np.isin(head, init).sum()) if init else 0
        if n_init >= 4:  # one random prompt is not weight initialisation
            found.append(
                f"{n_init} initialisation kernels (" + ", ".join(sorted({seq.shorts[c] for c in init})[:3]) + ")"
            )
        tune = [c for c in range(len(seq.names)) if AUTOTUNE_KERNELS.search(seq.names[c])]
        if tune:
            pos = np.sort(np.concatenate([seq.positions(c) for c in tune]))
            a, b = int(seq.t[pos[0]]), int(seq.end[pos[-1]])
            out.append(Phase("autotuning", a, b, f"{pos.size} autotuning kernels ({seq.shorts[tune[0]]}, ...)"))
            self.ev("phase", "autotuning", "high", f"{pos.size} autotuning kernels")
        comp = self._compile_ranges()
        if comp is not None:
            out.append(Phase("compilation", comp[0], comp[1], f"{comp[2]} compiler NVTX ranges"))
            self.ev("phase", "nvtx", "medium", f"{comp[2]} compiler NVTX ranges (library domain, not steps)")
        if first_start is not None and (found or out) and end > start:
            out.append(Phase("loading", start, end - 1, "; ".join(found) or "compilation and autotuning"))
        return out

    def _compile_ranges(self) -> tuple[int, int, int] | None:
        nv = self.nvtx
        if _empty(nv):
            return None
        assert nv is not None
        c = nv.filter(
            pl.col("end").is_not_null()
            & pl.col("text").is_not_null()
            & pl.col("text").str.contains(r"^(XlaCompile|XlaModule|XlaPass|XlaOptimize|XlaEmit|Xla\w*Compil)")
        )
        if c.is_empty():
            return None
        return int(c["start"].min()), int(c["end"].max()), c.height  # type: ignore[arg-type]
