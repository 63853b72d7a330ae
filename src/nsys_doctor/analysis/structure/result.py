"""The result types: the run's structure with its phases, requests, steps and the evidence for each."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import polars as pl

from ...errors import UsageError

RUN_KINDS = ("llm-decode", "llm-prefill", "iterations", "unstructured")
STEP_KINDS = ("prefill", "decode", "iteration")
CONFIDENCE = ("high", "medium", "low")


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
    draft_passes: int | None = None  # speculative decoding: the draft passes before each verify pass (a step)
    draft_share: float | None = None  # and the drafts' share of a step (the median round, on the GPU timeline)
    training: bool = False  # backward kernels run in the steps: training steps (forward, backward, optimizer)
    micro_batches: int | None = None  # gradient accumulation: a request is one optimizer step of this many steps
    # LLM decode without a KV cache: the median share of a pass's kernels launched over more thread blocks than in
    # the pass before (each pass runs over the whole sequence so far); None when the passes do not grow
    growing_passes: float | None = None

    def words(self) -> tuple[str, str]:
        """What a request and an iteration step are called in this run: ("request", "iteration step"); in a
        training run ("request", "training step"), or with gradient accumulation ("optimizer step",
        "micro-batch")."""
        if self.micro_batches:
            return "optimizer step", "micro-batch"
        return "request", "training step" if self.training else "iteration step"

    @property
    def measured_requests(self) -> tuple[Request, ...]:
        return tuple(r for r in self.requests if not r.warmup)

    @property
    def warmup_requests(self) -> tuple[Request, ...]:
        return tuple(r for r in self.requests if r.warmup)

    @cached_property  # asked for by many analyses; a run has up to hundreds of thousands of steps
    def measured_steps(self) -> tuple[Step, ...]:
        warm = {r.index for r in self.requests if r.warmup}
        return tuple(s for s in self.steps if s.request not in warm)

    def with_warmup(self, n: int) -> RunStructure:
        """The structure with exactly the first ``n`` requests as warm-up and the others measured, as the user says
        (``--warmup N``): where warm-up requests run like the measured ones (no module loads, no autotuning, no
        range of their own), the data cannot tell them apart. Steps, requests and their numbers are unchanged."""
        if not self.requests:
            raise UsageError(
                f"--warmup {n}: no requests were found in this run", "analyze it with --window or --whole-trace"
            )
        if n >= len(self.requests):
            last = len(self.requests) - 1
            raise UsageError(
                f"--warmup {n}: the run has {len(self.requests)} request(s), numbered 0 to {last}; "
                f"{n} warm-up would leave none measured",
                f"give at most --warmup {last} (the requests: report TRACE --format json, run.request_list)",
            )
        why = f"--warmup {n}"
        requests = tuple(
            replace(r, warmup=r.index < n, reason=(r.reason or why) if r.index < n else "") for r in self.requests
        )
        phases = [p for p in self.phases if p.kind not in ("warm-up", "measured")]
        phases += [Phase("warm-up", r.start, r.end, f"request {r.index}: {r.reason}") for r in requests if r.warmup]
        measured = [r for r in requests if not r.warmup]
        phases.append(
            Phase(
                "measured", min(r.start for r in measured), max(r.end for r in measured), f"{len(measured)} request(s)"
            )
        )
        said = Evidence("warm-up", "user", "high", f"{why}: the first {n} request(s) are warm-up, the others measured")
        return replace(
            self,
            requests=requests,
            phases=tuple(sorted(phases, key=lambda ph: (ph.start, ph.end))),
            evidence=(*self.evidence, said),
        )

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
            "draft_passes": self.draft_passes,
            "draft_share": self.draft_share,
            "training": self.training,
            "micro_batches": self.micro_batches,
            "growing_passes": None if self.growing_passes is None else round(self.growing_passes, 3),
            "time_base": "host launch time (ns)",
            "request_list": [r.to_dict() for r in self.requests],
            "phases": [p.to_dict() for p in self.phases],
            "evidence": [e.to_dict() for e in self.evidence],
            "notes": list(self.notes),
        }
