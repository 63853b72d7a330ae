"""Passes from a level: their start and end kernels, per-pass statistics and the once-per-pass marker."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..distribution import row_chunks, span_reduce, span_sums
from .patterns import WIDE_FACTOR
from .sequence import Level, Seq, sorted_unique

SEEN_TABLE_MAX = 1 << 25
"""The most cells (passes x kernel names, a byte each) of the table ``_rare_names`` marks each pass's names in;
past it the (pass, name) pairs are sorted instead (on two million kernels and 16,380 passes the count took
0.07-0.10 s with the sort, 0.04 s with the table)."""


@dataclass(frozen=True)
class _Passes:
    first: np.ndarray  # kernel index of the first kernel of each pass
    last: np.ndarray  # kernel index after the last kernel of each pass (exclusive)
    cycle_ok: float  # share of passes whose once-per-pass kernels come in the same order


def passes_from_level(seq: Seq, lv: Level) -> _Passes:
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
    bounds = _realigned(seq, bounds, firsts, lasts)
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


def _realigned(seq: Seq, bounds: np.ndarray, firsts: np.ndarray, lasts: np.ndarray) -> np.ndarray:
    """Boundaries between passes moved to the passes' usual first kernel where the largest launch gap put them
    elsewhere. Each boundary is first the largest gap between one pass's last once-per-pass kernel and the next
    one's first; when most boundaries lie the same number of kernels before the next once-per-pass kernel, at a
    kernel of one name (the pass's first kernel), a boundary at a rare offset (one that at most a tenth of the
    boundaries have, or no other) is moved to the usual offset when the kernel there has that name and the two
    passes beside it come nearer the median pass length in sum (their two distances from it added; left to right:
    a boundary moved is the next one's neighbour). A host stall inside a pass (a garbage collection, a page fault,
    or one that recurs in a few passes: a GRU language model's 7 of 99) is then no pass boundary, and a kernel
    launched just before a pass's first kernel stays with it."""
    if bounds.size < 4:
        return bounds
    off = firsts[1:] - bounds
    vals, counts = np.unique(off, return_counts=True)
    if 2 * int(counts.max()) <= off.size:
        return bounds  # no usual offset
    usual = int(vals[int(np.argmax(counts))])
    codes, at = np.unique(seq.code[bounds[off == usual]], return_counts=True)
    if 2 * int(at.max()) <= int(at.sum()):
        return bounds  # the usual boundaries start with kernels of several names
    head = int(codes[int(np.argmax(at))])
    cand = firsts[1:] - usual
    # a boundary at a rare offset (an offset that recurs often is a kind of boundary: a request's start, or a pass
    # of two phases whose largest gap lies now here, now there)
    rare = counts[np.searchsorted(vals, off)] <= max(1, off.size // 10)
    move = rare & (cand > lasts[:-1])  # (cand <= firsts[1:]: off >= 0)
    move &= seq.code[np.minimum(cand, len(seq) - 1)] == head
    if not move.any():
        return bounds
    out = bounds.copy()
    edges = np.concatenate([[max(0, int(firsts[0]))], out, [int(lasts[-1]) + 1]])
    med = float(np.median(np.diff(edges)))
    for i in np.nonzero(move)[0].tolist():  # left to right: a boundary moved is the next one's neighbour
        before, after, b, c = int(edges[i]), int(edges[i + 2]), int(edges[i + 1]), int(cand[i])
        if abs(c - before - med) + abs(after - c - med) < abs(b - before - med) + abs(after - b - med):
            edges[i + 1] = out[i] = c
    return out


@dataclass(frozen=True)
class PassStats:
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
    wide_share: np.ndarray  # share of its kernels launched over far more thread blocks than is usual for their name
    closing_share: np.ndarray  # share of its kernels of rare names after its last once-per-pass kernel

    def own_rare_share(self) -> np.ndarray:
        """``rare_share`` without a request's closing work where the once-per-pass kernels end a pass (the passes
        run few kernels after their last once-per-pass kernel, the median at most a quarter of a pass): the
        kernels of rare names that a pass runs after its sampling kernel (a generate loop's final compaction of
        its finished sequences) make the request's last pass no prompt's pass."""
        if not self.first.size:
            return self.rare_share
        tail = self.last - self.mark_last - 1
        if float(np.median(tail)) > 0.25 * float(np.median(self.kernels)):
            return self.rare_share
        return self.rare_share - self.closing_share


def pass_stats(seq: Seq, first: np.ndarray, last: np.ndarray, markers: np.ndarray | None = None) -> PassStats:
    """Measures of the passes [first, last); ``markers`` are the sorted positions of once-per-pass kernels."""
    idx = np.empty(2 * first.size, dtype=np.int64)
    idx[0::2] = first
    idx[1::2] = last
    gs = span_reduce(np.minimum, seq.start, idx)
    ge = span_reduce(np.maximum, seq.end, idx)
    te = span_reduce(np.maximum, seq.t_end, idx)
    kernels = last - first
    # each measure in a function of its own: the per-kernel arrays it needs (millions of rows each) are freed
    # before the next is computed
    mark_first, mark_last = _marker_spans(first, last, markers)
    rare_k, rare_n, rare_after = _rare_names(seq, first, last, mark_last)
    return PassStats(
        first,
        last,
        seq.t[first],
        te,
        gs,
        ge,
        span_sums(seq.dur, first, last),
        kernels,
        rare_k / np.maximum(kernels, 1),
        rare_n,
        span_sums(seq.graph, first, last) / np.maximum(kernels, 1),
        seq.t[(first + last - 1) // 2],
        mark_first,
        mark_last,
        span_sums(wide_kernels(seq), first, last) / np.maximum(kernels, 1),
        rare_after / np.maximum(kernels, 1),
    )


def _rare_names(
    seq: Seq, first: np.ndarray, last: np.ndarray, mark_last: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pass [first, last): how many of its kernels, and how many distinct names, are of names that run in few
    passes (prefill-only kernels, autotuning, lazy initialisation), and how many of those kernels run after its
    last once-per-pass kernel (at ``mark_last``). The passes' kernels are visited a group of passes at a time
    (about ``RARE_CHUNK`` kernels): no array of every kernel's position, pass and name."""
    n, ncodes = len(seq), len(seq.names)
    groups = _pass_groups(first, last)
    kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def positions(g: int) -> tuple[np.ndarray, np.ndarray]:
        if g in kept:
            return kept[g]
        a, b = groups[g]
        own = last[a:b]
        if b < first.size:  # a kernel from the next group's first start on is that group's
            own = own.copy()
            own[-1] = min(int(own[-1]), int(first[b]))
        pos, pid = _pass_positions(n, first[a:b], own)
        if len(groups) == 1:
            kept[g] = (pos, pid + a)
        return pos, pid + a

    table = first.size * ncodes <= SEEN_TABLE_MAX
    seen = np.zeros((first.size, ncodes), dtype=bool) if table else None  # which names each pass runs
    keys = []  # else the distinct (pass, name) pairs, by a sort
    for g in range(len(groups)):
        pos, pid = positions(g)
        code = seq.code[pos]
        if seen is not None:
            seen[pid, code] = True
        else:
            keys.append(sorted_unique(pid.astype(np.int64) * ncodes + code))  # (the groups' passes do not mix)
    key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    passes_per_code = seen.sum(axis=0) if seen is not None else np.bincount(key % ncodes, minlength=ncodes)
    rare_code = passes_per_code < max(2.0, 0.25 * first.size)
    if seen is not None:
        rare_n = seen[:, rare_code].sum(axis=1).astype(np.float64)
    else:
        rare_n = np.bincount(key // ncodes, weights=rare_code[key % ncodes].astype(np.float64), minlength=first.size)
    rare_k, rare_after = np.zeros(first.size), np.zeros(first.size)
    for g, (a, b) in enumerate(groups):
        pos, pid = positions(g)
        rare = rare_code[seq.code[pos]]
        rare_k[a:b] = np.bincount(pid - a, weights=rare.astype(np.float64), minlength=b - a)
        after = rare & (pos > mark_last[pid])
        rare_after[a:b] = np.bincount(pid - a, weights=after.astype(np.float64), minlength=b - a)
    return rare_k, rare_n, rare_after


RARE_CHUNK = 1 << 22  # kernels of passes visited at a time by ``_rare_names``


def _pass_groups(first: np.ndarray, last: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive passes [a, b) of about ``RARE_CHUNK`` kernels together (a longer pass is a group of its own);
    none when there is no pass."""
    ends = np.cumsum(np.maximum(last - first, 0))
    groups = []
    a = 0
    while a < first.size:
        b = max(a + 1, int(np.searchsorted(ends, (int(ends[a - 1]) if a else 0) + RARE_CHUNK, side="right")))
        groups.append((a, b))
        a = b
    return groups


def _pass_positions(n: int, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions (of a sequence of ``n`` kernels) inside the passes [first, last), and each one's pass: the last
    pass starting at or before it (``first`` is sorted). Passes that do not overlap (the usual case: each ends
    where or before the next starts) are laid out directly, in two passes over their kernels; others by a running
    count of pass starts over the whole sequence."""
    lengths = last - first
    if first.size and first[0] >= 0 and last[-1] <= n and (lengths >= 0).all() and (first[1:] >= last[:-1]).all():
        pid = np.repeat(np.arange(first.size, dtype=np.int64), lengths)
        if (first[1:] == last[:-1]).all():  # one stretch of kernels
            return np.arange(first[0], last[-1], dtype=np.int64), pid
        return np.arange(pid.size, dtype=np.int64) + np.repeat(first - (np.cumsum(lengths) - lengths), lengths), pid
    starts = np.bincount(first[first < n], minlength=n) if n else np.zeros(0, dtype=np.int64)
    pid = np.cumsum(starts) - 1
    inside = (pid >= 0) & (np.arange(n) < last[np.maximum(pid, 0)])
    pos = np.nonzero(inside)[0]
    del inside
    return pos, pid[pos]


def wide_kernels(seq: Seq) -> np.ndarray:
    """Per kernel of the sequence: launched over more than ``WIDE_FACTOR`` times the thread blocks its name usually
    gets (the median of its launches). A prompt's pass runs the same kernels as a token's over the prompt's rows;
    one kernel given a bigger grid now and then is not that."""
    out = np.empty(len(seq), dtype=bool)
    for at in row_chunks(len(seq)):  # a chunk at a time: no float array of millions of medians
        typical = seq.typical_blocks[seq.code[at]]
        out[at] = (typical > 0) & (seq.blocks[at] > WIDE_FACTOR * typical)
    return out


def pass_growth(
    seq: Seq, first: np.ndarray, last: np.ndarray, which: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pass [first, last), against the pass before it, kernel by kernel at the same position in both (counted
    from their first kernels, or from their last ones where that lines up more of them: a prompt's pass may run a
    few kernels more at its start): the share of positions where both run the same kernel name (``matched``), and
    of those, the share launched over more thread blocks than in the pass before (``grew``) and over fewer
    (``fell``), and by how much the grown ones grew (``step``: the geometric mean of their thread blocks over those
    of the pass before). NaN in all four for the first pass and for a pass with no kernel name in common with the
    one before (``step`` also where none grew). ``which``: only these passes (sorted indices; the first pass and
    the others NaN), else every pass. Two passes over the kernels compared."""
    p = first.size
    nan = np.full(p, np.nan)
    if p < 2 or not seq.blocks.any():
        return nan, nan.copy(), nan.copy(), nan.copy()
    kernels = last - first
    ids = np.arange(1, p) if which is None else which[which > 0]
    m = np.zeros(p, dtype=np.int64)  # positions compared, per pass
    m[ids] = np.minimum(kernels[ids], kernels[ids - 1]).clip(min=0)
    total = int(m.sum())
    if not total:
        return nan, nan.copy(), nan.copy(), nan.copy()
    pair = np.repeat(np.arange(p), m)
    offset = np.arange(total) - np.repeat(np.cumsum(m) - m, m)
    best: tuple[np.ndarray, ...] | None = None
    for here, before in (
        (first[pair] + offset, first[pair - 1] + offset),  # from the first kernels
        (last[pair] - 1 - offset, last[pair - 1] - 1 - offset),  # from the last ones
    ):
        same = seq.code[here] == seq.code[before]
        b_here, b_before = seq.blocks[here], seq.blocks[before]
        up = same & (b_here > b_before) & (b_before > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_step = np.where(up, np.log(np.maximum(b_here, 1) / np.maximum(b_before, 1)), 0.0)
        counts = (
            np.bincount(pair, weights=same, minlength=p),
            np.bincount(pair, weights=same & (b_here > b_before), minlength=p),
            np.bincount(pair, weights=same & (b_here < b_before), minlength=p),
            np.bincount(pair, weights=log_step, minlength=p),
            np.bincount(pair, weights=up, minlength=p),
        )
        if best is None:
            best = counts
        else:
            better = counts[0] > best[0]
            best = tuple(np.where(better, c, b) for c, b in zip(counts, best, strict=True))
    n_same, grew, fell, log_sum, n_up = best  # type: ignore[misc]
    matched = n_same / np.maximum(m, 1)
    seen = n_same > 0
    matched[~seen] = np.nan
    denominator = np.maximum(n_same, 1)
    step = np.where(n_up > 0, np.exp(log_sum / np.maximum(n_up, 1)), np.nan)
    return (
        matched,
        np.where(seen, grew / denominator, np.nan),
        np.where(seen, fell / denominator, np.nan),
        np.where(seen, step, np.nan),
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
