"""The builder: from the sequence to the run's structure; ``find_structure`` and ``structure_of``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl

from .nvtx import count_inside, nvtx_groups
from .pass_finding import PassFinding
from .passes import PassStats, pass_stats, passes_from_level
from .patterns import (
    GAP_FACTOR,
    HEAVY_FACTOR,
    MIN_REQUEST_GAP_NS,
    ONE_PASS_TAIL_SHARE,
    REQUEST_GAP_SPAN_SHARE,
    SETUP_TAIL_KERNELS,
    SETUP_TAIL_TRIES,
)
from .requests import RequestCutting
from .result import CONFIDENCE, Evidence, Phase, Request, RunStructure, Step
from .sequence import Api, Cluster, find_clusters, find_levels, kernel_sequence, sorted_unique
from .signals import cut_level, families, find_signals, score_clusters
from .speculative import speculative_rounds

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


def _requests_of(cut: np.ndarray, p: int) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """From the request boundaries ``cut`` between ``p`` passes: each pass's request, the number of requests, and
    each request's first and last pass."""
    req_of = np.concatenate([[0], np.cumsum(cut)]).astype(np.int64) if p else np.zeros(0, dtype=np.int64)
    nreq = int(req_of[-1]) + 1 if p else 0
    req_first = np.searchsorted(req_of, np.arange(nreq), side="left")
    req_last = np.searchsorted(req_of, np.arange(nreq), side="right") - 1
    return req_of, nreq, req_first, req_last


def _heavy(ps: PassStats) -> np.ndarray:
    """Per pass: at least ``HEAVY_FACTOR`` times the median pass's GPU time (a prompt's pass among tokens')."""
    med = float(np.median(ps.gpu_time)) if ps.first.size else 0.0
    return ps.gpu_time >= HEAVY_FACTOR * max(med, 1.0)


def _leading(distinct: np.ndarray, req_first: np.ndarray, req_last: np.ndarray) -> np.ndarray:
    """Per pass: whether it is one of the distinct passes a request starts with (its prefill)."""
    lead = np.zeros(distinct.size, dtype=bool)
    for a, b in zip(req_first.tolist(), req_last.tolist(), strict=True):
        i = a
        while i <= b and distinct[i]:
            lead[i] = True
            i += 1
    return lead


def find_structure(
    kernels: pl.DataFrame,
    api: pl.DataFrame,
    memcpy: pl.DataFrame | None = None,
    memset: pl.DataFrame | None = None,
    nvtx: pl.DataFrame | None = None,
    capture_range: str | None = None,
    ops: pl.DataFrame | None = None,
    graph_launches: pl.DataFrame | None = None,
    launched: pl.DataFrame | None = None,
) -> RunStructure:
    """The run's kind, phases, requests and steps, with evidence (see the module docstring).

    ``kernels``/``api``/``memcpy``/``memset``/``nvtx``/``graph_launches`` are ``TraceFrames`` columns;
    ``capture_range`` is ``"cudaProfilerApi"`` when the trace was captured inside a cudaProfilerApi range;
    ``ops`` is an op classification (columns ``name``, ``family``; the shipped rules when None); ``launched`` is
    ``phases.launched_kernels(kernels, api)`` when the caller has it (its launch lookup is reused)."""
    b = _Builder(kernels, api, memcpy, nvtx, capture_range, ops, graph_launches, launched)
    return b.run()


# ------------------------------------------------------------------------------------------------ the builder


class _Builder(PassFinding, RequestCutting):
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
        self.api_index = Api(self.api, pid)
        seq = kernel_sequence(k, self.api_index, pid, self.launched)
        self.seq = seq
        self.sig = find_signals(seq, self.api_index, self.memcpy, pid)
        self.capture = self.capture or self.sig.profiler_starts.size > 0
        self.fams = families(seq.names, seq.shorts, self.ops)
        self.groups = nvtx_groups(self.nvtx, pid)
        clusters = score_clusters(find_clusters(find_levels(seq)), seq, self.sig, self.fams)
        self.cluster = None
        first = last = None
        source = "none"
        above = self.anchor_level(clusters[0]) if clusters and clusters[0].score >= 1 else None
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
            cl = Cluster([above], float(len(seq)) / above.count, inner.score, list(inner.reasons))
            cl.anchors = sorted({seq.shorts[c] for c in above.codes})
            clusters = [cl]
        elif clusters and clusters[0].score >= 1 and (found := self.passes_inside(clusters)) is not None:
            while found is not None:  # a group of passes: the passes are inside (and maybe finer groups)
                outer = clusters[0]
                clusters = [found, *(c for c in clusters if c is not found and c is not outer)]
                found = self.passes_inside(clusters)
        elif clusters and clusters[0].score >= 1 and not self.forward_like(clusters[0]):
            cl = clusters[0]
            self.notes.append(
                f"a loop of {round(cl.period)} kernel(s) repeats {cl.count} times without layers, sampling or "
                "graph launches: not a forward pass"
            )
            clusters = []
        spec = speculative_rounds(seq, self.fams)
        if spec is not None:  # draft passes and a verify pass: a step is one round (no one period fits both)
            first, last = spec.first, spec.last
            self.markers = spec.markers
            self.marker = seq.shorts[spec.anchor]
            self.spec = spec
            source = "kernel-period"
            self.ev("passes", "kernel-period", "medium", spec.why(seq))
        elif clusters and clusters[0].score >= 1:
            cl = clusters[0]
            self.cluster = cl
            cut = above if above is not None else cut_level(cl)
            pas = passes_from_level(seq, cut)
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
            span = self.nvtx_passes()
            if span is not None:
                first, last = span
                source = "nvtx"
            else:
                span = self.graph_passes()
                if span is not None:
                    first, last = span
                    source = "graph-launches"
        if first is None or last is None or first.size == 0:
            return self.after_setup() or self.unstructured(seq)
        if self.spec is None:  # a speculative run's rounds hold its prompt passes
            first, last = self.add_leading_prefills(first, last)
        ps = pass_stats(seq, first, last, self.markers)
        return self._assemble(ps, source)

    def after_setup(self) -> RunStructure | None:
        """The structure of the kernels after the run's setup, when the whole sequence has none: JIT compilation
        and autotuning (XLA's compiler ranges and autotuning kernels, Triton benchmarking candidate kernels while
        modules load) can repeat a loop of their own far more often than the run repeats its forward pass, and hide
        it. Setup signals are module loads, autotuning kernels and the end of the compiler NVTX ranges; the kernels
        from one of them to the end are analysed alone, from the signals followed by the longest stretches of
        kernels without another (at most ``SETUP_TAIL_TRIES``, each at least ``SETUP_TAIL_KERNELS`` kernels), then the
        last signal (the kernels after all of the setup: a compiled model's many module loads and benchmarking
        stretches can outnumber the tries); the first that repeats a forward pass is the run, and the setup a phase
        of it."""
        if self.lead_phases is not None:
            return None
        seq = self.seq
        signals = [self.sig.module_loads.astype(np.int64)]
        tune = self.autotune_positions()
        if tune.size:
            signals.append(seq.end[tune].astype(np.int64))
        comp = self._compile_ranges()
        if comp is not None:
            signals.append(np.array([comp[1]], dtype=np.int64))
        at = sorted_unique(np.concatenate(signals))
        if at.size == 0:
            return None
        t = np.sort(seq.t)
        ends = np.append(at[1:], np.iinfo(np.int64).max)
        stretch = np.searchsorted(t, ends, side="right") - np.searchsorted(t, at, side="right")
        order = [
            int(i) for i in np.argsort(-stretch, kind="stable")[:SETUP_TAIL_TRIES] if stretch[i] >= SETUP_TAIL_KERNELS
        ]
        if at.size - 1 not in order and stretch[-1] >= SETUP_TAIL_KERNELS:
            order.append(at.size - 1)  # and the last signal: the kernels after all of the setup
        lead: list[Phase] | None = None
        for i in order:
            setup_end = int(at[i])
            tail = _Builder(
                self.kernels.filter(pl.col("start") > setup_end),
                self.api,
                self.memcpy,
                self.nvtx,
                "cudaProfilerApi" if self.capture else None,
                self.ops,
                self.graph_launches,
                None if self.launched is None else self.launched.filter(pl.col("start") > setup_end),
            )
            if lead is None:  # the setup's phases (their evidence is the result's, not this analysis')
                kept = len(self.evidence)
                lead = [p for p in self.loading_phases(int(seq.t.min()), None) if p.kind != "loading"]
                del self.evidence[kept:]
            tail.lead_phases = lead
            found = tail.run()
            if found.kind == "unstructured":
                continue
            phases = tuple(sorted((*lead, *found.phases), key=lambda p: (p.start, p.end)))
            evidence = (
                *found.evidence,
                Evidence(
                    "phase",
                    "kernel-period",
                    "medium",
                    f"no repeating forward pass in the whole run; the {int((seq.t > setup_end).sum())} kernels "
                    f"after its setup (compilation, autotuning, module loads; to {setup_end}) repeat one",
                ),
            )
            return replace(found, phases=phases, evidence=evidence)
        return None

    # -- requests, kinds, warm-up, phases
    def _assemble(self, ps: PassStats, source: str, again: bool = True, plain: bool = False) -> RunStructure:
        """The requests, steps and kind of the passes ``ps``. ``plain``: no pass is told apart by its kernel mix
        (none leads a request as a prefill): the passes were found to be forward passes of changing shape."""
        seq = self.seq
        p = ps.first.size
        n_evidence, n_notes = len(self.evidence), len(self.notes)
        heavy = _heavy(ps)
        mode = float(np.median(ps.graph_share)) if p else 0.0
        wide = ps.wide_share >= 0.5  # most of its kernels launched over far more thread blocks than usual
        distinct = (
            (ps.own_rare_share() >= 0.1)
            | (heavy & (ps.rare_names >= 2))
            | (np.abs(ps.graph_share - mode) > 0.5)  # eager prefill before graphed decode steps
            | wide  # the same kernels launched over a prompt's rows rather than one token's
        )
        if p < 3:
            distinct = heavy | (ps.rare_share >= 0.5)
        grows = self.growing_passes(ps) if p >= 3 else None
        if grows is not None:
            # no KV cache: the passes are told apart by their width, which grows with the sequence and falls back
            # at a new prompt; their kernel mix changes with it (other GEMMs for longer sequences) and cuts nothing
            distinct = grows[1]
            resets = int(distinct[1:].sum())
            self.ev(
                "kv-cache",
                "kernel-growth",
                "medium",
                f"{grows[0]:.0%} of a pass's kernels (the median) launch over more thread blocks than in the pass "
                "before: each pass runs over the whole sequence so far (no KV cache)"
                + (f"; they shrink back (a new prompt) at {resets} pass(es)" if resets else ""),
            )
        self.growing = None if grows is None else grows[0]
        if plain:
            distinct = np.zeros(p, dtype=bool)
        # NVTX ranges that line up with the passes
        nv_prefill, nv_request = self.nvtx_check(ps)
        if nv_prefill is not None:
            distinct = nv_prefill
        # request boundaries between pass i and i+1
        gap = np.maximum(ps.gpu_start[1:] - ps.gpu_end[:-1], 0)  # GPU idle between steps
        cut = np.zeros(max(p - 1, 0), dtype=bool)
        moves: dict[int, int] = {}
        reasons: list[str] = []
        if p > 1:
            med_gap = float(np.median(gap))
            # and a sizable part of a pass: a stall of a third of a pass is no pause between requests
            med_span = float(np.median(ps.gpu_end - ps.gpu_start))
            thr = max(GAP_FACTOR * med_gap, MIN_REQUEST_GAP_NS, REQUEST_GAP_SPAN_SHARE * med_span)
            by_gap = gap >= thr
            led = distinct[1:] & ~distinct[:-1]
            # modules loaded between two steps: set-up work inside a request (compilation, lazy loading), not its end
            compiling = count_inside(self.sig.module_loads, ps.t_end[:-1], ps.t_start[1:]) > 0
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
                at = count_inside(spos, lo, hi) > 0
                inner = int((count_inside(spos, ps.mark_first + 1, ps.mark_last) > 0).sum())
                at &= ~compiling
                if led.any():
                    at &= led
                # (a pass with syncs of its own, such as cuDNN autotuning in the first pass, may exist)
                if 1 <= at.sum() <= 0.5 * at.size and inner <= max(1, 0.1 * p) and not (at & cut).all():
                    cut |= at
                    for i in np.nonzero(at)[0].tolist():  # the next request starts at the sync
                        # (after the last one, when several kinds of sync end a request: the kernels between them
                        # are the request's own closing work, such as beam search's final reordering)
                        moves[i] = max(moves.get(i, 0), int(spos[np.searchsorted(spos, lo[i])]))
                    self.ev(
                        "requests",
                        "host-syncs",
                        "medium",
                        f"{api_name} between steps at {int(at.sum())} of {at.size} step boundaries only",
                    )
            if self.sig.profiler_starts.size > 1:
                st = self.sig.profiler_starts
                by_cap = count_inside(st, ps.t_end[:-1], ps.t_start[1:]) > 0
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
                self.stride_cuts(ps, cut, gap, med_gap, compiling, led)
        moves = {i: q for i, q in moves.items() if cut[i] and ps.first[i] < q < ps.last[i + 1]}
        if moves:
            first, last = ps.first.copy(), ps.last.copy()
            for i, q in moves.items():
                last[i] = q
                first[i + 1] = q
            ps = pass_stats(seq, first, last, self.markers)
            if p >= 3 and not plain and nv_prefill is None and grows is None:
                # a request now starts at its sync: the kernels between that sync and its first pass are its own,
                # and a loop over its prompt outside the repeating passes (a recurrent model's prompt pass, which
                # runs its cells once per prompt token) makes that pass heavy with rare kernels: its prefill
                distinct = distinct | (_heavy(ps) & (ps.rare_names >= 2))
        split = self.split_heads(ps) if p else None
        if split is not None and again:
            # a request's first pass holds a prefill without the once-per-pass kernels (eager prefill before
            # compiled or graphed decode steps): measure again with the prefill as a pass of its own
            del self.evidence[n_evidence:], self.notes[n_notes:]
            self.ev("prefill", "kernel-mix", "medium", split[2])
            return self._assemble(pass_stats(seq, split[0], split[1], self.markers), source, again=False)
        req_of, nreq, req_first, req_last = _requests_of(cut, p)
        # kinds
        lead = _leading(distinct, req_first, req_last)
        if self.growing is not None and nv_prefill is None:  # no KV cache: a request's prompt is its first pass
            lead = np.zeros(p, dtype=bool)
            lead[req_first] = True
        if self.spec is not None and nreq and not lead[req_first].all():
            # a speculative request's first round holds the prompt's passes (the draft model's and the target's,
            # which verifies the first drafts over the prompt): its prefill step
            lead[req_first] = True
            self.ev("prefill", "kernel-mix", "medium", "each request's first round holds the prompt's passes")
        starts_distinct = [bool(lead[req_first[r]]) for r in range(nreq)]
        kind, kind_conf = self.run_kind(ps, lead, starts_distinct, req_first, req_last)
        if kind == "iterations" and lead.any() and not plain:
            reshaped = [e for e in self.evidence[n_evidence:] if e.fact == "kind" and "changing shape" in e.detail]
            if reshaped:
                # passes of changing shape, not prefill and decode: their kernel mix cuts no request
                del self.evidence[n_evidence:], self.notes[n_notes:]
                found = self._assemble(ps, source, again=again, plain=True)
                evidence = tuple(e for e in found.evidence if e.fact != "kind" or e.source != "kernel-mix")
                return replace(found, evidence=(*evidence, *reshaped))
        optimizer = self.optimizer_passes(ps) if kind == "iterations" else None  # (training only)
        by_optimizer = self.optimizer_cuts(optimizer) if optimizer is not None and p > 2 else None
        before_input = len(self.evidence)
        by_input = self.input_cuts(ps, cut) if kind == "iterations" and by_optimizer is None else None
        if by_optimizer is not None and not (by_optimizer != cut).any():
            by_optimizer = None  # the requests are the optimizer steps already
        recut = by_input if by_input is not None else by_optimizer
        if recut is not None:
            # these cuts replace the others: what idle gaps, syncs and strides said of requests no longer holds
            stale = range(n_evidence, before_input)
            self.evidence = [e for i, e in enumerate(self.evidence) if i not in stale or e.fact != "requests"]
            cut = recut
            req_of, nreq, req_first, req_last = _requests_of(cut, p)
            # passes that each take an input of their own size lead nothing; an optimizer step may start with one
            lead = _leading(distinct if by_input is None else np.zeros(p, dtype=bool), req_first, req_last)
        if by_optimizer is not None:
            # training with gradient accumulation: a request is one optimizer step (its micro-batches' passes)
            self.ev(
                "requests",
                "kernel-names",
                "medium",
                f"the optimizer runs after every {int(np.diff(np.nonzero(cut)[0]).max(initial=2))} passes: each "
                "optimizer step is a request",
            )
        if kind == "iterations" and p == 1 and len(seq) - int(ps.last[0]) >= ONE_PASS_TAIL_SHARE * len(seq):
            # one training step found around its forward and backward: the kernels after them (the optimizer step)
            # are the rest of it, not something after the run
            rest = len(seq) - int(ps.last[0])
            ps = pass_stats(seq, ps.first, np.array([len(seq)], dtype=np.int64), self.markers)
            optimizer = self.optimizer_passes(ps)
            self.notes.append(
                f"the only pass goes on to the end of the work: {rest} more kernels (a training step's optimizer, or "
                "the pass's own closing work)"
            )
        prompts_only = not lead.any() and not self.nv_decode and p > 1 and self.spec is None
        if kind == "llm-decode" and prompts_only and self.gemm_led(ps).mean() >= 0.9:
            # identical passes that multiply matrices (GEMM, prefill attention) rather than vectors: prompts only (a
            # speculative round's verify pass multiplies matrices too: over its drafts, after them)
            kind = "llm-prefill"
            self.evidence = [e for e in self.evidence if e.fact != "kind"]
            self.ev("kind", "kernel-mix", "medium", f"all {p} passes run GEMMs, not GEMVs: prefill passes")
            req_of = np.arange(p, dtype=np.int64)
            nreq = p
            req_first = req_of.copy()
            req_last = req_of.copy()
            lead = np.ones(p, dtype=bool)
        if kind == "iterations" and nreq == 1 and p > 1:
            # one request for the whole run (no boundary found): its leading passes that load modules are warm-up;
            # a request found from gaps, syncs or NVTX stays whole (its first pass's loads make all of it warm-up)
            extra = self.warmup_passes(ps, req_first, req_last)
            if extra.any():
                cut = cut | extra
                req_of, nreq, req_first, req_last = _requests_of(cut, p)
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
        warm, warm_why = self.warmup(ps, req_first, req_last, step_kind, nv_request is not None)
        # the columns as Python lists first: a NumPy scalar taken per step and converted costs 5x more
        columns = (req_of, step_kind, ps.t_start, t_end, ps.gpu_start, ps.gpu_end, ps.kernels, ps.gpu_time)
        steps = tuple(
            Step(i, int(r), str(k), int(t0), int(t1), int(g0), int(g1), int(n), int(g))
            for i, (r, k, t0, t1, g0, g1, n, g) in enumerate(
                zip(*(np.asarray(c).tolist() for c in columns), strict=True)
            )
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
        phases = self.loading_phases(int(seq.t.min()), int(ps.t_start[0]))
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
        training, micro_batches = (
            self.training_steps(optimizer, req_first, req_last, warm) if optimizer is not None else (False, None)
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
            None if self.spec is None else self.spec.drafts,
            None if self.spec is None else round(self.spec.draft_share, 3),
            training,
            micro_batches,
            self.growing if kind == "llm-decode" else None,
        )
