"""The finding catalogue and the rules that raise findings. Stable kebab-case ids; one place for each text.

Each rule reads a ``Facts`` bundle (window, steps, host summary, tails, capture settings, diagnostics) and
returns zero or more ``Finding``s with severity, numbers as evidence and the action to take.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import median

import polars as pl

from ..units import format_bytes, format_ns
from .distribution import percentile, scalar_int, tail_score
from .host import SHORT_GAP_NS, ApiGroup, HostSummary, span_overlaps, time_inside
from .phases import Steps, Window

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}

# id -> (title, action). The action text is the fix, written once.
CATALOGUE: dict[str, tuple[str, str]] = {
    "graph-trace-not-node": (
        "CUDA graphs were traced as opaque launches",
        "recapture with --cuda-graph-trace=node so every kernel inside the graphs is recorded "
        "(nsys profile --cuda-graph-trace=node --export=sqlite ...)",
    ),
    "no-kernels": (
        "No CUDA kernels in the analyzed window",
        "check that the capture range was hit, that CUDA was traced (--trace=cuda) and that nsys could collect the "
        "GPU's activity on this platform (not on WSL 2; see the diagnostics of nsys-doctor info), or widen --window",
    ),
    "host-sync-in-inference": (
        "The host waits for the GPU inside the step loop",
        "remove per-step synchronization (.item(), .cpu(), cudaStreamSynchronize, cudaEventSynchronize): keep "
        "results on the GPU (in a decode loop, the sampled token), read them asynchronously (pinned buffer + event) "
        "or batch the reads",
    ),
    "pageable-memcpy": (
        "Copies from pageable host memory inside the analyzed window",
        "allocate the host buffer once in pinned memory (cudaHostAlloc / pin_memory()) and reuse it; pageable "
        "copies are staged and synchronous",
    ),
    "sync-memcpy": (
        "Synchronous cudaMemcpy inside the analyzed window",
        "use cudaMemcpyAsync on the compute stream with pinned memory, or keep the data on the GPU",
    ),
    "sync-memset": (
        "Synchronous cudaMemset inside the analyzed window",
        "use cudaMemsetAsync on the compute stream (or fold the clear into a kernel)",
    ),
    "alloc-churn": (
        "Memory is allocated and freed inside the analyzed window",
        "preallocate buffers (or use a caching/stream-ordered pool) outside the step loop",
    ),
    "launch-bound": (
        "Launch-bound: the GPU waits for the host between kernels",
        'capture the step in a CUDA graph (torch.compile mode="reduce-overhead", cudaGraphLaunch, XLA\'s command '
        "buffers) or fuse small kernels, so one launch replaces many",
    ),
    "host-between-steps": (
        "The GPU waits between steps while the host works",
        "find what the host does between the steps (py-spy, or nsys with --sample=cpu / --python-sampling=true): "
        "the next input made or copied, results read back, the loop's own code; overlap it with the GPU's work "
        "(prepare the next batch while this one runs: pinned memory and non_blocking copies, a DataLoader with "
        "workers; keep results on the GPU and read them back less often) or move it out of the serving loop",
    ),
    "slow-steps": (
        "Some steps take far longer than the typical step, with no more GPU work",
        "find what the host does in those steps (py-spy, or nsys with --sample=cpu / --python-sampling=true): "
        "first-time work for a new shape (cuDNN or cuBLAS plan building, autotuning, recompilation: pad or bucket "
        "the shapes and warm each one up before serving), garbage collection (gc.freeze() after loading, fewer "
        "Python objects per step), logging, checkpointing or I/O on the serving path",
    ),
    "gpu-idle-gap": (
        "The GPU sits idle inside the analyzed window",
        "find what the host does in the gap (CPU work, I/O, sleeps, waiting for requests) and overlap or remove it",
    ),
    "low-gpu-utilization": (
        "The GPU is busy for only a small part of the analyzed window",
        "look at host overhead and idle gaps first: kernel tuning cannot help while the GPU waits",
    ),
    "tail-outlier": (
        "Kernel outliers: some instances take far longer than usual",
        "find what makes those instances different (grid, input size, routing) and bound or split that work",
    ),
    "tail-systematic": (
        "Systematic kernel tail: p99 well above p50",
        "microbenchmark the kernel across the shapes it sees; check contention and clocks",
    ),
    "small-grid": (
        "Kernels launch far fewer thread blocks than the GPU has SMs",
        "spread each kernel's work over more blocks (split-K or flash-decoding over a long context, a grid over "
        "rows and columns, one block per head and split), batch more requests, or fuse it into a neighbour; ncu's "
        "Launch Statistics and Occupancy sections show the grid against the SMs",
    ),
    "no-kv-cache": (
        "Decode steps run over the whole sequence: no KV cache",
        "keep the keys and values of earlier tokens and run each decode step over the new token only (transformers: "
        "use_cache=True, the default, and pass past_key_values back in a hand-written loop; an engine of its own: a "
        "KV cache per layer); without it every step redoes the prompt and all earlier tokens, a cost that grows "
        "with the square of the output length",
    ),
    "dynamic-shapes": (
        "Kernels run with changing launch shapes from step to step",
        "pad or bucket shapes so steps are identical (a precondition for CUDA graphs)",
    ),
    "module-loading-in-window": (
        "CUDA modules are loaded inside the analyzed window",
        "warm up every code path before measuring (JIT, lazy loading: CUDA_MODULE_LOADING=EAGER); a load in every "
        "step is a kernel built for each new shape: make the shapes static (a static KV cache, padding to a few "
        "lengths) or use a backend that does not build per shape (cuDNN's runtime-fused attention, "
        "cudnn_generated_..._sdpa, is built per sequence length: torch.backends.cuda.enable_cudnn_sdp(False))",
    ),
    "profiler-dropped-data": (
        "The profiler may have dropped events",
        "shorten the capture (capture range) or trace less (--trace=cuda,nvtx), and raise the CUDA flush "
        "interval/buffers; numbers may be incomplete",
    ),
    # raised by the multi-rank analysis (analysis/nccl/, nsys-doctor nccl)
    "nccl-rank-skew": (
        "Collectives wait for a late rank",
        "find what the late rank does just before its collectives (the 'before' column: host gaps, "
        "synchronizations, sleeps, garbage collection, data loading, uneven work) and remove or balance it; the "
        "collective time on the other ranks is waiting, not bandwidth, so tuning NCCL will not help",
    ),
    "nccl-not-overlapped": (
        "Communication does not overlap compute",
        "run collectives on their own stream next to independent compute (overlapped or async tensor parallel, "
        "fused GEMM + all-reduce, bucketed gradient all-reduce, overlapped expert dispatch/combine); when nothing "
        "can overlap, move fewer bytes (FP8/BF16 communication, fewer collectives per step)",
    ),
    "rank-imbalance": (
        "Ranks do unequal work per step",
        "balance the work per rank (sharding, expert placement and capacity, batch split) and the host side "
        "(one CPU core set per rank near its GPU, no extra work on one rank) so that no rank paces the others",
    ),
    # raised by the roofline (analysis/roofline/, report --model)
    "gemv-near-bandwidth-limit": (
        "Decode GEMVs run near the GPU's peak memory bandwidth",
        "kernel tuning cannot help these shapes much: read fewer bytes (weight quantization: FP8, INT4) or reuse "
        "each weight read for more tokens (batching, speculative decoding)",
    ),
    "gemv-bandwidth-headroom": (
        "Decode GEMVs leave memory bandwidth unused",
        "microbenchmark these shapes against a tuned or custom GEMV kernel (split-K, wider loads, fewer CTAs per "
        "row block) or a fused projection; under 70% of peak a better kernel usually wins",
    ),
    "profiler-inflation": (
        "Traced times are stretched by the profiler",
        "use the trace for proportions; quote latency from an unprofiled run",
    ),
    # raised from the device-memory usage events (--cuda-memory-usage=true; analysis/metrics/)
    "device-memory-growth": (
        "Device memory grows step after step",
        "find what each step leaves allocated (a list or cache that grows with every token, tensors kept for "
        "logging or outputs never freed); preallocate growing caches to their maximum size or free what a step "
        "no longer needs, and check with the framework's memory snapshot (torch.cuda.memory._snapshot())",
    ),
}


# Severity follows the cost: the share of the window's time that a finding explains (GPU idle it causes, host time
# on the critical path, kernel time above the typical instance). Blockers (nothing can be measured until the capture
# is fixed) are critical whatever they cost; findings that explain no time of their own are info.
CRITICAL_SHARE = 0.25
WARNING_SHARE = 0.05
BLOCKERS = frozenset({"graph-trace-not-node", "no-kernels"})


def severity_of(cost_share: float | None) -> str:
    if cost_share is None:
        return "info"
    if cost_share >= CRITICAL_SHARE:
        return "critical"
    return "warning" if cost_share >= WARNING_SHARE else "info"


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    summary: str
    evidence: dict[str, object] = field(default_factory=dict)
    cost_ns: int | None = None  # the time this finding explains (None: a blocker, or no time of its own)
    cost_share: float | None = None  # cost_ns as a share of the analyzed window

    @property
    def title(self) -> str:
        return CATALOGUE[self.id][0]

    @property
    def action(self) -> str:
        return CATALOGUE[self.id][1]

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "severity": self.severity,
            "title": self.title,
            "summary": self.summary,
            "cost_ns": self.cost_ns,
            "cost_share": None if self.cost_share is None else round(self.cost_share, 4),
            "evidence": self.evidence,
            "action": self.action,
        }


def costed(fid: str, summary: str, evidence: dict[str, object], cost_ns: int, basis_ns: int) -> Finding:
    """A finding whose severity follows its cost: ``cost_ns`` over ``basis_ns`` (the analyzed window)."""
    share = cost_ns / basis_ns if basis_ns > 0 else None
    return Finding(fid, severity_of(share), summary, evidence, int(cost_ns), share)


@dataclass(frozen=True)
class Facts:
    window: Window
    steps: Steps
    host: HostSummary
    kernel_tails: pl.DataFrame  # tail_table by full name, with grid info columns
    grid_tails: pl.DataFrame  # tail_table by full name and grid (one launch shape)
    graph_mode: str | None
    graph_launch_rows: int  # GRAPH_TRACE rows (graph-level capture)
    graph_launch_calls: int  # cudaGraphLaunch/cuGraphLaunch API calls in the window
    kernels_in_window: int
    kernel_time_ns: int
    diagnostics: list[str]
    overhead: dict[str, int]  # profiler overhead name -> ns inside the window
    dynamic: pl.DataFrame  # name, grids (distinct grids inside decode steps), instances
    run_kind: str = "llm-decode"  # llm-decode | llm-prefill | iterations | unstructured (analysis/structure/)
    sm_count: int | None = None  # streaming multiprocessors of the GPU the kernels ran on (None: not recorded)
    growing_passes: float | None = None  # no KV cache: the median share of a pass's kernels grown (structure)

    def window_finding(self, fid: str, summary: str, evidence: dict[str, object], cost_ns: int) -> Finding:
        """A finding whose severity follows its cost as a share of the analyzed window (see ``costed``)."""
        return costed(fid, summary, evidence, cost_ns, self.window.duration)

    @property
    def step_word(self) -> str:
        """What one step is called in this kind of run: a decode step, an iteration, a prefill pass, a step."""
        return {"llm-decode": "decode step", "iterations": "iteration", "llm-prefill": "prefill pass"}.get(
            self.run_kind, "step"
        )

    @property
    def decode_steps(self) -> pl.DataFrame:
        """The repeated steps the step rules judge: decode steps (or iterations, plain steps); in a prefill-only
        run, its prefill passes."""
        t = self.steps.table
        d = t.filter(pl.col("kind") != "prefill")
        return d if d.height or self.run_kind != "llm-prefill" else t


Rule = Callable[[Facts], list[Finding]]
RULES: list[Rule] = []


def rule(func: Rule) -> Rule:
    RULES.append(func)
    return func


def _per_step(n: int, steps: int) -> float:
    return n / steps if steps else float(n)


@rule
def graph_trace(f: Facts) -> list[Finding]:
    # nsys 2023.3+ records graph mode "graph" by default even when the program launches no graph: the finding needs
    # graph launches whose kernels are missing (graph-level records, or graph launch calls traced in graph mode)
    if f.graph_launch_rows or (f.graph_mode == "graph" and f.graph_launch_calls):
        return [
            Finding(
                "graph-trace-not-node",
                "critical",
                f"{f.graph_launch_rows or f.graph_launch_calls} CUDA graph launches were recorded as single blocks "
                f"(--cuda-graph-trace={f.graph_mode or 'graph'}): the kernels inside them are missing "
                "from every kernel statistic",
                {
                    "graph_trace_mode": f.graph_mode,
                    "graph_launches": f.graph_launch_rows,
                    "kernels_recorded": f.kernels_in_window,
                    "flag": "--cuda-graph-trace=node",
                },
            )
        ]
    return []


# nsys's own messages that explain a trace without kernels (the driver, CUPTI or the CUDA injection failed)
EMPTY_TRACE_CAUSES = re.compile(
    r"No CUDA events collected|CUDA profiling might have not been started|not supported|unsupported|CUPTI|"
    r"injection|driver",
    re.IGNORECASE,
)


def unique_messages(msgs: list[str]) -> list[str]:
    """nsys's diagnostics once each (``trace.meta.message_counts``)."""
    from ..trace.meta import message_counts

    return list(message_counts(msgs))


@rule
def no_kernels(f: Facts) -> list[Finding]:
    if f.kernels_in_window == 0:
        causes = [m for m in unique_messages(f.diagnostics) if EMPTY_TRACE_CAUSES.search(m)]
        why = f"; nsys said: {'; '.join(c[:160] for c in causes[:2])}" if causes else ""
        n = f.host.launches
        traced = (
            f", although {n} kernel launch{'es were' if n != 1 else ' was'} traced in it: the GPU's activity was not "
            "collected"
            if n
            else ""
        )
        return [
            Finding(
                "no-kernels",
                "critical",
                f"no kernel ran in the analyzed window ({format_ns(f.window.duration)}, {f.window.reason})"
                + traced
                + why,
                {"window": f.window.to_dict(), "nsys_diagnostics": causes},
            )
        ]
    return []


def _decode_count(f: Facts) -> int:
    return f.decode_steps.height


@rule
def host_sync(f: Facts) -> list[Finding]:
    s = f.host.syncs
    n = _decode_count(f)
    if s.in_steps and s.in_steps >= max(2, 0.25 * max(n, 1)):
        per = _per_step(s.in_steps, n)
        names = _names(s.names)
        # the names count every sync of the window: say so when some of them are outside the steps
        where = f"; in the window, {s.count} in all" if s.count != s.in_steps else ""
        return [
            f.window_finding(
                "host-sync-in-inference",
                f"{s.in_steps} host synchronizations inside steps ({per:.1f} per {f.step_word}{where}): the GPU sits "
                f"idle {format_ns(s.idle_ns)} after they return, until the host queues work again "
                f"({format_ns(s.total_ns)} blocked, most of it waiting for the GPU's own work): {names}",
                {
                    "syncs_in_steps": s.in_steps,
                    "per_step": round(per, 2),
                    "total_ns": s.total_ns,
                    "idle_after_ns": s.idle_ns,
                    "by_name": s.names,
                },
                s.idle_ns,
            )
        ]
    return []


def _names(counts: dict[str, int], limit: int = 3) -> str:
    """``name xN`` for the first few API names (as nsys shows them: ``cudaFree``, not ``cudaFree_v3020``), then
    "and N more"."""
    from ..trace.schema import nsys_api_name

    items = [f"{nsys_api_name(k)} x{v}" for k, v in counts.items()]
    more = len(items) - limit
    return ", ".join(items[:limit]) + (f" and {more} more" if more > 0 else "")


def _calls_evidence(group: ApiGroup, idle_key: str) -> dict[str, object]:
    """The evidence of a finding about one group of host calls; ``idle_key`` names the GPU idle time they explain."""
    return {
        "count": group.count,
        "in_steps": group.in_steps,
        "total_ns": group.total_ns,
        idle_key: group.idle_ns,
        "by_name": group.names,
    }


@rule
def pageable(f: Facts) -> list[Finding]:
    h = f.host
    n = _decode_count(f)
    if h.pageable_in_steps and h.pageable_in_steps >= max(2, 0.25 * max(n, 1)):
        sizes = ", ".join(f"{c} x {format_bytes(b)}" for b, c in h.pageable_sizes.items())
        return [
            f.window_finding(
                "pageable-memcpy",
                f"{h.pageable_in_steps} copies from pageable host memory inside steps "
                f"({_per_step(h.pageable_in_steps, n):.1f} per {f.step_word}; sizes {sizes}; "
                f"{format_bytes(h.pageable_bytes)} in the window; the GPU idles {format_ns(h.pageable_idle_ns)} "
                "while the host copies)",
                {
                    "copies_in_steps": h.pageable_in_steps,
                    "copies": h.pageable_copies,
                    "bytes": h.pageable_bytes,
                    "sizes": {str(k): v for k, v in h.pageable_sizes.items()},
                    "per_step": round(_per_step(h.pageable_in_steps, n), 2),
                    "gpu_idle_ns": h.pageable_idle_ns,
                },
                h.pageable_idle_ns,
            )
        ]
    return []


@rule
def sync_copies(f: Facts) -> list[Finding]:
    out = []
    for group, fid in ((f.host.sync_memcpy, "sync-memcpy"), (f.host.sync_memset, "sync-memset")):
        if group.count:
            out.append(
                f.window_finding(
                    fid,
                    f"{group.count} calls in the window ({group.in_steps} inside steps, "
                    f"{format_ns(group.total_ns)}; the GPU idles {format_ns(group.idle_ns)} after them): "
                    + _names(group.names),
                    _calls_evidence(group, "idle_after_ns"),
                    group.idle_ns,
                )
            )
    return out


ALLOC_CHURN_MIN = 2
"""Allocation calls in the window from which alloc-churn is raised (its cost: the GPU idle while they run)."""


@rule
def alloc_churn(f: Facts) -> list[Finding]:
    a = f.host.allocations
    if a.count >= ALLOC_CHURN_MIN:
        n = _decode_count(f)
        return [
            f.window_finding(
                "alloc-churn",
                f"{a.count} allocation calls in the window ({a.in_steps} inside steps, "
                f"{_per_step(a.in_steps, n):.1f} per {f.step_word}, {format_ns(a.total_ns)}; the GPU idles "
                f"{format_ns(a.idle_ns)} while the host allocates): " + _names(a.names),
                _calls_evidence(a, "gpu_idle_ns"),
                a.idle_ns,
            )
        ]
    return []


LAUNCH_BOUND_MIN = 100
"""Kernel launches a step (the median) from which a step whose GPU works less than half its time is launch-bound."""
SPREAD_LAUNCH_MIN = 16
SPREAD_GAP_SHARE = 0.2
"""A step of at least ``SPREAD_LAUNCH_MIN`` launches is launch-bound too when its idle time is spread over its
kernels: the largest idle interval holds at most ``SPREAD_GAP_SHARE`` of a step's idle time (the median over steps,
``HostSummary.step_largest_gap_share``). Where the idle is spread, the GPU waits for the host's work between
operations (launch overhead, eager Python per operation); a launch-bound run of hundreds of launches shows 0.01-0.05,
a 2-layer Whisper decoder of 84 launches 0.04, a recommender's 20-launch requests 0.11; a step whose idle is one
stall (a read back, a copy from pageable memory: 0.8 in an embedding service) is not launch-bound. Nor is a step
whose idle time follows host syncs for at least half of it (the syncs' refill intervals inside the decode steps,
``HostSummary.sync_idle_in_steps_ns``: a sync after each of a few operations spreads the idle as well, and those
have their own finding), nor a step of an unstructured run (steps between host syncs, not passes).

An LLM's decode step is launch-bound as well, whatever its launches and the largest interval's share, when nothing
but the host's own work can hold its GPU idle (``_host_work_only``): no sync's refill and no pageable copy inside the
steps. A recurrent language model's decode step (cuDNN's cells: 9 launches, the GPU busy 55 us of a 600 us step,
half the idle in one interval of the framework's work per step) is the case; a few launches of a few microseconds
each cannot take that long to queue, so the host is doing something else between them, which is this finding's
remedy as well (fewer host operations per step, a captured graph)."""


def _less_load_gaps(d: pl.DataFrame, gaps: pl.DataFrame) -> pl.Series:
    """The steps' ``wall`` times less the time of the module loads' idle intervals (``HostSummary.load_gaps``)
    inside each step's GPU span: a step's time without the kernels built or loaded in it."""
    if not gaps.height or not d.height:
        return d["wall"]
    a, b = d["gpu_start"].fill_null(0).to_numpy(), d["gpu_end"].fill_null(0).to_numpy()
    return d["wall"] - pl.Series(span_overlaps(a, b, gaps))


WINDOW_SHORT_IDLE_SHARE = 0.5
"""A run without passes (unstructured) is launch-bound over its window when it launches at least
``LAUNCH_BOUND_MIN`` kernels, its GPU works less than half of the window, and at least this share of the window's
idle time lies in intervals between kernels shorter than ``host.SHORT_GAP_NS`` (``HostSummary.short_gap_idle_ns``: not
a sync's refill nor a module load's interval). Its cost is that short idle time. Eager transformers' T5 at batch 8
generating 3 tokens a request (about 1,500 kernels a request, a host sync after a few of them, no pass found): 90%
of the idle in intervals under 200 us."""


BETWEEN_STEPS_SHARE = 0.05
"""A run whose steps are not launch-bound inside (``_launch_bound_steps``) is launch-bound between them when the GPU
idles between its steps (``HostSummary.between_steps_idle_ns``: from a step's last kernel to the next step's first,
in intervals shorter than the long idle gaps, less the syncs' refills and the intervals that hold a module load) for
at least this share of the window: the host's work for each step, finishing one and launching the next, takes
longer than the step's GPU work. That time is its cost (less the idle while the host copies from pageable memory:
pageable-memcpy's). A JAX decoder whose decode step is one graph launch and
whose host reads every token (no sync call: XLA waits on its own events): 96 us of GPU work a step, the GPU idle 65
us before each (39% of the window); two more JAX runs, 77-78%."""


@rule
def launch_bound(f: Facts) -> list[Finding]:
    found = _launch_bound_steps(f)
    if found:
        return found + (_host_between_steps(f) if f.run_kind != "unstructured" else [])
    if f.run_kind != "unstructured":
        return _launch_bound_between(f)
    return _launch_bound_window(f)


def _host_between_steps(f: Facts) -> list[Finding]:
    """host-between-steps: a run whose steps are launch-bound inside that also idles between them for at least
    ``BETWEEN_STEPS_SHARE`` of the window (``HostSummary.between_steps_idle_ns``, less the idle while the host copies
    from pageable memory or allocates, pageable-memcpy's and alloc-churn's): launch-bound's cost is the idle inside
    the steps, this one the idle between them (neither interval is the other's, nor a long gap's, a sync's refill or
    a module load's). A request loop of ResNet-50 at batch 16 (two passes a request, each input made on the host and
    copied from pageable memory): 87 ms idle inside its 10 passes, 107 ms between them (49% of the window), mostly
    at the requests' starts."""
    between = _idle_between_steps(f)
    t = f.steps.table
    if t.height < 2 or between < BETWEEN_STEPS_SHARE * f.window.duration:
        return []
    # the spans between consecutive steps (from the latest end so far to the next start), to say where the idle lies
    order = t.sort("gpu_start")
    ends = order["gpu_end"].cum_max().to_list()[:-1]
    spans = sorted(b - a for a, b in zip(ends, order["gpu_start"].to_list()[1:], strict=True) if b > a)
    if not spans:
        return []
    typical, longest = percentile(spans, 50), spans[-1]
    word = f.step_word
    share = 100 * between / f.window.duration
    return [
        f.window_finding(
            "host-between-steps",
            f"the GPU idles {format_ns(between)} between the {t.height} steps ({share:.0f}% "
            f"of the window; {format_ns(between / (t.height - 1))} before each {word} on average), beside the idle "
            f"inside them: the host's work from one {word} to the next (the spans between steps: median "
            f"{format_ns(typical)}, longest {format_ns(longest)})",
            {
                "between_steps_idle_ns": between,
                "idle_before_step_ns": between / (t.height - 1),
                "span_between_steps_p50_ns": typical,
                "span_between_steps_max_ns": longest,
            },
            between,
        )
    ]


def _idle_between_steps(f: Facts) -> int:
    """The GPU idle between steps (``HostSummary.between_steps_idle_ns``) less the idle outside the decode steps
    while the host copies from pageable memory or allocates (when alloc-churn is raised): pageable-memcpy's and
    alloc-churn's time, not counted twice."""
    h = f.host
    churn = h.allocations.idle_ns - h.alloc_idle_in_steps_ns if h.allocations.count >= ALLOC_CHURN_MIN else 0
    return max(0, h.between_steps_idle_ns - (h.pageable_idle_ns - h.pageable_idle_in_steps_ns + churn))


def _launch_bound_between(f: Facts) -> list[Finding]:
    """launch-bound between the steps (``BETWEEN_STEPS_SHARE``)."""
    d = f.decode_steps
    between = _idle_between_steps(f)
    steps = f.steps.table.height
    if d.height < 2 or between < BETWEEN_STEPS_SHARE * f.window.duration:
        return []
    before = between / max(1, steps - 1)
    launches = float(d["launches"].median())  # type: ignore[arg-type]
    gpu = float(d["gpu_time"].median())  # type: ignore[arg-type]
    word = f.step_word
    return [
        f.window_finding(
            "launch-bound",
            f"the GPU idles {format_ns(before)} before each {word} on average ({format_ns(between)} between "
            f"{steps} steps, {100 * between / f.window.duration:.0f}% of the window) while the host finishes one "
            f"{word} and launches the next ({launches:.0f} launch{'' if launches == 1 else 'es'} and "
            f"{format_ns(gpu)} of GPU work per {word}): "
            "the host's work per step takes longer than the step's GPU work; run several steps per launch (a loop "
            "on the device, one graph of several steps) or keep the host ahead of the GPU (no read back each step)",
            {
                "between_steps_idle_ns": between,
                "idle_before_step_ns": before,
                "launches_per_step": launches,
                "gpu_time_per_step_ns": gpu,
                "launch_api_ns_per_step": f.host.launch_api_ns / steps,
            },
            between,
        )
    ]


def _launch_bound_window(f: Facts) -> list[Finding]:
    """launch-bound judged over the window (``WINDOW_SHORT_IDLE_SHARE``): a run without passes has no steps to
    judge (the steps between its host syncs may hold a few kernels each)."""
    h = f.host
    idle = h.window_ns - h.gpu_busy_ns
    short = h.short_gap_idle_ns
    if h.launches < LAUNCH_BOUND_MIN or idle <= 0 or 2 * h.gpu_busy_ns >= h.window_ns:
        return []
    if short < WINDOW_SHORT_IDLE_SHARE * idle:
        return []
    every = h.window_ns / h.launches
    return [
        f.window_finding(
            "launch-bound",
            f"no repeating pass: judged over the window, {h.launches:,} kernel launches, one every "
            f"{format_ns(every)}; the GPU works {100 * h.gpu_busy_ns / h.window_ns:.0f}% of the window, and "
            f"{100 * short / idle:.0f}% of its idle time ({format_ns(short)}) lies in intervals shorter than "
            f"{format_ns(SHORT_GAP_NS)} between kernels: the host's work for each operation, not stalls",
            {
                "launches_in_window": h.launches,
                "launch_interval_ns": every,
                "gpu_share_of_window": round(h.gpu_busy_ns / h.window_ns, 3),
                "short_gap_idle_ns": short,
                "short_gap_share_of_idle": round(short / idle, 3),
            },
            short,
        )
    ]


def _launch_bound_steps(f: Facts) -> list[Finding]:
    d = f.decode_steps
    if d.height < 2:
        return []
    # the idle gaps (gpu-idle-gap) and the intervals that hold a module load (module-loading-in-window) inside the
    # steps are those findings' time, not launch overhead
    h = f.host
    held = h.costed_gaps
    others = time_inside(d, held)
    # steps far slower than the typical one are the slow-steps finding's: judged and costed without them
    slow = slow_step_rows(d) if f.run_kind != "unstructured" else None
    excess = 0
    if slow is not None:  # their time above the typical step (less those intervals): neither launch-bound's
        excess = slow_excess(slow[0], slow[1], held)
        d = d.filter(~pl.col("idx").is_in(slow[0]["idx"].implode()))
    launches = float(d["launches"].median())  # type: ignore[arg-type]
    gpu = float(d["gpu_time"].median())  # type: ignore[arg-type]
    wall = float(_less_load_gaps(d, f.host.load_gaps).median())  # type: ignore[arg-type]
    idle = f.host.step_gpu_idle_share
    # (the syncs' refills, the pageable copies' and the allocations' idle inside the steps are those findings'
    # time: not counted twice)
    churn = h.alloc_idle_in_steps_ns if h.allocations.count >= ALLOC_CHURN_MIN else 0
    charged = h.sync_idle_in_steps_ns + h.pageable_idle_in_steps_ns + churn
    cost = max(0, h.step_idle_ns - excess - others - charged)
    # many launches a step; or fewer, when the GPU waits a little before each of them (no one stall holds more than
    # a fifth of a step's idle time: Python's per-operation work between small kernels, not a sync or a copy)
    spread = h.step_largest_gap_share
    spread_out = (
        launches >= SPREAD_LAUNCH_MIN
        and spread is not None
        and spread <= SPREAD_GAP_SHARE
        and 2 * h.sync_idle_in_steps_ns < h.step_idle_ns  # syncs inside the steps do not explain its idle
        and f.run_kind != "unstructured"  # steps between host syncs are no passes: their idle may be anything
    )
    host_only = not spread_out and launches < LAUNCH_BOUND_MIN and _host_work_only(f)
    waits = launches >= LAUNCH_BOUND_MIN or spread_out or host_only
    if waits and wall > 0 and gpu / wall < 0.5 and (idle is None or idle >= 0.3):
        return [
            f.window_finding(
                "launch-bound",
                f"{launches:.0f} kernel launches per {f.step_word}; the GPU works {format_ns(gpu)} of a "
                f"{format_ns(wall)} step ({100 * gpu / wall:.0f}%) and is idle "
                f"{100 * (idle or 0):.0f}% of the time between a step's first and last kernel "
                f"({format_ns(f.host.step_idle_ns)} in all steps"
                + (f"; {format_ns(others)} of it module loads' and long idle gaps' time" if others else "")
                + (f"; {slow[0].height} slow steps aside" if slow is not None else "")
                + (f": {format_ns(cost)} launch-bound)" if others or slow is not None else ")")
                + (
                    ": the host's own work between the step's kernels (no sync or pageable copy inside the steps)"
                    if host_only
                    else ""
                ),
                {
                    "launches_per_step": launches,
                    "gpu_time_per_step_ns": gpu,
                    "step_time_ns": wall,
                    "gpu_share_of_step": round(gpu / wall, 3),
                    "idle_share_within_steps": idle,
                    "idle_within_steps_ns": f.host.step_idle_ns,
                    "slow_steps_excess_ns": excess,
                    "loads_and_gaps_in_steps_ns": others,
                },
                cost,
            )
        ]
    return []


def _host_work_only(f: Facts) -> bool:
    """Whether only the host's own work can hold the GPU idle inside an LLM run's decode steps: no host sync's
    refill and no copy from pageable memory inside them (each has its own finding)."""
    h = f.host
    return f.run_kind == "llm-decode" and h.sync_idle_in_steps_ns == 0 and h.pageable_in_steps == 0


# slow steps: at least SLOW_STEP_MIN of the judged steps that run the typical GPU work (SLOW_STEP_MIN_STEPS or more,
# within SLOW_STEP_WORK times the median kernel time and launches either way) take over SLOW_STEP_FACTOR times the
# typical step, at least half of the extra time idle (a step whose kernels take longer, over a longer context, is no
# stall). The typical step: the SLOW_STEP_PCT-th percentile of those steps' times (when more than three quarters
# of the steps are slow, which they are is not known, and none is said to be). A step's time is its GPU span, its
# first kernel's start to its last kernel's end: what the GPU's timeline lost (a host that stalls while it runs
# ahead of the GPU, with work queued, costs nothing; one that stalls mid-step leaves the GPU idle). The fastest slow
# step must take SLOW_STEP_BREAK times the slowest of the others: step times spread evenly are no stalls
SLOW_STEP_FACTOR = 2.0
SLOW_STEP_WORK = 1.5
SLOW_STEP_PCT = 25
SLOW_STEP_BREAK = 1.25
SLOW_STEP_MIN = 2
SLOW_STEP_MIN_STEPS = 8


def typical_step(times: list[int]) -> int:
    """The typical step time of the judged steps: the ``SLOW_STEP_PCT``-th percentile (nearest rank) of their times."""
    ordered = sorted(times)
    return ordered[max(1, (len(ordered) * SLOW_STEP_PCT + 99) // 100) - 1]


def step_span() -> pl.Expr:
    """A step's time (``span``): its GPU span, its first kernel's start to its last kernel's end."""
    return (pl.col("gpu_end") - pl.col("gpu_start")).fill_null(0).alias("span")


def slow_step_rows(d: pl.DataFrame) -> tuple[pl.DataFrame, int] | None:
    """The slow steps of the judged steps ``d`` (with their ``span``) and the typical step time, or None when fewer
    than ``SLOW_STEP_MIN`` (or fewer than ``SLOW_STEP_MIN_STEPS`` steps)."""
    if d.height < SLOW_STEP_MIN_STEPS:
        return None
    gpu = float(d["gpu_time"].median())  # type: ignore[arg-type]
    launches = float(d["launches"].median())  # type: ignore[arg-type]
    # the steps that run the typical work (a prefill pass, a bigger batch or a fragment of a pass is another step)
    same = d.with_columns(step_span()).filter(
        pl.col("gpu_time").is_between(gpu / SLOW_STEP_WORK, SLOW_STEP_WORK * gpu)
        & pl.col("launches").is_between(launches / SLOW_STEP_WORK - 1, SLOW_STEP_WORK * launches + 1)
    )
    if same.height < SLOW_STEP_MIN_STEPS:
        return None
    base = typical_step(same["span"].to_list())
    idle = pl.col("span") - pl.col("gpu_time")
    is_slow = (pl.col("span") > SLOW_STEP_FACTOR * base) & (2 * idle >= pl.col("span") - base)
    slow, others = same.filter(is_slow), same.filter(~is_slow)
    if base <= 0 or slow.height < SLOW_STEP_MIN:
        return None
    # a break between them and the others: times spread evenly from the typical to twice it are no stalls
    if others.height and scalar_int(slow["span"].min()) < SLOW_STEP_BREAK * scalar_int(others["span"].max()):
        return None
    return slow, base


def slow_excess(slow: pl.DataFrame, base: int, gaps: pl.DataFrame | None = None) -> int:
    """The time the slow steps take above the typical step ``base``, less the idle gaps inside them that the
    gpu-idle-gap finding costs already (``gaps``: start, dur; none: all of it): each span of time is costed once."""
    import numpy as np  # here: the commands that only read the catalogue (explain) need no numpy

    if not slow.height:
        return 0
    a, b = slow["gpu_start"].to_numpy(), slow["gpu_end"].to_numpy()
    over = span_overlaps(a, b, gaps) if gaps is not None else np.zeros(slow.height, dtype=np.int64)
    return int(np.clip(slow["span"].to_numpy() - base - over, 0, None).sum())


@rule
def slow_steps(f: Facts) -> list[Finding]:
    if f.run_kind == "unstructured":
        return []  # its steps are host syncs or repeating kernels, not one piece of work repeated
    d = f.decode_steps
    found = slow_step_rows(d)
    if found is None:
        return []
    slow, base = found
    rest = d.filter(~pl.col("idx").is_in(slow["idx"].implode()))
    # the idle gaps and the module loads' gaps inside them are the gpu-idle-gap and module-loading findings'
    excess = slow_excess(slow, base, f.host.costed_gaps)
    if excess <= 0:
        return []  # the gaps inside them are all the gpu-idle-gap and module-loading findings
    gpu_slow, gpu_rest = (float(x["gpu_time"].median()) for x in (slow, rest))  # type: ignore[arg-type]
    launches_slow, launches_rest = (float(x["launches"].median()) for x in (slow, rest))  # type: ignore[arg-type]
    span_slow = float(slow["span"].median())  # type: ignore[arg-type]
    return [
        f.window_finding(
            "slow-steps",
            f"{slow.height} of {d.height} {f.step_word}s take over {SLOW_STEP_FACTOR:g}x the typical "
            f"{format_ns(base)} (median {format_ns(int(span_slow))}) with the GPU work of the others "
            f"({format_ns(gpu_slow)} against {format_ns(gpu_rest)} of kernel time, {launches_slow:.0f} against "
            f"{launches_rest:.0f} launches): the extra time is the host's, {format_ns(excess)} above the typical "
            "step in all",
            {
                "slow_steps": slow.height,
                "steps": d.height,
                "typical_step_ns": base,
                "slow_step_median_ns": int(span_slow),
                "excess_ns": excess,
                "gpu_time_slow_ns": int(gpu_slow),
                "gpu_time_typical_ns": int(gpu_rest),
                "launches_slow": launches_slow,
                "launches_typical": launches_rest,
                "first_slow_steps": slow["idx"].head(5).to_list(),
            },
            excess,
        )
    ]


@rule
def idle_gap(f: Facts) -> list[Finding]:
    g = f.host.gaps
    if g.height:
        top = g.head(5)
        total = int(g["dur"].sum())
        between = f.host.pause_gaps
        where = "inside the analyzed window"
        if between.height:
            where = (
                f"inside the analyzed window ({between.height} between requests, "
                f"{format_ns(int(between['dur'].sum()))}: the host paused before queuing the next request)"
                if between.height < g.height
                else "between requests (the host paused before queuing the next request)"
            )
        return [
            f.window_finding(
                "gpu-idle-gap",
                f"{g.height} idle gaps of at least {format_ns(f.host.gap_threshold_ns)} (5x the step time) "
                f"{where}, {format_ns(total)} in total; longest "
                f"{format_ns(int(g['dur'].max()))} at {int(top['start'][0]) / 1e9:.3f} s",  # type: ignore[arg-type]
                {
                    "gaps": g.height,
                    "total_ns": total,
                    "threshold_ns": f.host.gap_threshold_ns,
                    "longest": top.select("start", "dur").to_dicts(),
                    "loading_phase_gaps": f.host.loading_gaps.height,
                },
                total,
            )
        ]
    return []


HOST_CAUSES = frozenset(
    {
        "launch-bound",
        "host-between-steps",
        "gpu-idle-gap",
        "host-sync-in-inference",
        "pageable-memcpy",
        "sync-memcpy",
        "sync-memset",
        "alloc-churn",
        "module-loading-in-window",
        "slow-steps",
    }
)


@rule
def low_util(f: Facts) -> list[Finding]:
    """Low utilization is the sum of the idle time, not a cause: it carries the idle time as its cost only while the
    host findings' costs add up to less than half of it (``run_rules``; else it would outrank the causes it sums
    up)."""
    share = f.host.gpu_busy_share
    if share is not None and f.kernels_in_window and share < 0.5:
        idle = max(0, f.window.duration - f.host.gpu_busy_ns)
        summary = f"GPU busy {100 * share:.0f}% of the {format_ns(f.window.duration)} window ({format_ns(idle)} idle)"
        evidence: dict[str, object] = {
            "gpu_busy_share": round(share, 3),
            "gpu_busy_ns": f.host.gpu_busy_ns,
            "window_ns": f.window.duration,
            "idle_ns": idle,
        }
        found = f.window_finding("low-gpu-utilization", summary, evidence, idle)
        if f.run_kind == "unstructured" and found.severity == "critical":
            # no step structure: nothing says the idle time lies inside inference (a test harness, a whole trace)
            found = Finding(found.id, "warning", found.summary, found.evidence, found.cost_ns, found.cost_share)
        return [found]
    return []


# The tail-outlier rule, one definition for the report (per kernel of the trace) and explain (per row of a pasted
# summary): at least TAIL_OUTLIER_MIN_COUNT instances, the slowest over TAIL_OUTLIER_MIN_RATIO x p50, and a tail
# score (analysis/distribution.py) of TAIL_SCORE_MIN or more. The report also asks for the slow instance to be rare
# and of the usual launch shape, which a summary cannot tell.
TAIL_OUTLIER_MIN_COUNT = 10
TAIL_OUTLIER_MIN_RATIO = 2.0
TAIL_SCORE_MIN = 1000.0


def is_tail_outlier(count: float, p50_ns: float, max_ns: float) -> bool:
    """The tail-outlier rule on one kernel's count, p50 (or median) and max."""
    if count < TAIL_OUTLIER_MIN_COUNT or p50_ns <= 0 or max_ns <= TAIL_OUTLIER_MIN_RATIO * p50_ns:
        return False
    return tail_score(max_ns, count, p50_ns) >= TAIL_SCORE_MIN


def tail_outlier_expr() -> pl.Expr:
    """``is_tail_outlier`` over a ``tail_table`` frame (columns ``count``, ``max_p50``, ``tail_score``)."""
    return (
        (pl.col("count") >= TAIL_OUTLIER_MIN_COUNT)
        & (pl.col("max_p50") > TAIL_OUTLIER_MIN_RATIO)
        & (pl.col("tail_score") >= TAIL_SCORE_MIN)
    )


def _tail_finding(f: Facts, fid: str, kernels: pl.DataFrame, cols: list[str], items: list[str], above: str) -> Finding:
    """A tail finding about ``kernels`` (``cols`` of each in the evidence, ``items`` in the summary): its cost is
    their tail excess, the time they spend above ``above``."""
    excess = int(kernels["tail_excess"].sum())
    return f.window_finding(
        fid,
        "; ".join(items) + f" ({format_ns(excess)} above {above})",
        {"kernels": kernels.select(cols).to_dicts()},
        excess,
    )


@rule
def tails(f: Facts) -> list[Finding]:
    t = f.kernel_tails
    if t.is_empty():
        return []
    out = []
    dynamic = set(f.dynamic["name"].to_list()) if f.dynamic.height else set()
    # an outlier is the same launch repeating with a rare slow instance: either at its usual grid, or at another
    # grid in a kernel whose shapes change between decode steps (a kernel name shared by several fixed shapes
    # inside one step, like a prefill's layers and LM head, is not an outlier)
    same_shape = pl.col("tail_grid") == pl.col("typical_grid")
    rare = (
        pl.col("slow_step_share").is_null() | (pl.col("slow_step_share") < 0.25)
        if "slow_step_share" in t.columns
        else pl.lit(True)
    )
    outl = t.filter(tail_outlier_expr() & (same_shape | pl.col("name").is_in(list(dynamic))) & rare)
    outl = outl.sort(["tail_score", "name"], descending=[True, False]).head(5)
    if outl.height:
        items = []
        for r in outl.iter_rows(named=True):
            grid_note = ""
            if r.get("tail_grid") and r.get("typical_grid") and r["tail_grid"] != r["typical_grid"]:
                grid_note = f", grid {r['tail_grid']} instead of {r['typical_grid']}"
            cheap = " (cheap on average)" if r["mean"] < 5_000 else ""
            items.append(
                f"{r['label']}{cheap}: max {format_ns(r['max'])} vs p50 {format_ns(r['p50'])} "
                f"({r['max_p50']:.0f}x, tail score {r['tail_score']:.0f}{grid_note})"
            )
        cols = [
            "name",
            "label",
            "count",
            "p50",
            "p99",
            "max",
            "max_p50",
            "tail_score",
            "tail_excess",
            "typical_grid",
            "tail_grid",
        ]
        out.append(_tail_finding(f, "tail-outlier", outl, cols, items, "the typical instance"))
    g = f.grid_tails
    if f.steps.count < 3:  # one pass through the model: same-shape instances are different layers, not a tail
        return out
    share_min = 0.01 * f.kernel_time_ns
    sys_ = g.filter((pl.col("count") >= 20) & (pl.col("p99_p50") > 1.5) & (pl.col("total") >= share_min))
    sys_ = sys_.sort(["tail_excess", "name", "grid"], descending=[True, False, False]).head(5)
    if sys_.height:
        items = [
            f"{r['label']} (grid {r['grid']}): p99 {format_ns(r['p99'])} vs p50 {format_ns(r['p50'])} "
            f"({r['p99_p50']:.1f}x)"
            for r in sys_.iter_rows(named=True)
        ]
        cols = ["name", "label", "grid", "count", "p50", "p99", "max", "p99_p50", "tail_excess"]
        out.append(_tail_finding(f, "tail-systematic", sys_, cols, items, "p50 in the slowest 1%"))
    return out


# A launch of fewer thread blocks than this share of the GPU's SMs leaves most of them idle while it runs; such
# launches must take at least SMALL_GRID_MIN_SHARE of the window's kernel time to be worth a finding.
SMALL_GRID_FILL = 0.25
SMALL_GRID_MIN_SHARE = 0.05
SMALL_GRID_MIN_COUNT = 10


@rule
def small_grid(f: Facts) -> list[Finding]:
    """Kernels (per name and launch shape) whose grid fills under a quarter of the SMs: its cost is the SM time left
    idle while they run, their GPU time times the share of SMs without a block (what a grid over every SM could
    save at most)."""
    g = f.grid_tails
    sms = f.sm_count
    if sms is None or g.is_empty() or "blocks" not in g.columns or not f.kernel_time_ns:
        return []
    small = g.filter(
        (pl.col("blocks") > 0) & (pl.col("blocks") < SMALL_GRID_FILL * sms) & (pl.col("count") >= SMALL_GRID_MIN_COUNT)
    )
    small = small.filter(pl.col("total") >= SMALL_GRID_MIN_SHARE * f.kernel_time_ns)
    if small.is_empty():
        return []
    small = small.with_columns(
        (pl.col("total") * (1 - pl.col("blocks") / sms)).round(0).cast(pl.Int64).alias("idle_sm_ns")
    ).sort(["idle_sm_ns", "name", "grid"], descending=[True, False, False])
    cost = int(small["idle_sm_ns"].sum())
    top = small.head(5)
    items = [
        f"{r['label']} (grid {r['grid']}: {r['blocks']} block{'s' if r['blocks'] != 1 else ''} on {sms} SMs, "
        f"{100 * r['total'] / f.kernel_time_ns:.0f}% of the kernel time)"
        for r in top.iter_rows(named=True)
    ]
    return [
        f.window_finding(
            "small-grid",
            "; ".join(items) + f": {format_ns(cost)} of SM time left idle while they run",
            {
                "sm_count": sms,
                "kernels": top.select("name", "label", "grid", "blocks", "count", "total", "idle_sm_ns").to_dicts(),
            },
            cost,
        )
    ]


def growth_per_step(gpu_ns: list[int]) -> float:
    """The trend of a request's decode steps' GPU times, per step: the median of its last third less the median of
    its first third, over the steps between their middles (robust to one slow step; 0.0 under three steps)."""
    n = len(gpu_ns)
    third = n // 3
    if third < 1:
        return 0.0
    return float(median(gpu_ns[-third:]) - median(gpu_ns[:third])) / float(n - third)


@rule
def no_kv_cache(f: Facts) -> list[Finding]:
    """Decode passes that grow with the sequence (``RunStructure.growing_passes``). The cost counted is what the
    growth alone adds, from each request's trend (``growth_per_step``): step i of n costs i times the growth per
    step more than its request's first decode step, n(n-1)/2 steps' growth in all. A step over the new token only
    would take less than even that first one: the saving is at least this. Nothing when the steps' GPU time does
    not grow (launch-bound steps hide it)."""
    if f.growing_passes is None or f.run_kind != "llm-decode":
        return []
    t = f.steps.table.sort("idx")
    requests: list[list[int]] = []
    for kind, gpu in zip(t["kind"].to_list(), t["gpu_time"].to_list(), strict=True):
        if kind == "prefill" or not requests:
            requests.append([])
        if kind == "decode" and gpu is not None:
            requests[-1].append(int(gpu))
    requests = [r for r in requests if r]
    slopes = [growth_per_step(r) for r in requests]
    extra = round(sum(max(0.0, s) * len(r) * (len(r) - 1) / 2 for s, r in zip(slopes, requests, strict=True)))
    if extra <= 0:
        return []
    steps = sum(len(r) for r in requests)
    slope = sorted(slopes)[len(slopes) // 2]
    summary = (
        f"each decode step runs the model over the whole sequence so far ({f.growing_passes:.0%} of a step's kernels "
        f"launch over more thread blocks than in the step before); the decode steps' GPU time grows by "
        f"{format_ns(round(slope))} a step (the median request's trend): {format_ns(extra)} of GPU time above each "
        f"request's first decode step in {steps} decode steps, a lower bound of what steps over the new token "
        "only would save"
    )
    evidence: dict[str, object] = {
        "grown_kernel_share": round(f.growing_passes, 3),
        "decode_steps": steps,
        "growth_per_step_ns": round(slope),
        "growth_ns": extra,
    }
    return [f.window_finding("no-kv-cache", summary, evidence, extra)]


@rule
def dynamic_shapes(f: Facts) -> list[Finding]:
    d = f.dynamic
    if d.is_empty():
        return []
    hits = d.sort(["signatures", "name"], descending=[True, False]).head(5)
    if hits.height:
        items = [
            f"{r['label']} ({r['signatures']} different step shapes, {r['grids']} grids)"
            for r in hits.iter_rows(named=True)
        ]
        return [
            Finding(
                "dynamic-shapes",
                "info",
                f"launch shapes change between {f.step_word}s: " + ", ".join(items),
                {"kernels": hits.to_dicts(), "decode_steps": f.decode_steps.height},
            )
        ]
    return []


@rule
def module_loading(f: Facts) -> list[Finding]:
    """Module loads in the window cost the GPU idle intervals that hold them: before a load the host compiles the
    kernel (a JIT: NVRTC, Triton, cuDNN's runtime-fused engines) or reads it, and the GPU waits for that kernel
    until the load is done (at least the idle time while the calls run, when a load ends while the GPU works)."""
    h = f.host
    m = h.module_loads
    if m.count:
        cost = max(m.idle_ns, h.load_gap_ns)
        n = f.decode_steps.height
        every = n >= 3 and h.decode_step_loads >= n / 2
        nxt = ", ".join(f"{name} ({k})" for name, k in h.after_loads.items())
        summary = (
            f"{m.count} module loads in the window ({format_ns(m.total_ns)}, {m.in_steps} inside steps"
            + (f", {h.decode_step_loads / n:.1f} per {f.step_word}: kernels built for new shapes" if every else "")
            + f"; the GPU idles {format_ns(cost)} in the gaps that hold them"
            + (f"; the kernels that run next: {nxt}" if nxt else "")
            + ")"
        )
        found = f.window_finding(
            "module-loading-in-window",
            summary,
            {
                "count": m.count,
                "total_ns": m.total_ns,
                "in_steps": m.in_steps,
                "in_decode_steps": h.decode_step_loads,
                "gpu_idle_ns": m.idle_ns,
                "gap_ns": h.load_gap_ns,
                "gap_in_steps_ns": h.load_gap_in_steps_ns,
                "next_kernels": h.after_loads,
                "by_name": m.names,
            },
            cost,
        )
        if f.run_kind == "unstructured" and found.severity == "critical":
            # no step structure (a test harness, a whole trace): compiling before it runs may be the program's work
            found = Finding(found.id, "warning", found.summary, found.evidence, found.cost_ns, found.cost_share)
        return [found]
    return []


@rule
def dropped(f: Facts) -> list[Finding]:
    msgs = [
        d
        for d in unique_messages(f.diagnostics)
        if "might have been collected" in d or "dropped" in d.lower() or "lost" in d.lower()
    ]
    flush = sum(v for k, v in f.overhead.items() if "flush" in k.lower())
    if msgs or flush > 0.05 * max(f.window.duration, 1):
        return [
            Finding(
                "profiler-dropped-data",
                "info",
                "; ".join(msgs) if msgs else f"profiler buffer flushes took {format_ns(flush)} in the window",
                {"diagnostics": msgs, "flush_ns_in_window": flush},
            )
        ]
    return []


@rule
def inflation(f: Facts) -> list[Finding]:
    if f.graph_mode == "node" and f.graph_launch_calls:
        return [
            Finding(
                "profiler-inflation",
                "info",
                f"{f.graph_launch_calls} CUDA graph launches traced per node: node-level tracing adds "
                "per-kernel overhead that stretches graphed steps; compare shares and ratios, not absolute "
                "step times",
                {"graph_trace_mode": "node", "graph_launches": f.graph_launch_calls},
            )
        ]
    return []


def rank_key(f: Finding) -> tuple[int, int, int, str]:
    """Blockers first, then by the time a finding explains (largest first), then severity and id: costed findings
    are ordered by their cost, never by the mere presence of a pattern."""
    blocker = 0 if f.id in BLOCKERS else 1
    return (blocker, -(f.cost_ns or 0), SEVERITY_ORDER[f.severity], f.id)


def run_rules(facts: Facts) -> list[Finding]:
    found: list[Finding] = []
    for r in RULES:
        found.extend(r(facts))
    if any(x.id == "no-kernels" for x in found):
        # nothing ran on the GPU: idle-time costs and step findings have nothing to measure
        found = [x for x in found if x.id not in HOST_CAUSES and x.id != "low-gpu-utilization"]
    util = next((x for x in found if x.id == "low-gpu-utilization"), None)
    causes = sum(x.cost_ns or 0 for x in found if x.id in HOST_CAUSES)
    if util is not None and causes >= 0.5 * (util.cost_ns or 0):
        # low utilization sums up the idle time the causes explain (their costs are idle intervals of their own, no
        # two counting one interval): once together they explain half of it, it keeps no cost of its own beside them
        found = [
            Finding(x.id, "info", x.summary + "; its causes are the findings above", x.evidence)
            if x.id == "low-gpu-utilization"
            else x
            for x in found
        ]
    found.sort(key=rank_key)
    return found
