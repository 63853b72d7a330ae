"""The kernel sequence of the analyzed process and its repeating levels (clusters of equal periods)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import polars as pl

from ...trace.schema import GRID
from ...trace.tables import call_column
from ..distribution import row_chunks
from ..distribution import sorted_unique as sorted_unique  # the structure's name for it
from ..phases import GRAPH_LAUNCH_API, LAUNCH_API, rows_where
from .patterns import MIN_SEGMENTS, PASS_END, REGULAR_TOL

# ------------------------------------------------------------------------------------------------ helpers


class Api:
    """API rows of the analyzed process, names coded once: patterns are matched per distinct name (a few dozen),
    rows are selected with a boolean mask (traces have millions of calls)."""

    def __init__(self, api: pl.DataFrame, pid: int | None) -> None:
        own = api if pid is None else rows_where(api, call_column(api, "pid"), pid)
        self.frame = own
        self.names: list[str] = own["name"].drop_nulls().unique().sort().to_list() if own.height else []
        if own.height:  # a null name: one past the names (no pattern matches it)
            self.codes = _rank_codes(own["name"], self.names, null=len(self.names))
        else:
            self.codes = np.zeros(0, dtype=np.int64)

    def mask(self, pattern: re.Pattern[str]) -> np.ndarray:
        hit = np.array([bool(pattern.search(n)) for n in self.names] + [False])
        return hit[self.codes]

    def calls(self, pattern: re.Pattern[str]) -> pl.DataFrame:
        m = self.mask(pattern)
        return self.frame.filter(pl.Series(m)) if m.any() else self.frame.clear()


def is_empty_frame(df: pl.DataFrame | None) -> bool:
    return df is None or df.is_empty()


def first_positions(code: np.ndarray, ncodes: int) -> np.ndarray:
    """The first position of each code in ``0..ncodes-1`` (``code.size`` where it does not occur)."""
    first = np.full(ncodes, code.size, dtype=np.int64)
    np.minimum.at(first, code, np.arange(code.size, dtype=np.int64))
    return first


def stable_order(code: np.ndarray, ncodes: int) -> np.ndarray:
    """Positions sorted by code, equal codes in position order: 16-bit codes take numpy's radix sort."""
    small = code.astype(np.uint16) if ncodes <= np.iinfo(np.uint16).max + 1 else code
    return np.argsort(small, kind="stable")


def launch_order(t: np.ndarray, start: np.ndarray, end: np.ndarray, code: np.ndarray) -> np.ndarray:
    """``np.lexsort((code, end, start, t))`` (equal keys in position order) by polars' multi-column sort, which
    runs on every core: a graph's kernels share their launch time, and numpy's lexsort of millions of such rows
    is several times slower."""
    keys = pl.DataFrame({"t": t, "start": start, "end": end, "code": code})
    order = pl.int_range(pl.len(), dtype=pl.Int64).sort_by(["t", "start", "end", "code"], maintain_order=True)
    return keys.select(order).to_series().to_numpy()


@dataclass(frozen=True)
class Seq:
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
    blocks: np.ndarray  # thread blocks launched (gridX * gridY * gridZ; 0 when not recorded)

    def __len__(self) -> int:
        return int(self.code.shape[0])

    def positions(self, c: int) -> np.ndarray:
        return self.pos_order[self.pos_offsets[c] : self.pos_offsets[c + 1]]

    @cached_property
    def typical_blocks(self) -> np.ndarray:
        """Per name (code): the median of the thread blocks of its launches (0 for a name never launched);
        computed once, as the passes of every candidate level are measured against it."""
        med = np.zeros(len(self.names), dtype=np.float64)
        for c in range(len(self.names)):
            b = self.blocks[self.positions(c)]
            med[c] = float(np.median(b)) if b.size else 0.0
        return med


def _launch_times(k: pl.DataFrame, api: Api, start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per kernel of ``k``: the start and end of the call that launched it (the kernel's ``start`` for both when
    none did) and whether that call launched a graph. Its own function: the lookup's arrays (millions of rows
    each) are freed before the sequence is sorted."""
    t = start.copy()
    t_end = start.copy()
    graph = np.zeros(k.height, dtype=bool)
    lmask = api.mask(LAUNCH_API)
    # only the three columns read: the API frame has millions of rows
    launch_cols = api.frame.select("correlationId", "start", "end")
    launches = launch_cols.filter(pl.Series(lmask)) if lmask.any() else launch_cols.clear()
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
    return t, t_end, graph


def _looked_up_times(
    launched: pl.DataFrame, api: Api, pid: int, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_launch_times`` from the launch columns ``phases.launched_kernels`` found (``l_start``, ``l_end``) for the
    kernels of process ``pid``: the same calls, found once for the whole report rather than twice. A kernel was
    launched by a graph launch when its launch call is one of the process's graph launches (each launch call's
    correlationId is its own: ``launched`` has one row per kernel)."""
    own = rows_where(launched, "pid", pid).select("correlationId", "l_start", "l_end")
    found = own["l_start"].is_not_null().to_numpy()
    # (the columns themselves where every kernel has its launch: no copy of millions of rows)
    t, t_end = (
        own[c].to_numpy() if not own[c].null_count() else own[c].fill_null(pl.Series(start)).to_numpy()
        for c in ("l_start", "l_end")
    )
    graphs = api.calls(GRAPH_LAUNCH_API)["correlationId"].drop_nulls()
    if graphs.is_empty():
        return t, t_end, np.zeros(own.height, dtype=bool)
    graph = found & np.isin(own["correlationId"].fill_null(-1).to_numpy(), graphs.to_numpy())
    return t, t_end, graph


def kernel_sequence(kernels: pl.DataFrame, api: Api, pid: int | None, launched: pl.DataFrame | None = None) -> Seq:
    """The kernels of process ``pid`` (all when None) in launch order. ``launched``: ``phases.launched_kernels``
    of ``kernels`` (the same rows, with the launch calls' times), when the caller has it: its lookup is reused."""
    k = kernels if pid is None else rows_where(kernels, "pid", pid)
    if k["name"].null_count() or k["short"].null_count():
        k = k.with_columns(
            pl.col("name").fill_null(pl.col("short")).fill_null("?"),
            pl.col("short").fill_null(pl.col("name")).fill_null("?"),
        )
    start = k["start"].to_numpy()
    end = k["end"].to_numpy()
    blocks = _blocks(k)
    if (  # the lookup of these very kernels: the same rows in the same order
        launched is not None
        and pid is not None
        and launched.height == kernels.height
        and launched["start"].equals(kernels["start"])
    ):
        t, t_end, graph = _looked_up_times(launched, api, pid, start)
    else:
        t, t_end, graph = _launch_times(k, api, start)
    names = k["name"].unique().sort().to_list()
    code = _rank_codes(k["name"], names)
    shorts = k["short"].gather(first_positions(code, len(names))).to_list()
    # launch order; ties by GPU start, end, name: deterministic. Kernels already in launch order (the table's order,
    # in nearly every trace) are neither sorted nor copied, and their durations are the frame's own
    dur = k["dur"].to_numpy() if "dur" in k.columns and not k["dur"].null_count() else end - start
    if not in_launch_order(t, start, end, code):
        o = launch_order(t, start, end, code)
        if o.size > 1 and not bool(np.all(o[1:] > o[:-1])):
            code, t, t_end, start, end, graph, blocks = code[o], t[o], t_end[o], start[o], end[o], graph[o], blocks[o]
            dur = end - start
        del o
    counts = np.bincount(code, minlength=len(names)) if code.size else np.zeros(len(names), dtype=np.int64)
    pos_order = stable_order(code, len(names))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return Seq(names, shorts, code, t, t_end, start, end, dur, graph, counts, pos_order, offsets, blocks)


def in_launch_order(t: np.ndarray, start: np.ndarray, end: np.ndarray, code: np.ndarray) -> bool:
    """Whether the rows are already sorted by (t, start, end, code), so that ``launch_order`` (a stable sort) would
    keep them where they are: each row against the next, a chunk at a time (no sort, no array of every row)."""
    for a in row_chunks(t.size - 1):  # each row of ``a`` against the next
        b = slice(a.start + 1, a.stop + 1)
        ok = code[b] >= code[a]
        for x in (end, start, t):  # from the last key to the first: a later key decides only where earlier ones tie
            ok = (x[b] > x[a]) | ((x[b] == x[a]) & ok)
        if not bool(ok.all()):
            return False
    return True


def _blocks(k: pl.DataFrame) -> np.ndarray:
    """``launch_blocks`` of each kernel, made in one Int64 array (no column per step of the product)."""
    if not all(c in k.columns for c in GRID):
        return np.zeros(k.height, dtype=np.int64)
    out = np.ones(k.height, dtype=np.int64)
    for g in GRID:
        col = k[g]
        out *= (col.fill_null(0) if col.null_count() else col).to_numpy()
    return out


def _rank_codes(col: pl.Series, names: list[str], null: int = -1) -> np.ndarray:
    """Each row's position in ``names`` (its distinct texts, sorted), as an Int64 array (``null`` for a null). A
    categorical column's ids are ranked once per distinct name and each row looked up in that table (two million
    kernels: about half the time of casting the texts to an enum of the names, which finds each row's text among
    them; 5M calls: 0.12 -> 0.05 s)."""
    if col.dtype != pl.Categorical:
        return col.cast(pl.Enum(names)).to_physical().cast(pl.Int64).fill_null(null).to_numpy()
    from ..distribution import text_codes

    ids, texts = text_codes(col)
    rank = {name: i for i, name in enumerate(names)}
    table = np.array([-1 if t is None else rank.get(t, -1) for t in texts.to_list()] + [null], dtype=np.int64)
    return table[ids.fill_null(texts.len()).to_numpy()]


# ------------------------------------------------------------------------------------------------ levels


@dataclass(frozen=True)
class Level:
    count: int
    codes: list[int]  # names with exactly this count (the regular ones)
    marker: int  # the most regular of them
    period: float  # median distance (kernels) between its occurrences
    regular: float  # share of distances within tolerance of the period
    coverage: float  # share of the marker's span covered by regular distances
    span: float  # share of the sequence between the marker's first and last occurrence
    min_ratio: float  # smallest distance / period (a name that occurs twice per period has a small one)
    sampled: bool = False  # one of its names samples a token (an argmax or a draw over the logits: PASS_END)


@dataclass
class Cluster:
    levels: list[Level]
    period: float
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)
    round_trips: float = 0.0
    anchors: list[str] = field(default_factory=list)
    finer: bool = False  # a finer repeating level inside (layers)
    graphs: bool = False  # one graph launch per period
    round_trip_ok: bool = False  # one to a few host round trips per period
    whole: bool = False  # whole forward passes: found inside a level that groups them (requests)
    backward: bool = False  # autograd's backward kernels in most units: training steps (forward and backward)

    @property
    def count(self) -> int:
        return max(lv.count for lv in self.levels)

    @property
    def names(self) -> int:
        return sum(len(lv.codes) for lv in self.levels)


def near_period(d: np.ndarray, period: float) -> np.ndarray:
    """Which distances ``d`` are one ``period`` (within ``REGULAR_TOL`` of it, and half a kernel)."""
    return np.abs(d - period) <= REGULAR_TOL * period + 0.5


def regularity(pos: np.ndarray) -> tuple[float, float, float, float, float]:
    d = np.diff(pos)
    if d.size == 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    med = float(np.median(d))
    ok = near_period(d, med)
    width = float(pos[-1] - pos[0])
    cov = float(d[ok].sum()) / width if width > 0 else 0.0
    return med, float(ok.mean()), cov, width, float(d.min()) / med if med > 0 else 0.0


def broken_cover(pos: np.ndarray, med: float, reg: float, cov: float) -> float:
    """The coverage of a token sampler's occurrences at ``pos`` (``regularity``'s ``med``, ``reg`` and ``cov``)
    with one recurring break counted as covered: when at least 90% of the distances are regular and the others,
    two or more, are one distance again (within tolerance of their median), each is a request's prompt pass between
    two runs of decode steps (a prompt run by other kernels than a token's, as cuDNN's recurrent layers loop over
    a prompt), not a part of the run the sampler leaves. Else ``cov``."""
    if reg < 0.9:
        return cov
    d = np.diff(pos)
    rest = d[~near_period(d, med)]
    if rest.size < 2:
        return cov
    rmed = float(np.median(rest))
    return 1.0 if bool(near_period(rest, rmed).all()) else cov


def find_levels(seq: Seq) -> list[Level]:
    """Counts shared by names whose occurrences are evenly spaced (a level of the run's hierarchy)."""
    n = len(seq)
    out: list[Level] = []
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
            pos = seq.positions(c)
            med, reg, cov, width, mr = regularity(pos)
            if reg * cov < 0.6 and PASS_END.search(seq.names[c]):
                cov = broken_cover(pos, med, reg, cov)
            if med >= 1 and reg * cov >= 0.6:
                scored.append((reg * cov, width, -c, c, med, reg, cov, mr))
        if not scored:
            continue
        scored.sort(reverse=True)
        best = scored[0]
        out.append(
            Level(
                cnt,
                sorted(s[3] for s in scored),
                best[3],
                best[4],
                best[5],
                best[6],
                best[1] / n,
                min(s[7] for s in scored if abs(s[4] - best[4]) <= REGULAR_TOL * best[4] + 0.5),
                any(PASS_END.search(seq.names[s[3]]) for s in scored),
            )
        )
    return out


def find_clusters(levels: list[Level]) -> list[Cluster]:
    """Levels with the same period (within 5%) are one level of the hierarchy seen through several names."""
    out: list[Cluster] = []
    for lv in sorted(levels, key=lambda x: (x.period, x.count)):
        if out and abs(lv.period - out[-1].period) <= 0.05 * out[-1].period + 0.5:
            out[-1].levels.append(lv)
        else:
            out.append(Cluster([lv], lv.period))
    return out
