"""Finding the forward passes: the level that repeats once per pass, and the NVTX and graph-launch fallbacks."""

from __future__ import annotations

import numpy as np

from ..distribution import row_chunks
from ..phases import GRAPH_LAUNCH_API
from .nvtx import count_inside
from .patterns import (
    AUTOTUNE_KERNELS,
    CNN_CONV_SHARE,
    CNN_UNIT_KERNELS,
    GAP_FACTOR,
    GROUP_EXTRA_SHARE,
    INIT_KERNELS,
    MIN_REQUEST_GAP_NS,
    MIN_SEGMENTS,
    PART_NAMES,
    REQUEST_NAMES,
    STEP_NAMES,
)
from .sequence import Cluster, Level, regularity, sorted_unique
from .signals import cut_level, is_anchor
from .state import BuilderState


class PassFinding(BuilderState):
    def forward_like(self, cl: Cluster) -> bool:
        """A forward pass has layers inside, sampling/embedding kernels, one graph launch, convolutions, or
        autograd's backward kernels after it (a training step); a loop of a few kernels (HPC time steps, a test
        repeating one kernel) is not one."""
        if self.autotuning(cl):
            return False
        return cl.finer or bool(cl.anchors) or cl.graphs or cl.whole or cl.backward or self.convolutional(cl)

    def autotuning(self, cl: Cluster) -> bool:
        """The repeating unit runs autotuning kernels (XLA's redzone checks, delays and comparisons between
        candidate kernels): a loop over candidates, not a forward pass."""
        seq = self.seq
        pos = seq.positions(cut_level(cl).marker)
        tune = self.autotune_positions()
        if pos.size < 2 or not tune.size:
            return False
        # units (from one marker to the next) with autotuning kernels inside: most of them in a loop over candidates
        hit = count_inside(tune, pos[:-1], pos[1:] - 1) > 0
        tuning = sorted({seq.shorts[c] for c in sorted_unique(seq.code[tune]).tolist()})
        if float(hit.mean()) >= 0.5:
            self.notes.append(
                f"a loop of {round(cl.period)} kernel(s) repeats {cl.count} times with autotuning kernels "
                f"({', '.join(tuning[:2])}): candidates tried, not a forward pass"
            )
            return True
        return False

    def convolutional(self, cl: Cluster) -> bool:
        """The repeating unit is a CNN's forward pass: at least ``CNN_UNIT_KERNELS`` kernels, convolutions at least
        ``CNN_CONV_SHARE`` of their GPU time. A detector's pass (backbone, proposals, NMS, ROI heads) has no
        regular finer level and no once-per-pass sampling kernel, yet it is a forward pass; an HPC time step does
        not run cuDNN's convolutions."""
        if cl.period < CNN_UNIT_KERNELS:
            return False
        pos = self.seq.positions(cut_level(cl).marker)
        share, _ = self.convolution_share(int(pos[0]), int(pos[-1]))
        if share < CNN_CONV_SHARE:
            return False
        self.ev(
            "passes",
            "kernel-mix",
            "medium",
            f"convolutions take {share:.0%} of the GPU time of a {round(cl.period)}-kernel repeating unit: a CNN's "
            "forward pass",
        )
        return True

    def passes_inside(self, clusters: list[Cluster]) -> Cluster | None:
        """The forward-pass level inside the best level ``clusters[0]`` when that level is a group of passes (a
        request) rather than one pass: its unit is k >= 2 repeats of a finer level plus a few extra kernels, and
        the extra kernels are a small part of one finer unit in both kernels and GPU time (at most
        ``GROUP_EXTRA_SHARE``). A request of passes adds little to its passes (an input conversion, an argmax over
        the outputs); a pass adds to its layers an embedding, a final norm, an LM head and sampling, a sizeable part
        of one layer (the LM head alone is a large share of a layer's GPU time), so layers never pass. On success
        the finer cluster is marked ``whole``, gets the reason and the evidence, and is returned."""
        outer = clusters[0]
        seq = self.seq
        ocut = cut_level(outer)
        pos = seq.positions(ocut.marker)
        nper, nc = pos.size - 1, len(seq.names)
        if nper < 2 or nper * nc > 20_000_000:
            return None
        inners = [c for c in clusters if c is not outer and c.period <= outer.period / 2 and c.count >= 2 * ocut.count]
        if not inners:
            return None
        # each short name's count per outer unit (between consecutive markers; the lower median over the units) and
        # its mean GPU time: by short name, as variants of one kernel may take turns from pass to pass (two
        # instantiations of an elementwise kernel, each in every other denoising step)
        shorts = sorted(set(seq.shorts))
        index = {x: i for i, x in enumerate(shorts)}
        short_of = np.array([index[x] for x in seq.shorts], dtype=np.int64)
        nc = len(shorts)
        per = np.zeros(nper * nc, dtype=np.int64)
        counts = np.zeros(nc, dtype=np.int64)
        total = np.zeros(nc)  # (whole nanoseconds in float64: exact in any order)
        for at in row_chunks(len(seq)):  # a chunk of kernels at a time: no array of every kernel's unit
            code = short_of[seq.code[at]]
            unit = np.searchsorted(pos, np.arange(at.start, at.stop), side="right") - 1
            ok = (unit >= 0) & (unit < nper)
            if ok.any():  # the chunk's units are consecutive: counted into their rows only
                u0, u1 = int(unit[ok][0]), int(unit[ok][-1]) + 1
                cells = (unit[ok] - u0) * nc + code[ok]
                per[u0 * nc : u1 * nc] += np.bincount(cells, minlength=(u1 - u0) * nc)
            counts += np.bincount(code, minlength=nc)
            total += np.bincount(code, weights=seq.dur[at].astype(np.float64), minlength=nc)
        m = np.sort(per.reshape(nper, nc), axis=0)[(nper - 1) // 2]
        dur = total / np.maximum(counts, 1)
        for inner in sorted(inners, key=lambda c: (-c.period, c.count)):
            k = round(outer.period / inner.period)
            icut = cut_level(inner)
            if k < 2 or abs(icut.count - k * ocut.count) > k + 0.05 * icut.count:
                continue
            extra = m % k  # what does not divide evenly among the k finer units
            body = m - extra
            ek, bk = float(extra.sum()), float(body.sum()) / k
            et, bt = float((extra * dur).sum()), float((body * dur).sum()) / k
            if not (1 <= ek <= GROUP_EXTRA_SHARE * bk and et <= GROUP_EXTRA_SHARE * bt and bt > 0):
                continue
            names = sorted({shorts[c] for c in np.nonzero(extra)[0].tolist()})
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

    def anchor_level(self, cl: Cluster) -> Level | None:
        """When the most regular level has no sampling/embedding kernels but such kernels run a few times each
        around many repeats of it (a prefill-only run: embedding, the layers, the LM head and argmax), the level of
        those kernels is the forward pass and the repeating unit is a layer."""
        if cl.anchors or cl.graphs or cl.round_trip_ok:
            return None
        seq = self.seq
        unit = seq.positions(cut_level(cl).marker)
        by: dict[int, list[int]] = {}
        for c, n in enumerate(seq.counts.tolist()):
            if 1 <= n <= cl.count // 2 and is_anchor(seq.names[c], seq.shorts[c], self.fams[c]):
                by.setdefault(int(n), []).append(c)
        best = [(len(v), n) for n, v in by.items() if len(v) >= 2 and (n < MIN_SEGMENTS or n >= cl.count // 64)]
        if not best:
            return None
        _, n = max(best)
        codes = sorted(by[n])
        pos = seq.positions(codes[0])
        med, reg, cov, width, mr = regularity(pos) if n > 1 else (float(len(seq)), 1.0, 1.0, 0.0, 1.0)
        if n >= MIN_SEGMENTS and reg * cov < 0.6:
            return None
        span = np.concatenate([seq.positions(c) for c in codes])
        held = count_inside(unit, np.array([span.min()]), np.array([span.max()]))[0]
        if held < 0.5 * unit.size:  # the sampling/embedding kernels must hold the repeating unit
            return None
        return Level(n, codes, codes[0], med, reg, cov, width / max(len(seq), 1), mr)

    # -- fallbacks
    def nvtx_passes(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Steps from NVTX step ranges when the kernel sequence has no period: the step-named group with the
        most ranges (one nesting level)."""
        steps = [g for g in self.groups if STEP_NAMES.search(g.name) and not REQUEST_NAMES.search(g.name)]
        steps = [g for g in steps if g.start.size >= 1 and not PART_NAMES.search(g.name)]
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

    def graph_passes(self) -> tuple[np.ndarray, np.ndarray] | None:
        graphs = self.api_index.calls(GRAPH_LAUNCH_API)
        if graphs.height < 2:
            return None
        t = np.sort(graphs["start"].to_numpy())
        first = np.searchsorted(self.seq.t, t, side="left")
        last = np.concatenate([first[1:], [len(self.seq)]])
        keep = last > first
        self.ev("passes", "graph-launches", "medium", f"{graphs.height} graph launches, one step each")
        return first[keep], last[keep]

    def add_leading_prefills(self, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
            anchor = any(is_anchor(seq.names[c], seq.shorts[c], self.fams[c]) for c in sorted_unique(codes).tolist())
            init = all(INIT_KERNELS.search(seq.names[c]) or AUTOTUNE_KERNELS.search(seq.names[c]) for c in codes[:64])
            loads = self.sig.module_loads
            compiling = loads.size > 0 and count_inside(loads, seq.t[s : s + 1], seq.t[b - 1 : b])[0] > 0
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
