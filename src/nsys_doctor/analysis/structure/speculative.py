"""Speculative decoding: a draft model's passes, then one pass of the target model that verifies them.

A run of speculative decoding (transformers' assisted generation, a draft model or an EAGLE-style head in front of
a serving engine's target model) repeats a *round*: k passes of a small draft model, each proposing one token, then
one pass of the target model over the k proposals. Every pass of either model ends in the same once-per-pass
sampling kernel (an argmax over the logits), so cutting at that kernel finds passes of two sizes; no single period
fits both, and a period finder takes a whole request (or a few passes) for the unit. The two models tell themselves
apart by their layers: a kernel run once or twice per layer (a norm's mean, a residual add) runs a few times in a
draft pass and several times as often in a verify pass, while every pass of one model runs it equally often (a
prompt's pass and a token's pass alike). A step of such a run is one round: its drafts and the verify pass after
them (the tokens a round yields depend on how many drafts the target accepts, which the trace does not show).

``speculative_rounds`` finds the rounds when the passes cut at a sampling kernel (the most frequent one, then the
argmax or multinomial draws) come in two sizes by the count of every-pass kernels (two values in nearly all passes;
at least ``LAYER_KERNELS`` such kernels agree on which pass is which), the larger ones are single passes between
runs of smaller ones (a verify pass after drafts, rarely two verify passes in a row), and a round has few drafts
(the median at most ``SPEC_MAX_DRAFTS``; their number may change from round to round, as transformers' default
schedule changes it), and a verify pass follows its drafts at once: in most rounds the longest GPU idle gap is not
in the verify pass (``_requests_at_big_passes``). An encoder-decoder run (one encoder pass, then the decoder passes
of a request: more than a round has drafts, or, for a short output, as few, but every encoder pass after the idle
gap between requests) and a model whose passes are all of one size never match."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .patterns import MIN_SEGMENTS, PASS_END, SPEC_MAX_DRAFTS, SPEC_MIN_ROUNDS, TOKEN_ANCHORS, UP_DOWN_SAMPLING
from .sequence import Seq
from .signals import is_anchor

ONE_SIZE_SHARE = 0.95  # passes within 10% of the median number of kernels: this share or more is one size
SPLIT_COVER = 0.9  # the two sizes cover at least this share of the passes
SIZE_RATIO = 1.5  # a verify pass runs the layer kernel at least this many times as often as a draft pass
ADJACENT_SHARE = 0.2  # at most this share of verify passes directly follow another
SPEC_ANCHORS_TRIED = 4  # sampling kernels tried as the end of a pass (one per count), the most frequent first
SPLIT_KERNELS = 64  # the most frequent kernels looked at for the split of the passes in two sizes
LAYER_KERNELS = 3  # every-pass kernels that must agree on the split (a norm, an activation, a residual add)
REQUEST_GAP_NS = 1_000_000  # a GPU idle gap of a request boundary here: at least 1 ms, below the 2 ms of
# patterns.MIN_REQUEST_GAP_NS, as the relative tests below decide (BART at batch 8 with its requests back to back
# idles 1.44-1.5 ms before each encoder pass); an engine that schedules for 1 ms or more between its drafts and its
# verify pass, and little after it, is taken for requests (tests/test_speculative.py: a known limit)
REQUEST_GAP_FACTOR = 20  # and this many times the median idle before a pass, and the idle after the big pass


@dataclass(frozen=True)
class Rounds:
    """The rounds of a speculative run: kernel ``first`` to ``last`` (exclusive) of the sequence each, in order."""

    first: np.ndarray
    last: np.ndarray
    markers: np.ndarray  # sequence positions of the sampling kernels that end the verify passes
    anchor: int  # the sampling kernel's code
    layer: int  # the code of the kernel whose count per pass tells the two models apart
    draft_units: int  # that kernel's count in a draft pass
    verify_units: int  # and in a verify pass
    drafts: int  # the typical (median) number of draft passes per round
    fewest: int  # the fewest and the most draft passes of a round (a request's first round: its prompt too)
    most: int
    passes: int  # all passes (drafts and verify passes) cut at the sampling kernel
    draft_share: float  # the median round's share of its GPU span before its verify pass (the drafts)

    def why(self, seq: Seq) -> str:
        return (
            f"speculative decoding: {self.first.size} rounds of {self.drafts} draft pass(es) (median; "
            f"{self.fewest} to {self.most}) then one verify pass "
            f"({self.passes} passes cut at {seq.shorts[self.anchor]}; {seq.shorts[self.layer]} runs "
            f"{self.draft_units} time(s) in a draft pass and {self.verify_units} in a verify pass: two models); a "
            f"step is one round, its drafts {self.draft_share:.0%} of it (the median, from its first kernel's start to "
            "its last one's end on the GPU)"
        )


def _sampling(name: str, short: str, family: str) -> bool:
    """A once-per-pass kernel that ends a pass: sampling from the logits (an argmax, top-k, a multinomial draw),
    not an embedding (a pass's first kernel) and not image resampling."""
    if not is_anchor(name, short, family) or UP_DOWN_SAMPLING.search(name):
        return False
    if family == "sampling":
        return True
    named = TOKEN_ANCHORS.search(short) or TOKEN_ANCHORS.search(name)
    return bool(named) and "embedding" not in name.lower() and "embedding" not in short.lower()


def speculative_rounds(seq: Seq, fams: list[str]) -> Rounds | None:
    """The draft-and-verify rounds of ``seq``, or None when it is no speculative run (see the module docstring)."""
    nc = len(seq.names)
    cands = [
        c for c in range(nc) if seq.counts[c] >= SPEC_MIN_ROUNDS * 2 and _sampling(seq.names[c], seq.shorts[c], fams[c])
    ]
    if not cands:
        return None
    # the most frequent sampling kernel, then the argmax or multinomial draws, one per count: those end every pass,
    # while the kernels of a top-k may run several times in one (a radix select over the vocabulary in blocks), and
    # other top-k kernels (a beam search's, a detector's sort) cut no pass of a speculative run
    ordered = sorted(cands, key=lambda c: (-int(seq.counts[c]), c))
    by_count: dict[int, int] = {int(seq.counts[ordered[0]]): ordered[0]}
    for c in ordered:
        if PASS_END.search(seq.names[c]):
            by_count.setdefault(int(seq.counts[c]), c)
    for anchor in list(by_count.values())[:SPEC_ANCHORS_TRIED]:
        found = _rounds_at(seq, anchor)
        if found is not None:
            return found
    return None


def _rounds_at(seq: Seq, anchor: int) -> Rounds | None:
    """The rounds of ``seq`` with its passes cut at ``anchor``, or None."""
    n, nc = len(seq), len(seq.names)
    pos = seq.positions(anchor)
    spans = pos.size - 1  # pass i: the kernels after sampling kernel i, up to and with sampling kernel i + 1
    if spans < MIN_SEGMENTS or spans * nc > 20_000_000:
        return None
    sizes = np.diff(pos)
    typical = float(np.median(sizes))
    if float((np.abs(sizes - typical) <= 0.1 * typical).mean()) >= ONE_SIZE_SHARE:
        return None  # the passes are of one size (a prompt's pass runs as many kernels as a token's): one model
    # each kernel's pass: how many sampling kernels come before it, less one (O(n), no search)
    marks = np.zeros(n, dtype=np.int32)
    marks[pos] = 1
    span = np.cumsum(marks, dtype=np.int32) - marks - 1
    del marks
    inside = (span >= 0) & (span < spans)
    per = np.bincount(span[inside].astype(np.int64) * nc + seq.code[inside], minlength=spans * nc).reshape(spans, nc)
    present = (per > 0).mean(axis=0)
    # the split of the passes in two sizes that the most every-pass kernels agree with (a deeper model runs each of
    # its per-layer kernels more often; a top-k's kernels count the positions sampled, which a verify pass of one
    # token has as few of as a draft), among the kernels whose counts per pass take two values
    best: tuple[int, int, int, int, np.ndarray] | None = None
    for c in np.argsort(-seq.counts, kind="stable")[:SPLIT_KERNELS].tolist():
        if c == anchor or present[c] < 0.95:
            continue
        values, counts = np.unique(per[:, c], return_counts=True)
        if values.size < 2:
            continue
        top = np.argsort(-counts, kind="stable")[:2]
        lo, hi = sorted(int(v) for v in values[top])
        if lo < 1 or hi < SIZE_RATIO * lo or counts[top].sum() < SPLIT_COVER * spans:
            continue
        verify = per[:, c] >= (lo + hi) / 2
        agree = _layer_kernels(per, present, verify)
        if best is None or agree > best[0]:
            best = (agree, c, lo, hi, verify)
    if best is None or best[0] < LAYER_KERNELS:
        return None  # no split, or one kernel run more often now and then (a periodic copy): not a deeper model
    _, c, lo, hi, verify = best
    found = _rounds(verify, pos)
    if found is None:
        return None  # the passes split in two sizes, but not as drafts and a verify pass
    first, last, markers, drafts, verify_first = found
    if _requests_at_big_passes(seq, pos, markers, verify_first, first):
        return None  # each big pass starts a request (an encoder pass, its decoder passes after it): no rounds
    length = (seq.end[last - 1] - seq.start[first]).astype(np.float64)  # each round's GPU span
    share = float(np.median((seq.start[verify_first] - seq.start[first]) / np.maximum(length, 1.0)))
    return Rounds(
        first,
        last,
        markers,
        anchor,
        c,
        lo,
        hi,
        int(np.median(drafts)),
        int(drafts.min()),
        int(drafts.max()),
        spans,
        min(max(share, 0.0), 1.0),
    )


def _requests_at_big_passes(
    seq: Seq, pos: np.ndarray, markers: np.ndarray, verify_first: np.ndarray, first: np.ndarray
) -> bool:
    """Whether most rounds hold their longest GPU idle gap in the verify pass (from the end of the pass before it
    to its sampling kernel), and that gap is of a request's size: ``REQUEST_GAP_NS`` and ``REQUEST_GAP_FACTOR``
    times both the median idle before a pass and the idle right after the big pass's sampling kernel. A target
    model verifies the drafts just made; a big pass that keeps coming after the run's longest idle, and is followed
    at once by the next pass, starts a request: an encoder pass, whose decoder passes follow it (a short output,
    few enough of them to look like drafts). A serving engine that schedules between steps (before its verify pass)
    idles less than that, and after its verify pass too; an encoder-decoder whose requests follow each other within
    ``REQUEST_GAP_NS`` is not told apart (its rounds stand)."""
    gaps = np.zeros(len(seq), dtype=np.int64)  # idle on the GPU before each kernel
    gaps[1:] = np.maximum(seq.start[1:] - seq.end[:-1], 0)
    before_pass = gaps[pos[:-1] + 1]
    floor = max(REQUEST_GAP_NS, REQUEST_GAP_FACTOR * float(np.median(before_pass)) if before_pass.size else 0.0)
    # the verify pass: its first kernel v (after the sampling kernel that ends the last draft) to its sampling kernel
    # m, and the idle before each of them; the drafts: the round's kernels before v, from the idle before its first
    big = 0
    for f, v, m in zip(first.tolist(), verify_first.tolist(), markers.tolist(), strict=True):
        in_verify = int(gaps[v : m + 1].max())
        in_drafts = int(gaps[f:v].max()) if v > f else 0
        after = int(gaps[m + 1]) if m + 1 < gaps.size else 0
        big += in_verify >= floor and in_verify > in_drafts and in_verify >= REQUEST_GAP_FACTOR * after
    return big > first.size / 2


def _layer_kernels(per: np.ndarray, present: np.ndarray, verify: np.ndarray) -> int:
    """How many every-pass kernels split the passes as ``verify`` does: run at least ``SIZE_RATIO`` times as often
    (the median) in the larger passes as in the smaller ones, and above the midpoint in the larger passes alone
    (all but a twentieth of the passes). A deeper model runs each of its per-layer kernels more often; a periodic
    extra copy or allocation changes one kernel or two."""
    if verify.all() or not verify.any():
        return 0
    every = np.flatnonzero(present >= 0.95)
    small = np.median(per[~verify][:, every], axis=0)
    large = np.median(per[verify][:, every], axis=0)
    ok = (small >= 1) & (large >= SIZE_RATIO * small)
    split = per[:, every[ok]] >= (small[ok] + large[ok]) / 2
    return int(((split == verify[:, None]).mean(axis=0) >= 0.95).sum())


def _rounds(verify: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """Rounds from the passes' sizes (``verify[i]``: the pass after sampling kernel ``pos[i]``, up to and with
    ``pos[i + 1]``, is a verify pass): the drafts since the last verify pass, then the verify pass, as (first kernel,
    end kernel (exclusive), sampling kernel at the end, draft passes, the verify pass's first kernel) per round.
    None when the sizes do not alternate so."""
    at = np.flatnonzero(verify)
    if at.size < SPEC_MIN_ROUNDS:
        return None
    drafts = np.diff(at) - 1  # draft passes between consecutive verify passes
    if float((drafts == 0).mean()) > ADJACENT_SHARE:
        return None  # verify passes in a row: no drafts between them
    typical = int(np.median(drafts))
    if not 1 <= typical <= SPEC_MAX_DRAFTS:
        return None  # an encoder pass before a long decode (many small passes per big one) is no round
    # round j: the passes after verify pass j-1, to verify pass j (a request's first round holds the draft model's
    # pass over the prompt too); the first round goes back as many passes as the longest round has drafts
    start_pass = np.concatenate([[max(int(at[0]) - int(drafts.max()), 0)], at[:-1] + 1])
    first = pos[start_pass] + 1
    last = pos[at + 1] + 1
    counts = np.concatenate([[at[0] - start_pass[0]], drafts])  # draft passes of each round
    ends = pos[at + 1].astype(np.int64)
    return first.astype(np.int64), last.astype(np.int64), ends, counts, (pos[at] + 1).astype(np.int64)
