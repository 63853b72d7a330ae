"""Signals that cut a level into passes: host waits, copies, syncs, launches, anchors; clusters scored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from ...trace.schema import COPY_DTOH, COPY_HTOD, MEMCPY_KIND_LABELS
from ...trace.tables import pid_of
from ..phases import GRAPH_LAUNCH_API, PROFILER_START_API, WEIGHT_COPY_BYTES
from .patterns import (
    ANCHOR_FAMILIES,
    AUTOTUNE_KERNELS,
    BACKWARD_KERNELS,
    FRAGMENT_RATIO,
    HOST_WAIT_API,
    INIT_KERNELS,
    LOAD_ONLY_API,
    MAX_ROUND_TRIPS_PER_PASS,
    MIN_SEGMENTS,
    OPTIMIZER_KERNELS,
    PASS_END,
    PROFILER_STOP_API,
    SOFTMAX,
    TOKEN_ANCHORS,
)
from .sequence import Api, Cluster, Level, Seq, is_empty_frame, sorted_unique


@dataclass(frozen=True)
class Signals:
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


def find_signals(seq: Seq, api: Api, memcpy: pl.DataFrame | None, pid: int | None) -> Signals:
    own = api.frame
    times: list[np.ndarray] = []
    kinds: list[str] = []
    syncs = api.calls(HOST_WAIT_API)
    by_api: dict[str, np.ndarray] = {}
    if syncs.height and len(seq):
        base = syncs.with_columns(pl.col("name").cast(pl.String).str.replace(r"_v\d+$", "").alias("_api"))
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
    if not is_empty_frame(memcpy):
        assert memcpy is not None
        mc = memcpy
        if pid is not None and "globalPid" in mc.columns:
            mc = mc.filter(pid_of("globalPid") == pid)
        for kind in (COPY_HTOD, COPY_DTOH):
            label = f"{MEMCPY_KIND_LABELS[kind].lower()} copy"  # host-to-device copy, device-to-host copy
            part = mc.filter(pl.col("copyKind") == kind)
            if not part.height:
                continue
            t = np.sort(_host_times(part, own)["_h"].to_numpy())
            if kind == COPY_DTOH:  # a read back: a host round trip
                times.append(t)
                kinds.append(f"{part.height} device-to-host copies")
            if len(seq):
                copy_pos[label] = np.searchsorted(seq.t, t, side="left")
        big = mc.filter((pl.col("copyKind") == COPY_HTOD) & (pl.col("bytes") >= WEIGHT_COPY_BYTES))
        copies_h2d = np.sort(big["end"].to_numpy())
    rt = np.concatenate(times) if times else np.zeros(0, dtype=np.int64)
    pos = (
        sorted_unique(np.searchsorted(seq.t, rt, side="left")) if rt.size and len(seq) else np.zeros(0, dtype=np.int64)
    )
    loads = api.calls(LOAD_ONLY_API)
    return Signals(
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


def families(names: Sequence[str], shorts: Sequence[str], ops: pl.DataFrame | None) -> list[str]:
    """Operation family per distinct name, from ``ops`` (columns name, family) or the shipped op rules."""
    if ops is not None and {"name", "family"} <= set(ops.columns):
        fam = dict(zip(ops["name"].to_list(), ops["family"].to_list(), strict=False))
        return [str(fam.get(n) or "other") for n in names]
    try:
        from ..ops import builtin_rules, classify

        return [str(f) for f in classify(list(names), builtin_rules(), list(shorts))["family"].to_list()]
    except Exception:  # the op rules are an aid, never a requirement
        return ["other"] * len(names)


def is_anchor(name: str, short: str, family: str) -> bool:
    if INIT_KERNELS.search(name) or AUTOTUNE_KERNELS.search(name):
        return False
    if TOKEN_ANCHORS.search(short) or TOKEN_ANCHORS.search(name):
        return True
    return family in ANCHOR_FAMILIES and not SOFTMAX.search(name)  # softmax runs inside attention too


def score_clusters(clusters: list[Cluster], seq: Seq, sig: Signals, fams: list[str]) -> list[Cluster]:
    """Score each cluster as the forward-pass level; return the candidates, best first."""
    cands = [c for c in clusters if c.count >= MIN_SEGMENTS and max(lv.span for lv in c.levels) >= 0.2]
    # autograd's backward kernels, in a run that also runs an optimizer (an FFT's or a solver's "backward" sweep
    # runs none)
    backward = [c for c, n in enumerate(seq.names) if BACKWARD_KERNELS.search(n)]
    if not any(OPTIMIZER_KERNELS.search(n) for n in seq.names):
        backward = []
    back = np.sort(np.concatenate([seq.positions(c) for c in backward])) if backward else np.zeros(0, np.int64)
    for cl in cands:
        cut = cut_level(cl)
        pos = seq.positions(cut.marker)
        notes = []
        score = 0.0
        if back.size and pos.size > 1:
            # units with autograd's backward kernels in them: training steps, forward and backward passes
            inside = np.searchsorted(back, pos[1:], side="left") - np.searchsorted(back, pos[:-1], side="left")
            if float((inside > 0).mean()) >= 0.5:
                cl.backward = True
                score += 1
                notes.append("backward kernels in the units (training steps)")
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
            {seq.shorts[c] for lv in cl.levels for c in lv.codes if is_anchor(seq.names[c], seq.shorts[c], fams[c])}
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
    sampled: set[int] = set()
    for cl in cands:  # a finer level that ends in a token's sampling holds the passes: this one groups them
        inner = [o for o in cands if _groups_passes(cl, o, seq)]
        if cl.finer and inner:
            cl.score -= 1
            cl.reasons = [r for r in cl.reasons if not r.startswith("a finer repeating level")]
            cl.reasons.append("a finer level ends in a token's sampling (the passes): this one groups them")
        # the passes win over their group even where only the group has host round trips (a request read back at
        # its end, its tokens sampled on the GPU with no sync between them)
        sampled.update(id(o) for o in inner if o.round_trips < 0.5 and cl.round_trip_ok)
    for cl in cands:
        if id(cl) in sampled:
            cl.score += 3
            cl.reasons.append("each unit ends in a token's sampling, with no host round trip between them")
    return sorted(cands, key=lambda c: (-c.score, c.count, -c.names))


def _groups_passes(cl: Cluster, finer: Cluster, seq: Seq) -> bool:
    """Whether ``finer`` (at least twice as frequent, at most half as long) is the forward pass inside ``cl``: one
    of its once-per-unit kernels samples the next token (an argmax or a draw over the logits). A layer never does:
    a router's top-k inside each layer of a mixture of experts is no argmax."""
    if finer is cl or finer.count < 2 * cl.count or finer.period > cl.period / 2:
        return False
    return any(PASS_END.search(seq.names[c]) for lv in finer.levels for c in lv.codes)


def cut_level(cl: Cluster) -> Level:
    """The level whose names occur once in every pass: the largest count whose names never occur twice within one
    period (a name with one extra occurrence per request has a short distance somewhere). When that level's extra
    occurrences cut a unit shorter than ``FRAGMENT_RATIO`` of a period and a level of fewer occurrences samples a
    token (once per pass), that one: the extra ones are a prompt's pass run in pieces (a continuous-batching
    scheduler's prefill over several prompts), not passes of their own (an encoder's pass before the decoder's)."""
    once = [lv for lv in sorted(cl.levels, key=lambda x: -x.count) if lv.min_ratio >= 0.3]
    if once and once[0].min_ratio < FRAGMENT_RATIO:
        for lv in once[1:]:
            if lv.sampled:
                return lv
    if once:
        return once[0]
    return max(cl.levels, key=lambda x: (len(x.codes), x.count))
