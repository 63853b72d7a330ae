"""Requests, run kind, warm-up and phases: the passes cut into requests and steps, with the evidence."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl

from ...trace.schema import COPY_HTOD
from ...trace.tables import pid_of
from ..distribution import scalar_int, span_sums
from .nvtx import count_inside, regular_stride
from .passes import PassStats, pass_growth
from .patterns import (
    ATTENTION_FAMILIES,
    BACKWARD_KERNELS,
    CNN_CONV_SHARE,
    CONV_FAMILIES,
    DECODE_NAMES,
    FRAGMENT_SHARE,
    FRESH_INPUT_BYTES,
    FRESH_INPUT_GEMM_SHARE,
    FRESH_INPUT_SHARE,
    GROWING_MATCH,
    GROWING_PAIRS,
    GROWING_SAMPLE,
    GROWING_SHARE,
    GROWING_STEP,
    HEAD_OWN_SHARE,
    INIT_KERNELS,
    MATRIX_FAMILIES,
    MIN_ALIKE_PASSES,
    MIN_STRIDE_GAP_NS,
    OPTIMIZER_KERNELS,
    PASS_END,
    PREFILL_NAMES,
    RECURRENT_ANCHORS,
    RECURRENT_PERIOD,
    RECURRENT_RUN,
    RECURRENT_STEPS,
    REQUEST_NAMES,
    RESET_MATCH,
    RESET_SHARE,
    RNN_KERNELS,
    SLOW_WARMUP_FACTOR,
    STEP_NAMES,
    STRIDE_GAP_FACTOR,
    STRIDE_MIN_CUTS,
    XLA_BACKWARD,
)
from .result import Phase, RunStructure
from .sequence import Seq, first_positions, is_empty_frame, sorted_unique
from .signals import is_anchor
from .state import BuilderState


class RequestCutting(BuilderState):
    def growing_passes(self, ps: PassStats) -> tuple[float, np.ndarray] | None:
        """Passes that grow, as an LLM's decode passes without a KV cache do (each runs the model over the whole
        sequence so far): the median share of a pass's kernels launched over more thread blocks than the same
        kernel of the pass before (over ``GROWING_PAIRS`` or more pairs of passes that match by position) is at
        least ``GROWING_SHARE``, and hardly any shrink. Then (that share, the passes that start a request): the
        first, and each whose kernels shrink back (a new prompt). None when the passes do not grow, grow by more
        than a token's rows a pass (the grown kernels' thread blocks over ``GROWING_STEP`` times those of the pass
        before, the median pass: prompts of rising lengths, one pass each), or sample no token in most passes."""
        p = ps.first.size
        seq = self.seq
        sampling = sum(int(seq.counts[c]) for c, n in enumerate(seq.names) if PASS_END.search(n))
        if sampling < 0.5 * p:
            return None
        # decided on at most GROWING_SAMPLE pairs spread over the run (2 million kernels: 0.28 s for all of them)
        sample = sorted_unique(np.linspace(1, p - 1, min(p - 1, GROWING_SAMPLE)).astype(np.int64)) if p > 1 else None
        if sample is None:
            return None
        matched, grew, fell, step = pass_growth(seq, ps.first, ps.last, sample)
        pairs = matched >= GROWING_MATCH  # NaN compares False
        if int(pairs.sum()) < GROWING_PAIRS:
            return None
        share = float(np.median(grew[pairs]))
        if share < GROWING_SHARE or float(np.median(fell[pairs])) > 0.05:
            return None
        steps = step[pairs & ~np.isnan(step)]
        if not steps.size or float(np.median(steps)) > GROWING_STEP:
            return None
        if sample.size < p - 1:  # the passes grow: every pass is needed to find where they shrink back
            matched, grew, fell, _ = pass_growth(seq, ps.first, ps.last)
        starts = (matched >= RESET_MATCH) & (fell >= RESET_SHARE)
        starts[0] = True
        return share, starts

    def unstructured(self, seq: Seq) -> RunStructure:
        self.ev("kind", "kernel-period", "medium", "no kernel sequence repeats with a period; no step ranges")
        t0, t1 = int(seq.t.min()), int(max(seq.t_end.max(), seq.t.max()))
        phases = self.loading_phases(t0, None)
        return RunStructure(
            "unstructured",
            "none",
            "medium",
            phases=tuple(phases),
            evidence=tuple(self.evidence),
            notes=(*self.notes, f"{len(seq)} kernels, {len(seq.names)} distinct names between {t0} and {t1}"),
            pid=self.pid,
        )

    def nvtx_check(self, ps: PassStats) -> tuple[np.ndarray | None, np.ndarray | None]:
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
            cnt = count_inside(ps.t_mid, g.start, g.end)
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
            cnt = count_inside(ps.t_mid, g.start, g.end)
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

    def stride_cuts(
        self,
        ps: PassStats,
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
            if int((count_inside(pos, ps.mark_first + 1, ps.mark_last) > 0).sum()) > max(1, 0.1 * p):
                continue  # it also runs inside the steps
            at = count_inside(pos, lo, hi) > 0
            self._stride_cut(cut, at, compiling, led, source, label)
        floor = max(STRIDE_GAP_FACTOR * med_gap, MIN_STRIDE_GAP_NS)
        self._stride_cut(
            cut, gap >= floor, compiling, led, "idle-gaps", f"an idle gap of at least {floor / 1e6:.3f} ms"
        )

    def input_cuts(self, ps: PassStats, cut: np.ndarray) -> np.ndarray | None:
        """Request boundaries of a run of iterations (forward passes, not token-by-token decode) at every pass, when
        a host-to-device copy lies at every pass boundary and inside no pass and the passes change shape
        (``_shape_changes``):
        each pass takes a fresh input of its own size from the host (an encoder serving requests). In token-by-token
        decode the same copy (the next token, fed by the host) cuts nothing; a loop over batches of one shape stays
        one request of iterations. None when that is not so or every boundary is cut already."""
        pos = self.sig.copy_positions.get("host-to-device copy")
        if pos is None or not cut.size or cut.all():
            return None
        lo = ps.mark_last[:-1] + 1
        hi = ps.mark_first[1:]
        if not (count_inside(pos, lo, hi) > 0).all() or (count_inside(pos, ps.mark_first + 1, ps.mark_last) > 0).any():
            return None
        if ps.first.size < 3:
            return None
        changes = self._shape_changes(ps, [list(range(ps.first.size))])
        if changes is None:
            return None  # inputs of one shape: a loop over batches, iterations of one request
        self.ev(
            "requests",
            "copies",
            "medium",
            "a host-to-device copy before every pass and inside none, and the shape of the passes' matrix products "
            f"changes between {changes[0]} of {changes[1]} following passes: each pass takes a fresh input of its "
            "own size, a request each",
        )
        return np.ones(cut.size, dtype=bool)

    def _stride_cut(
        self, cut: np.ndarray, at: np.ndarray, compiling: np.ndarray, led: np.ndarray, source: str, label: str
    ) -> None:
        if led.any():
            at = at & led  # requests start with a prefill step: never cut before a decode step
        k = regular_stride(at, cut)
        if k is None:
            at = at & ~compiling
            k = regular_stride(at, cut)
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

    def split_heads(self, ps: PassStats) -> tuple[np.ndarray, np.ndarray, str] | None:
        """Split a pass whose kernels before its once-per-pass kernels are far more than the other passes have
        there and form a forward pass of their own (matrix products and sampling/embedding kernels, at least
        ``HEAD_OWN_SHARE`` of them kernels a typical pass does not run): that head is an eager prefill before
        compiled or graphed decode steps, or an encoder's pass before the decoder's. A head of mostly the passes'
        own kernels is the first pass's own prompt work (a recurrent model's scan over the prompt's tokens)."""
        if self.markers is None or ps.first.size < 4 or self.spec is not None:
            return None  # a speculative round's drafts before its verify pass vary in number by design
        seq = self.seq
        head = ps.mark_first - ps.first
        typical = int(np.median(head))
        med_k = float(np.median(ps.kernels))
        linear = {"gemm", "gemv", "attention", "attention-prefill", "attention-decode", "moe"}
        cuts: list[int] = []
        long_head = (head - typical >= max(16, 0.25 * med_k)) & (head - typical <= 4 * med_k)
        mid_pass = int(np.argsort(ps.kernels, kind="stable")[ps.kernels.size // 2])
        usual = np.zeros(len(seq.names), dtype=bool)  # the names a typical pass runs
        usual[seq.code[int(ps.first[mid_pass]) : int(ps.last[mid_pass])]] = True
        for i in np.nonzero(long_head)[0].tolist():
            a, m = int(ps.first[i]), int(ps.mark_first[i]) - typical
            codes = seq.code[a:m]
            if int(np.isin(np.array(self.fams, dtype=object)[codes], list(linear)).sum()) < 2:
                continue
            if usual[codes].mean() > 1 - HEAD_OWN_SHARE:
                continue  # the passes' own kernels, more of them: the pass's prompt work (a scan over its tokens)
            if any(is_anchor(seq.names[c], seq.shorts[c], self.fams[c]) for c in sorted_unique(codes).tolist()):
                cuts.append(i)
        if not cuts:
            return None
        at = np.array(cuts, dtype=np.int64)
        mid = ps.mark_first[at] - typical
        first = np.sort(np.concatenate([ps.first, mid]))
        last = np.sort(np.concatenate([ps.last, mid]))
        return first, last, f"{at.size} request(s) start with an eager prefill before their first repeating step"

    def gemm_led(self, ps: PassStats) -> np.ndarray:
        """Passes whose matrix products are GEMMs (a prompt's tokens) more than GEMVs (one token)."""
        fam = np.array([*self.fams, "other"])
        gemm = np.isin(fam, ["gemm", "attention-prefill"])[self.seq.code]
        gemv = np.isin(fam, ["gemv", "attention-decode"])[self.seq.code]
        return span_sums(gemm, ps.first, ps.last) > span_sums(gemv, ps.first, ps.last)

    def run_kind(
        self,
        ps: PassStats,
        lead: np.ndarray,
        starts_distinct: list[bool],
        req_first: np.ndarray,
        req_last: np.ndarray,
    ) -> tuple[str, str]:
        anchors = self.cluster.anchors if self.cluster is not None else []
        if self.spec is not None and self.marker:  # a speculative run's passes were cut at its sampling kernel
            anchors = [self.marker]
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
        if signals == [signals[-1]] and by_req:
            reshaped = self._reshaped_decode(ps, lead, req_first, req_last)
            if reshaped is not None:
                self.ev(
                    "kind",
                    "kernel-mix",
                    "medium",
                    f"requests start with a step of their own kernel mix, but {reshaped}: repeated forward passes of "
                    "changing shape, not token-by-token decode",
                )
                return "iterations", "medium"
        share, attention = self.convolution_share(int(ps.first[0]), int(ps.last[-1]))
        conv = (
            self._convolution_led(share, attention)
            or self._training(ps)
            or self._recurrent(ps, attention)
            or self._fresh_inputs(ps, attention)
            or self._no_prompt_pass(ps, lead, attention, signals)
            or self._convolution_front(ps, lead)
        )
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

    def _reshaped_decode(
        self, ps: PassStats, lead: np.ndarray, req_first: np.ndarray, req_last: np.ndarray
    ) -> str | None:
        """Why the would-be decode steps (the passes after a request's first ones) are no decode steps, when the
        shape of their matrix products changes from one to the next inside a request more often than not
        (``_shape_changes``: an encoder's requests of changing length). A decode step's linear layers keep one
        shape at a given batch; only attention's grows with the context, now and then."""
        groups = [
            [i for i in range(int(req_first[r]), int(req_last[r]) + 1) if not lead[i]] for r in range(len(req_first))
        ]
        if sum(len(g) for g in groups) < 3:
            return None
        found = self._shape_changes(ps, groups)
        if found is None:
            return None
        changed, pairs = found
        return f"the shape of their matrix products changes between {changed} of {pairs} following steps"

    def _shape_changes(self, ps: PassStats, groups: list[list[int]]) -> tuple[int, int] | None:
        """(changes, pairs): how many pairs of following passes of each group differ in the shape of their matrix
        products (the GEMM and GEMV kernels and the thread blocks they are launched over), when more than half do;
        None when not, without such a pair or without recorded grids."""
        seq = self.seq
        if not seq.blocks.any():
            return None
        linear = np.isin(np.array([*self.fams, "other"], dtype=object), ["gemm", "gemv"])[seq.code]

        def shape(i: int) -> tuple[tuple[int, int], ...]:
            a, b = int(ps.first[i]), int(ps.last[i])
            keep = linear[a:b]
            return tuple(sorted(zip(seq.code[a:b][keep].tolist(), seq.blocks[a:b][keep].tolist(), strict=True)))

        pairs = changed = 0
        for group in groups:
            shapes = [shape(i) for i in group]
            pairs += max(len(shapes) - 1, 0)
            changed += sum(x != y for x, y in itertools.pairwise(shapes))
        return (changed, pairs) if pairs and 2 * changed > pairs else None

    @staticmethod
    def _convolution_led(share: float, attention: bool) -> str | None:
        """Why the passes are not an LLM's when convolutions take at least ``CNN_CONV_SHARE`` of their kernel time
        (``share``) and no kernel is attention (a CNN: an argmax over its outputs or a classifier head looks like
        sampling; MobileNet's 1x1 convolutions run as GEMMs, its norms outweigh its convolutions); None otherwise."""
        if attention or share < CNN_CONV_SHARE:
            return None
        return f"convolutions take {share:.0%} of the passes' GPU time, no attention kernels"

    def _fresh_inputs(self, ps: PassStats, attention: bool) -> str | None:
        """Why the passes are not an LLM's when at least ``FRESH_INPUT_SHARE`` of them start by copying
        ``FRESH_INPUT_BYTES`` or more from the host, and no kernel is attention (``attention``) or nearly every pass
        multiplies matrices as GEMMs (``gemm_led``: a whole input's rows, where a decode step's GEMVs multiply one
        token's): each pass takes a fresh input (a recommender's batch of features and ids, a graph, images for a
        vision transformer), where a decode step takes the token sampled before it (its embedding lookup and the
        classifier's argmax look like an LLM's; an LLM fed a large buffer every step still decodes with GEMVs). The
        copies are those whose GPU start lies after the pass before it ended, up to the pass's own end. None
        otherwise."""
        if self.memcpy is None or self.memcpy.is_empty() or ps.first.size < 2:
            return None
        gemm = attention and float(self.gemm_led(ps).mean()) >= FRESH_INPUT_GEMM_SHARE
        if attention and not gemm:
            return None
        h2d = self.memcpy.filter(pl.col("copyKind") == COPY_HTOD)
        if self.pid is not None and "globalPid" in h2d.columns:  # the analyzed process's copies only
            h2d = h2d.filter(pid_of("globalPid") == self.pid)
        if h2d.is_empty():
            return None
        at = np.searchsorted(ps.gpu_end, h2d["start"].to_numpy(), side="left")
        inside = at < ps.first.size
        size = h2d["bytes"].fill_null(0).to_numpy()[inside]
        per_pass = np.bincount(at[inside], weights=size, minlength=ps.first.size)
        fresh = per_pass >= FRESH_INPUT_BYTES
        if float(fresh.mean()) < FRESH_INPUT_SHARE:
            return None
        med = float(np.median(per_pass))
        how = "their matrix products GEMMs over the whole input" if gemm else "no attention kernels"
        return (
            f"{int(fresh.sum())} of {ps.first.size} passes start by copying {FRESH_INPUT_BYTES // 1024} KiB or more "
            f"from the host (median {med / 1024:,.0f} KiB), {how}: each takes a fresh input"
        )

    def _no_prompt_pass(self, ps: PassStats, lead: np.ndarray, attention: bool, signals: list[str]) -> str | None:
        """Why the passes are not an LLM's when the only LLM signal is their sampling or embedding kernels, no kernel
        is attention, no pass leads a request (no prompt's pass: every pass runs alike) and the whole run was
        captured (a capture range may hold decode steps alone): an LLM's request starts with its prompt's pass, a
        retrieval or ranking model's top-k and embedding lookups run in every one of its passes. Not for
        speculative rounds or passes that grow (no KV cache), nor for a recurrent model (``RNN_KERNELS``: a recurrent
        language model's request runs alike too). The capture must hold the program's start: weights copied to the
        GPU before the first pass (a capture that starts later, with ``--delay`` or ``--duration``, may hold an
        LLM's decode steps alone, and eager attention's batched products and softmax are no attention kernel by
        name). None otherwise."""
        if attention or lead.any() or len(signals) != 1 or not signals[0].startswith("once-per-pass"):
            return None
        if self.capture or self.spec is not None or self.growing is not None or ps.first.size < MIN_ALIKE_PASSES:
            return None
        if not (self.sig.weight_copies < ps.t_start[0]).any():
            return None
        if any(RNN_KERNELS.search(self.seq.names[c]) for c in self.codes_used(int(ps.first[0]), int(ps.last[-1]))):
            return None
        return f"all {ps.first.size} passes run alike (no prompt's pass leads a request) and no kernel is attention"

    def _convolution_front(self, ps: PassStats, lead: np.ndarray) -> str | None:
        """Why the passes are not an LLM's when no pass leads a request (prompts alone, no decode step) and most
        passes start their matrix work with a convolution: an image's (or a signal's) patch embedding, the front of
        a vision transformer, which no LLM's pass has (a classifier's argmax and attention look like an LLM's).
        None otherwise."""
        if lead.any() or self.spec is not None or self.growing is not None or self.nv_decode:
            return None
        seq = self.seq
        fam = np.array([*self.fams, "other"], dtype=object)
        conv = np.isin(fam, list(CONV_FAMILIES))[seq.code]
        work = np.flatnonzero(conv | np.isin(fam, [*MATRIX_FAMILIES, *ATTENTION_FAMILIES])[seq.code])
        # each pass's first kernel of matrix work (a convolution, a matrix product or attention): a convolution?
        at = np.searchsorted(work, ps.first)
        first = work[np.minimum(at, max(work.size - 1, 0))] if work.size else np.zeros(0, dtype=np.int64)
        front = int((conv[first] & (first >= ps.first) & (first < ps.last)).sum()) if work.size else 0
        if 2 * front <= ps.first.size:
            return None
        return f"{front} of {ps.first.size} passes start with a convolution (a patch embedding) and none decodes"

    def _training(self, ps: PassStats) -> str | None:
        """Why the passes are not an LLM's inference when backward kernels run in them (autograd's
        ``*_backward_*``: a training step, whose gradient sorts and gathers look like sampling); None otherwise."""
        backward = self.backward_kernels(ps)
        if not backward:
            return None
        return f"backward kernels run in the passes ({', '.join(backward[:3])}): training steps"

    def backward_kernels(self, ps: PassStats) -> list[str]:
        """What says the passes run a backward pass: the short names of their autograd backward kernels
        (``BACKWARD_KERNELS``), else, for XLA, its NVTX ranges of the ops JAX's reverse-mode differentiation made
        (``XLA_BACKWARD``: ``transpose(jvp(...))`` in an op's name stack) during the passes; [] when none."""
        seq = self.seq
        a, b = int(ps.first[0]), int(ps.last[-1])
        backward = sorted({seq.shorts[c] for c in self.codes_used(a, b) if BACKWARD_KERNELS.search(seq.names[c])})
        if backward or is_empty_frame(self.nvtx) or "text" not in self.nvtx.columns:  # type: ignore[union-attr]
            return backward
        nv = self.nvtx
        t0, t1 = int(ps.t_start[0]), int(ps.t_end[-1])
        grads = nv.filter(  # type: ignore[union-attr]
            (pl.col("start") >= t0) & (pl.col("start") <= t1) & pl.col("text").str.contains(XLA_BACKWARD, literal=True)
        ).height
        return [f"{grads} XLA ops of JAX's reverse-mode differentiation, transpose(jvp(...))"] if grads else []

    def _recurrent(self, ps: PassStats, attention: bool) -> str | None:
        """Why the passes are not an LLM's decode steps when most of them run a recurrent cell over a sequence: a
        cycle of two to ``RECURRENT_PERIOD`` kernels, a matrix product among them, at least ``RECURRENT_STEPS``
        times in the pass, in runs of at least ``RECURRENT_RUN`` repeats in a row (cuDNN's LSTM and GRU step a GEMV or
        GEMM and ``elemWiseRNNcell`` per time step and layer, and project the next chunk of 8 or 16 time steps'
        inputs in between), no kernel is attention (``attention``), and sampling/embedding kernels run at most
        ``RECURRENT_ANCHORS`` times in the median pass. Such a pass reads a whole sequence where a decode step reads
        one token: a recurrent language model's decode steps run its cell once per layer, only its prompt's pass
        loops (a "pass" that holds a prompt's loop and many sampled tokens is a whole request). None otherwise."""
        if attention:
            return None  # a transformer
        seq = self.seq
        a, b = int(ps.first[0]), int(ps.last[-1])
        code = seq.code[a:b]
        matrix = np.array([f in MATRIX_FAMILIES for f in self.fams], dtype=bool)
        repeats = np.zeros(ps.first.size, dtype=np.int64)  # time steps of recurrent cells in each pass
        cycles: dict[tuple[int, ...], int] = {}
        for period in range(2, RECURRENT_PERIOD + 1):
            if code.size <= period * RECURRENT_RUN:
                break
            same = np.concatenate([[0], (code[period:] == code[:-period]).astype(np.int8), [0]])
            edges = np.diff(same)
            starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
            long = ends - starts >= (RECURRENT_RUN - 1) * period
            starts, ends = starts[long], ends[long]
            if not starts.size:
                continue
            cyc = code[starts[:, None] + np.arange(period)]  # each run's cycle, one row each
            # two kernels at least (one kernel over and over is a loop of copies) and a matrix product among them
            keep = (cyc != cyc[:, :1]).any(axis=1) & matrix[cyc].any(axis=1)
            if period == 4:
                keep &= ~(cyc[:, :2] == cyc[:, 2:]).all(axis=1)  # a cycle of two, counted as such
            at = np.searchsorted(ps.first, starts + a, side="right") - 1  # the pass each run starts in
            keep &= (at >= 0) & (starts + a < ps.last[np.maximum(at, 0)])
            if not keep.any():
                continue
            n = (ends - starts)[keep] // period + 1
            np.add.at(repeats, at[keep], n)
            rows, inverse = np.unique(cyc[keep], axis=0, return_inverse=True)
            totals = np.bincount(inverse.ravel(), weights=n)
            for row, total in zip(rows.tolist(), totals.tolist(), strict=True):
                cycles[tuple(row)] = cycles.get(tuple(row), 0) + int(total)
        looping = repeats >= RECURRENT_STEPS
        if not cycles or looping.mean() <= 0.5:
            return None
        anchor = np.array(
            [is_anchor(seq.names[c], seq.shorts[c], self.fams[c]) for c in range(len(seq.names))], dtype=bool
        )
        if float(np.median(span_sums(anchor[seq.code], ps.first, ps.last))) > RECURRENT_ANCHORS:
            return None  # sampling and embedding kernels many times a pass: a token's steps inside each "pass"
        cycle = max(cycles, key=lambda c: cycles[c])
        names = ", ".join(dict.fromkeys(seq.shorts[c] for c in cycle))
        return (
            f"a cycle of {len(cycle)} kernels ({names}) runs in {int(looping.sum())} of {looping.size} passes "
            f"({int(np.median(repeats[looping]))} times in the median of them) and no kernel is attention: a "
            "recurrent cell over each pass's sequence, not one token per step"
        )

    def optimizer_passes(self, ps: PassStats) -> tuple[list[str], list[str], np.ndarray | None]:
        """The short names of the backward kernels that run in the passes (none: no training), of the optimizer
        kernels (``OPTIMIZER_KERNELS``), and which passes run the optimizer (None without optimizer kernels). An
        optimizer step (its kernels with less than half a pass between them) is in the pass that holds its first
        kernel, a pass counting with the kernels after it up to the next pass (the optimizer step can lie between two
        passes)."""
        seq = self.seq
        a = int(ps.first[0])
        backward = self.backward_kernels(ps)
        if not backward:
            return [], [], None
        optimizer = [c for c in self.codes_used(a, len(seq)) if OPTIMIZER_KERNELS.search(seq.names[c])]
        if not optimizer:
            return backward, [], None
        at = np.nonzero(np.isin(seq.code[a:], np.array(optimizer, dtype=seq.code.dtype)))[0] + a
        # one optimizer step: its kernels with less than half a pass between them; it belongs to the pass that
        # holds its first kernel, after the backward it follows (a pass boundary may fall inside the step: at a
        # lazy module load of the first step's optimizer kernels)
        step_start = at[np.concatenate([[True], np.diff(at) > max(1, int(np.median(ps.kernels)) // 2)])]
        in_pass = np.bincount(np.searchsorted(ps.first, step_start, side="right") - 1, minlength=len(ps.first)) > 0
        return backward, sorted({seq.shorts[c] for c in optimizer}), in_pass

    def optimizer_cuts(self, found: tuple[list[str], list[str], np.ndarray | None]) -> np.ndarray | None:
        """Request boundaries at the optimizer steps of a training run with gradient accumulation: when the
        optimizer runs after every k-th pass (k >= 2, at least three times, equal spacing), each optimizer step is a
        request, cut after the passes that run it, whatever syncs and gaps say (a sync may follow each micro-batch;
        modules may load in the gap after the warm-up). None otherwise (no training, the optimizer in every pass or
        at uneven spacing: passes cut on either side of the optimizer step)."""
        backward, _, in_pass = found  # optimizer_passes
        if not backward or in_pass is None:
            return None
        at = np.nonzero(in_pass)[0]
        spacing = np.diff(at)
        if at.size < 3 or spacing.min() < 2 or spacing.min() != spacing.max():
            return None
        if len(in_pass) - 1 - at[-1] >= spacing[0]:  # a whole step after the last optimizer step: no such rhythm
            return None
        cut = np.zeros(len(in_pass) - 1, dtype=bool)
        cut[at[at < len(in_pass) - 1]] = True
        return cut

    def training_steps(
        self,
        found: tuple[list[str], list[str], np.ndarray | None],
        req_first: np.ndarray,
        req_last: np.ndarray,
        warm: list[bool],
    ) -> tuple[bool, int | None]:
        """Whether a run of iterations trains (autograd's backward kernels run in its passes), and with gradient
        accumulation the micro-batches per optimizer step: when at least two measured requests, all but a shorter
        first or last one (a capture that starts or stops inside an optimizer step), have the same k >= 2 passes
        and the optimizer's kernels run in exactly one pass of each (the optimizer step after the last
        micro-batch, on either side of the pass boundary; see ``optimizer_passes``), a request is one optimizer step
        of k micro-batches. Optimizer kernels in every pass make each pass an optimizer step (no accumulation)."""
        backward, names, in_pass = found  # optimizer_passes
        if not backward:
            return False, None
        detail = f"backward kernels run in the passes ({', '.join(backward[:3])}): training steps"
        if in_pass is None:
            self.ev("kind", "kernel-names", "medium", detail + "; no optimizer kernel known by name")
            return True, None
        measured = [r for r in range(len(req_first)) if not warm[r]]
        size = {r: int(req_last[r] - req_first[r] + 1) for r in measured}
        full = list(measured)
        for end in (-1, 0):  # a capture that starts or stops inside an optimizer step: a shorter first or last one
            if len(full) > 2 and size[full[end]] < max(size.values()):
                full.pop(end)
        sizes = {size[r] for r in full}
        per_request = [int(in_pass[req_first[r] : req_last[r] + 1].sum()) for r in full]
        detail += f"; optimizer kernels {', '.join(names[:2])}"
        if len(full) >= 2 and len(sizes) == 1 and min(sizes) >= 2 and all(n == 1 for n in per_request):
            k = sizes.pop()
            self.ev(
                "kind",
                "kernel-names",
                "medium",
                f"{detail} run in one of every {k} passes, once per request: gradient accumulation, a request is one "
                f"optimizer step of {k} micro-batches",
            )
            return True, k
        self.ev("kind", "kernel-names", "medium", f"{detail} run in {int(in_pass.sum())} of {len(in_pass)} passes")
        return True, None

    def warmup_passes(self, ps: PassStats, req_first: np.ndarray, req_last: np.ndarray) -> np.ndarray:
        """Request boundaries after warm-up passes (for a run of iterations that is one request): a request whose
        first passes load modules (lazy loading, JIT), run autotuning kernels or take ``SLOW_WARMUP_FACTOR`` times
        the host time of a typical pass (the median of the others), and whose last two passes or more do none of
        that, starts with warm-up passes: they become a request of their own (a model warmed up in the same
        loop that measures it, no pause or sync between). Returns a boundary flag per pair of consecutive passes,
        as ``cut``."""
        p = ps.first.size
        extra = np.zeros(max(p - 1, 0), dtype=bool)
        loads = self.sig.module_loads
        tune = self.autotune_positions()
        hot = np.zeros(p, dtype=bool)
        self.slow_passes = np.zeros(p, dtype=bool)
        if loads.size:
            hot |= count_inside(loads, ps.t_start, ps.t_end) > 0
        if tune.size:
            hot |= count_inside(tune, ps.first, ps.last - 1) > 0
        span = (ps.t_end - ps.t_start).astype(np.float64)
        for a, b in zip(req_first.tolist(), req_last.tolist(), strict=True):
            # leading passes far slower on the host than the rest (a JIT dispatch cache or an allocator warming up)
            typical = float(np.median(span[a + 1 : b + 1])) if b - a >= 3 else 0.0
            j = a
            while typical > 0 and j < b and span[j] > SLOW_WARMUP_FACTOR * typical:
                self.slow_passes[j] = not hot[j]  # (a pass that loads modules is warm-up for that already)
                hot[j] = True
                j += 1
            if not hot[a]:
                continue
            j = a + int(np.nonzero(hot[a : b + 1])[0][-1])
            if b - j >= 2:
                extra[j] = True
                self.ev(
                    "warm-up",
                    "module-loads",
                    "high",
                    f"the first {j - a + 1} pass(es) of a request load modules or autotune, the {b - j} after them "
                    "do not: warm-up passes"
                    if not self.slow_passes[a : j + 1].any()
                    else f"the first {j - a + 1} pass(es) of a request load modules, autotune or take over "
                    f"{SLOW_WARMUP_FACTOR}x the host time of a typical pass, the {b - j} after them do not: "
                    "warm-up passes",
                )
        return extra

    def warmup(
        self,
        ps: PassStats,
        req_first: np.ndarray,
        req_last: np.ndarray,
        step_kind: np.ndarray,
        nv_requests: bool,
    ) -> tuple[list[bool], list[str]]:
        nreq = req_first.size
        warm = [False] * nreq
        why = [""] * nreq
        if nv_requests and self.nv_requests_inside is not None:
            for r in range(nreq):
                if not self.nv_requests_inside[req_first[r] : req_last[r] + 1].any():
                    warm[r] = True
                    why[r] = "outside the NVTX request ranges"
            if any(warm):
                self.ev("warm-up", "nvtx", "high", f"{sum(warm)} request(s) outside the NVTX request ranges")
        loads = self.sig.module_loads
        tune_pos = self.autotune_positions()
        t_req = (ps.t_start[req_first], ps.t_end[req_last])
        n_loads = count_inside(loads, *t_req) if loads.size and nreq else np.zeros(nreq, dtype=np.int64)
        # modules loaded in the last request too belong to every request (a library that loads or compiles per
        # call): a request is warm-up for its loads only when it loads more than the last one
        every_call = int(n_loads[-1]) if nreq >= 2 else 0
        if every_call:
            self.notes.append(
                f"the last request loads {every_call} module(s) too: loads up to that many are no warm-up"
            )
        own_shape = self._own_shape_loads(ps, req_first, req_last, np.where(n_loads > every_call, n_loads, 0))
        for r in range(nreq):
            a, b = int(req_first[r]), int(req_last[r])
            nl = int(n_loads[r]) if int(n_loads[r]) > every_call and r not in own_shape else 0
            nt = (
                int(count_inside(tune_pos, np.array([ps.first[a]]), np.array([ps.last[b] - 1]))[0])
                if tune_pos.size
                else 0
            )
            parts = []
            if nl:
                parts.append(f"{nl} module load(s) inside (lazy loading or JIT)")
            if nt:
                parts.append(f"{nt} autotuning kernel(s) inside")
            if not parts and self.slow_passes is not None and bool(self.slow_passes[a : b + 1].all()):
                parts.append(f"over {SLOW_WARMUP_FACTOR}x the host time of the passes after it")
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
        if nreq >= 2 and not warm[0]:
            # a piece of a pass before the first whole one (the end of a setup's last pass) is no request
            typical = float(np.median(ps.kernels))
            if float(ps.kernels[req_first[0] : req_last[0] + 1].sum()) < FRAGMENT_SHARE * typical:
                warm[0] = True
                why[0] = "a fragment: fewer kernels than half a pass, before the first whole pass"
                self.ev("warm-up", "kernel-mix", "medium", f"request 0: {why[0]}")
        if nreq and all(warm):
            warm[-1] = False
            self.notes.append(f"every request looked like warm-up; request {nreq - 1} is kept as measured")
            why[-1] = ""
        return warm, why

    def _own_shape_loads(
        self, ps: PassStats, req_first: np.ndarray, req_last: np.ndarray, n_loads: np.ndarray
    ) -> set[int]:
        """The requests after the first whose module loads (``n_loads``: those that would make them warm-up) are for
        kernels of their own shape, not warm-up: the kernel names they run first (lazy loading loads a kernel's
        module at its first launch) are mostly run by fewer than half the requests after it (a longer prompt's
        attention or GEMM variant). A request that first runs kernels the requests after it keep running is warming
        up for them. Each is said in a note."""
        nreq = req_first.size
        if nreq < 3 or not n_loads[1:-1].any():
            return set()
        seq = self.seq
        first_at = first_positions(seq.code, len(seq.names))
        names = [sorted_unique(seq.code[int(ps.first[req_first[q]]) : int(ps.last[req_last[q]])]) for q in range(nreq)]
        # every (name, request) that runs it, as one sorted key: the requests after r that run a name are counted
        # by two binary searches (no loop over the later requests for each request that loads)
        keys = np.sort(np.concatenate([c.astype(np.int64) * nreq + q for q, c in enumerate(names)]))
        out: set[int] = set()
        for r in range(1, nreq - 1):
            if not n_loads[r]:
                continue
            a, b = int(ps.first[req_first[r]]), int(ps.last[req_last[r]])
            codes = names[r]
            new = codes[(first_at[codes] >= a) & (first_at[codes] < b)].astype(np.int64)
            if not new.size:
                continue  # loads for no kernel of its own: a library's, warm-up as before
            # a name the later requests keep running (at least half of them) is one the request warmed up
            runs = np.searchsorted(keys, new * nreq + nreq) - np.searchsorted(keys, new * nreq + r + 1)
            later = int((2 * runs >= nreq - 1 - r).sum())
            if 2 * later < new.size:
                out.add(r)
                self.notes.append(
                    f"request {r} loads {int(n_loads[r])} module(s) for kernels it runs first, {new.size - later} "
                    f"of {new.size} of them run by fewer than half the requests after it (its own shapes): no warm-up"
                )
        return out

    def loading_phases(self, t0: int, first_start: int | None) -> list[Phase]:
        """Loading, compilation and autotuning before the first step (or in the whole trace when none)."""
        seq = self.seq
        out: list[Phase] = []
        end = first_start if first_start is not None else int(seq.t.max()) + 1
        found = []
        api0 = scalar_int(self.api["start"].min()) if self.api.height else t0
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
        init = [c for c in sorted_unique(head).tolist() if INIT_KERNELS.search(seq.names[c])]
        n_init = int(np.isin(head, init).sum()) if init else 0
        if n_init >= 4:  # one random prompt is not weight initialisation
            found.append(
                f"{n_init} initialisation kernels (" + ", ".join(sorted({seq.shorts[c] for c in init})[:3]) + ")"
            )
        pos = self.autotune_positions()
        if pos.size:
            a, b = int(seq.t[pos[0]]), int(seq.end[pos[-1]])
            first = seq.shorts[int(seq.code[pos].min())]  # the first autotuning kernel's name in name order
            out.append(Phase("autotuning", a, b, f"{pos.size} autotuning kernels ({first}, ...)"))
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
        if is_empty_frame(nv):
            return None
        assert nv is not None
        c = nv.filter(
            pl.col("end").is_not_null()
            & pl.col("text").is_not_null()
            & pl.col("text").str.contains(r"^(XlaCompile|XlaModule|XlaPass|XlaOptimize|XlaEmit|Xla\w*Compil)")
        )
        if c.is_empty():
            return None
        return scalar_int(c["start"].min()), scalar_int(c["end"].max()), c.height
