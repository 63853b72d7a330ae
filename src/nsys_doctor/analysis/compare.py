"""Comparing traces: per-step profiles, significance, diff rows, context-length scaling and the CI gate.

A ``Profile`` is the per-decode-step summary of one trace: for each kernel (by full name, base name or operation
family), CUDA API (version suffix removed) and memory operation, its instance durations and its total per decode
step. Profiles are small and JSON-serializable, so they double as named baselines. Pure functions.

Significance: Mann-Whitney U (two-sided, normal approximation with tie correction) on per-step totals when both
sides have steps, else on instance durations. A change is reported as significant only when p < ``alpha`` *and*
the relative change of the mean per step is at least ``min_effect``: with hundreds of steps, tiny systematic
shifts are "significant" but not worth a regression report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np
import polars as pl

from ..trace.schema import COPY_DTOD, COPY_DTOH, COPY_HTOD, COPY_PEER, MEMCPY_KIND_LABELS
from .distribution import downsample, percentile, text_codes
from .phases import GRAPH_LAUNCH_API, LAUNCH_API, Steps, Window, assign_to_steps

PROFILE_SCHEMA = "nsys-doctor-profile/1"
LEVELS = ("name", "base", "family")
SAMPLE_MAX = 512  # instance durations kept per key (evenly spaced order statistics beyond that)
_VERSION_SUFFIX = re.compile(r"_v\d+$")


def api_key(name: str) -> str:
    """CUDA API name without its version suffix(es): cudaLaunchKernel_v7000 -> cudaLaunchKernel."""
    prev = None
    while prev != name:
        prev, name = name, _VERSION_SUFFIX.sub("", name)
    return name


# ----------------------------------------------------------------------------------------------- statistics


def mann_whitney_p(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation, tie-corrected). 1.0 when undefined."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n1, n2 = len(x), len(y)
    if n1 < 2 or n2 < 2:
        return 1.0
    allv = np.concatenate([x, y])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks for ties
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    r1 = ranks[:n1].sum()
    u1 = r1 - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    tie = (counts**3 - counts).sum() / (n * (n - 1)) if n > 1 else 0.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie)
    if var <= 0:
        return 1.0
    z = (u1 - n1 * n2 / 2.0) / math.sqrt(var)
    return math.erfc(abs(z) / math.sqrt(2.0))


# ------------------------------------------------------------------------------------------------- profiles


class Record:
    """A result row whose JSON is its fields, as they are."""

    def to_dict(self) -> dict[str, object]:
        return self.__dict__.copy()


class StepTotals(Sequence[int]):
    """Integers, one per step (ns), held as one int64 array: a profile keeps one for every kernel, call and memory
    operation at three levels, and over ten thousand steps Python integers took five times the memory. A read-only
    sequence of Python ints; equal to any sequence of the same integers; ``numpy.asarray`` reads it without a copy."""

    __slots__ = ("_a",)

    def __init__(self, values: Iterable[int] | np.ndarray = ()) -> None:
        a = np.array(values if isinstance(values, np.ndarray | Sequence) else list(values), dtype=np.int64)
        if a.ndim != 1:
            raise ValueError("step totals are one integer per step")
        a.setflags(write=False)
        self._a = a

    def __len__(self) -> int:
        return len(self._a)

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> StepTotals: ...
    def __getitem__(self, i: int | slice) -> int | StepTotals:
        return StepTotals(self._a[i]) if isinstance(i, slice) else int(self._a[i])

    def __iter__(self) -> Iterator[int]:
        return iter(self._a.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StepTotals):
            return bool(np.array_equal(self._a, other._a))
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == len(self) and list(other) == self._a.tolist()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # as a list's

    def __array__(self, dtype: object = None, copy: bool | None = None) -> np.ndarray:
        return self._a if dtype is None else self._a.astype(dtype)  # type: ignore[call-overload]

    def __reduce__(self) -> tuple[type[StepTotals], tuple[np.ndarray]]:
        return StepTotals, (self._a,)

    def __repr__(self) -> str:
        return f"StepTotals({self._a.tolist()})"


@dataclass(frozen=True)
class Row(Record):
    key: str
    family: str
    category: str
    count: int
    total: int
    per_step: Sequence[int]  # total per decode step, aligned with the profile's steps (0 when absent): a StepTotals
    sample: list[int]  # instance durations (sorted; downsampled beyond SAMPLE_MAX)
    label: str = ""  # short display name of a kernel

    def __post_init__(self) -> None:
        if not isinstance(self.per_step, StepTotals):
            object.__setattr__(self, "per_step", StepTotals(self.per_step))

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__, "per_step": list(self.per_step)}

    @property
    def p50(self) -> float | None:
        return percentile(self.sample, 50)

    @property
    def p99(self) -> float | None:
        return percentile(self.sample, 99)


@dataclass(frozen=True)
class Profile:
    source: str
    context_tokens: float | None  # mean context length of the decode steps, when known
    prompt_len: int | None
    steps: int  # decode steps (or all steps when there is no decode)
    step_kind: str
    step_wall: list[int]
    step_gpu: list[int]
    step_launches: list[int]
    step_graph_launches: list[int]
    kernels: dict[str, dict[str, Row]] = field(default_factory=dict)  # level -> key -> Row
    api: dict[str, Row] = field(default_factory=dict)
    memops: dict[str, Row] = field(default_factory=dict)
    schema: str = PROFILE_SCHEMA

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "source": self.source,
            "context_tokens": self.context_tokens,
            "prompt_len": self.prompt_len,
            "steps": self.steps,
            "step_kind": self.step_kind,
            "step_wall": self.step_wall,
            "step_gpu": self.step_gpu,
            "step_launches": self.step_launches,
            "step_graph_launches": self.step_graph_launches,
            "kernels": {lv: {k: r.to_dict() for k, r in rows.items()} for lv, rows in self.kernels.items()},
            "api": {k: r.to_dict() for k, r in self.api.items()},
            "memops": {k: r.to_dict() for k, r in self.memops.items()},
        }

    @classmethod
    def from_dict(cls, d: object) -> Profile:
        """A profile from its JSON form (a saved baseline), every field checked: a wrong shape raises
        ``ProfileFormatError`` naming the field, never a KeyError or TypeError deep inside the diff."""
        if not isinstance(d, dict):
            raise ProfileFormatError("the file is not a JSON object")
        if d.get("schema") != PROFILE_SCHEMA:
            raise ProfileFormatError(f"schema is {d.get('schema')!r}, expected {PROFILE_SCHEMA!r}")
        steps = _int_field(d, "steps")
        lists = {k: _int_list(d, k, steps) for k in ("step_wall", "step_gpu", "step_launches", "step_graph_launches")}
        step_kind = d.get("step_kind")
        if step_kind not in ("decode", "step", "all"):
            raise ProfileFormatError(f"step_kind is {step_kind!r}, expected decode, step or all")
        source = d.get("source")
        if not isinstance(source, str):
            raise ProfileFormatError("source is not a string")
        ctx, prompt = d.get("context_tokens"), d.get("prompt_len")
        if ctx is not None and (isinstance(ctx, bool) or not isinstance(ctx, int | float) or not math.isfinite(ctx)):
            raise ProfileFormatError("context_tokens is not a number")
        if prompt is not None and (isinstance(prompt, bool) or not isinstance(prompt, int) or prompt < 0):
            raise ProfileFormatError("prompt_len is not a non-negative integer")
        kernels_raw = d.get("kernels") or {}
        if not isinstance(kernels_raw, dict):
            raise ProfileFormatError("kernels is not an object")
        return cls(
            source=source,
            context_tokens=float(ctx) if ctx is not None else None,
            prompt_len=prompt,
            steps=steps,
            step_kind=step_kind,
            step_wall=lists["step_wall"],
            step_gpu=lists["step_gpu"],
            step_launches=lists["step_launches"],
            step_graph_launches=lists["step_graph_launches"],
            kernels={str(lv): _row_map(m, f"kernels.{lv}", steps) for lv, m in kernels_raw.items()},
            api=_row_map(d.get("api"), "api", steps),
            memops=_row_map(d.get("memops"), "memops", steps),
        )


class ProfileFormatError(ValueError):
    """A saved profile (baseline) whose JSON does not have the expected shape."""


def _int_field(d: dict[str, object], key: str, where: str = "") -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ProfileFormatError(f"{where}{key} is {v!r}, expected a non-negative integer")
    return v


def _int_list(d: dict[str, object], key: str, n: int | None, where: str = "") -> list[int]:
    v = d.get(key)
    if not isinstance(v, list) or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in v):
        raise ProfileFormatError(f"{where}{key} is not a list of non-negative integers")
    if n is not None and len(v) != n:
        raise ProfileFormatError(f"{where}{key} has {len(v)} values for {n} steps")
    return list(v)


def _row_map(m: object, where: str, steps: int) -> dict[str, Row]:
    if m is None:
        return {}
    if not isinstance(m, dict):
        raise ProfileFormatError(f"{where} is not an object")
    out: dict[str, Row] = {}
    for k, v in m.items():
        at = f"{where}.{k}"
        if not isinstance(v, dict):
            raise ProfileFormatError(f"{at} is not an object")
        for name in ("family", "category"):
            if not isinstance(v.get(name), str):
                raise ProfileFormatError(f"{at}.{name} is not a string")
        label = v.get("label", "")
        if not isinstance(label, str):
            raise ProfileFormatError(f"{at}.label is not a string")
        out[str(k)] = Row(
            key=str(k),
            family=str(v["family"]),
            category=str(v["category"]),
            count=_int_field(v, "count", f"{at}."),
            total=_int_field(v, "total", f"{at}."),
            per_step=_int_list(v, "per_step", steps, f"{at}."),
            sample=sorted(_int_list(v, "sample", None, f"{at}.")),
            label=label,
        )
    return out


def _rows(
    df: pl.DataFrame,
    key: str,
    n_steps: int,
    family: str | None = None,
    category: str | None = None,
    texts: Sequence[str | None] | None = None,
) -> dict[str, Row]:
    """Rows per ``key`` from events with ``dur`` and ``idx`` (step index 0..n-1, or null outside steps). ``texts``:
    ``key`` holds codes (null for none), and code ``c`` stands for the text ``texts[c]`` (codes of one text each)."""
    out: dict[str, Row] = {}
    if df.is_empty():
        return out
    wanted = ("family", "category") if key == "family" else ("family", "category", "label")
    meta_cols = [c for c in wanted if c in df.columns and c != key]
    # grouped by the texts' codes: hashing millions of texts held 600 MB at 5M calls
    if texts is None and df[key].dtype == pl.String:
        codes, by_code = text_codes(df[key])
        df, texts = df.with_columns(codes), by_code.to_list()
    agg = df.group_by(key).agg(
        pl.len().alias("count"),
        pl.col("dur").sum().alias("total"),
        pl.col("dur").alias("durs"),
        *(pl.col(c).first() for c in meta_cols),
    )
    # grouped first, then the groups outside steps dropped: filtering the events would copy every column; coded
    # texts group with their step as one integer (a group_by of two columns hashes a row encoding of both)
    if texts is not None:
        pair = (pl.col(key).cast(pl.Int64) * max(n_steps, 1) + pl.col("idx")).alias("_pair")
        steps = (
            df.select(pair, "dur")
            .group_by("_pair")
            .agg(pl.col("dur").sum().alias("t"))
            .drop_nulls("_pair")
            .select(
                (pl.col("_pair") // max(n_steps, 1)).alias(key), (pl.col("_pair") % max(n_steps, 1)).alias("idx"), "t"
            )
        )
    else:
        steps = (
            df.select(key, "idx", "dur")
            .group_by(key, "idx")
            .agg(pl.col("dur").sum().alias("t"))
            .filter(pl.col("idx").is_not_null())
        )
    per: dict[object, np.ndarray] = {}
    for g, idx, t in steps.iter_rows():
        if g is not None:
            arr = per.setdefault(g, np.zeros(n_steps, dtype=np.int64))
            arr[int(idx)] = int(t)
    durs = agg["durs"]  # each group's durations reach downsample as an array, never as Python integers
    for i, r in enumerate(agg.drop("durs").iter_rows(named=True)):
        g = r[key]
        if texts is not None and g is not None:
            r[key] = texts[g]
        k = str(r[key])
        out[k] = Row(
            key=k,
            family=str(r.get("family") or (k if key == "family" else family) or ""),
            category=str(r.get("category") or category or ""),
            count=int(r["count"]),
            total=int(r["total"]),
            per_step=StepTotals(per.get(g, np.zeros(n_steps, dtype=np.int64))),
            sample=downsample(durs[i].to_numpy().astype(np.int64, copy=False), SAMPLE_MAX),
            label=str(r.get("label") or ""),
        )
    return out


PROFILE_COLUMNS = {
    "launched": ["name", "short", "dur", "start", "l_start"],
    "api": ["name", "start", "dur", "correlationId"],
    "memcpy": ["start", "dur", "copyKind", "correlationId"],
    "memset": ["start", "dur", "correlationId"],
}
"""The columns ``build_profile`` reads of each frame it takes (a session building its last profile keeps only
these)."""


def build_profile(
    source: str,
    launched: pl.DataFrame,
    api: pl.DataFrame,
    memcpy: pl.DataFrame,
    memset: pl.DataFrame,
    window: Window,
    steps: Steps,
    ops: pl.DataFrame,
    prompt_len: int | None = None,
    output_len: int | None = None,
) -> Profile:
    """The per-step profile of one trace. ``launched``: its kernels with their launch calls' times
    (``phases.launched_kernels``); ``ops`` maps kernel ``name`` to family/category (``ops.classify``)."""
    from .ops import keyed_like, label_frame

    st = steps.table
    decode = st.filter(pl.col("kind") == "decode")
    kind = "decode"
    if decode.is_empty():
        decode, kind = st.filter(pl.col("kind") != "prefill"), "step"
    if decode.is_empty():
        decode, kind = st, "all"
    decode = decode.sort("start").with_row_index("pos").with_columns(pl.col("pos").cast(pl.Int64))
    n = decode.height
    st_pos = decode.select(pl.col("pos").alias("idx"), "start", "end")
    # only the columns the profile reads: every later step (filter, joins, the sort by time) copies them all
    lk = launched.select("name", "short", "dur", pl.coalesce("l_start", "start").alias("t"))
    lk = lk.filter((pl.col("t") >= window.start) & (pl.col("t") <= window.end))
    lk = lk.join(keyed_like(ops.select("name", "family", "category"), lk), on="name", how="left")
    lk = label_frame(lk).with_columns(pl.col("family").fill_null("other"), pl.col("category").fill_null("other"))
    ka = assign_to_steps(lk, st_pos, "t")
    del lk  # a copy when assign_to_steps sorted it
    step_gpu = np.zeros(n, dtype=np.int64)
    for idx, t in ka.group_by("idx").agg(pl.col("dur").sum()).drop_nulls("idx").iter_rows():
        step_gpu[int(idx)] = int(t)
    kernels_rows = {
        "name": _rows(ka, "name", n),
        "base": _rows(ka.with_columns(pl.col("label").alias("base")), "base", n),
        "family": _rows(ka, "family", n),
    }
    # API calls by codes: the call's name (for the launch counts) and its key (the name without version suffix,
    # what the rows are keyed by); the texts of millions of calls are never copied
    api_w = window.rows(api).select("name", "start", "dur")
    name_codes, by_code = text_codes(api_w["name"])
    names = by_code.to_list()
    keys = [None if nm is None else api_key(nm) for nm in names]
    key_texts = sorted({k for k in keys if k is not None})
    key_code = {k: i for i, k in enumerate(key_texts)}
    to_key = pl.Series([None if k is None else key_code[k] for k in keys], dtype=pl.UInt32)
    api_w = api_w.select(name_codes, to_key.gather(name_codes).alias("api"), "start", "dur")
    aa = assign_to_steps(api_w, st_pos, "start")
    del api_w
    launches = np.zeros(n, dtype=np.int64)
    graph_launches = np.zeros(n, dtype=np.int64)
    for pattern, arr in ((LAUNCH_API, launches), (GRAPH_LAUNCH_API, graph_launches)):
        matching = [c for c, nm in enumerate(names) if nm is not None and pattern.search(nm)]
        if not matching:
            continue
        launched_calls = aa.filter(pl.col("name").is_in(pl.Series(matching, dtype=pl.UInt32).implode()))
        for idx, c in launched_calls.group_by("idx").len().drop_nulls("idx").iter_rows():
            arr[int(idx)] = int(c)
    from ..stats.memops import MEMSET_NAME

    labels = {k: MEMCPY_KIND_LABELS[k] for k in (COPY_HTOD, COPY_DTOH, COPY_DTOD, COPY_PEER)}
    mc = memcpy.with_columns(
        pl.concat_str(
            pl.lit("[CUDA memcpy "),
            pl.col("copyKind").replace_strict(labels, default="other", return_dtype=pl.Utf8),
            pl.lit("]"),
        ).alias("op")
    ).select("start", "dur", "op", "correlationId")
    ms = memset.select("start", "dur", pl.lit(MEMSET_NAME).alias("op"), "correlationId")
    mem = pl.concat([mc, ms], how="vertical").filter(
        (pl.col("start") >= window.start) & (pl.col("start") <= window.end)
    )
    # the launching calls of these operations only: a join would hash every API call's correlation id
    launch = api.filter(pl.col("correlationId").is_in(mem["correlationId"].drop_nulls().unique().implode()))
    mem = mem.join(launch.select("correlationId", pl.col("start").alias("l_start")), on="correlationId", how="left")
    mem = assign_to_steps(mem.with_columns(pl.coalesce("l_start", "start").alias("t")), st_pos, "t")
    ctx = None
    if prompt_len is not None:
        ctx = float(prompt_len) + (n + 1) / 2.0 if kind == "decode" else float(prompt_len)
    return Profile(
        source=source,
        context_tokens=ctx,
        prompt_len=prompt_len,
        steps=n,
        step_kind=kind,
        step_wall=[int(v) for v in (decode["end"] - decode["start"]).to_list()],
        step_gpu=[int(v) for v in step_gpu],
        step_launches=[int(v) for v in launches],
        step_graph_launches=[int(v) for v in graph_launches],
        kernels=kernels_rows,
        api=_rows(aa, "api", n, texts=key_texts),
        memops=_rows(mem, "op", n),
    )


# ------------------------------------------------------------------------------------------------------ diff


@dataclass(frozen=True)
class DiffRow(Record):
    kind: str  # "kernel", "api", "memop", "family"
    key: str
    family: str
    before_count: int
    after_count: int
    before_per_step: float  # mean total per step, ns
    after_per_step: float
    delta_per_step: float
    delta_pct: float | None
    before_p50: float | None
    after_p50: float | None
    before_p99: float | None
    after_p99: float | None
    p_value: float
    significant: bool
    matched: str  # "name", "family" (renamed kernels), "before only", "after only"
    label: str = ""


@dataclass(frozen=True)
class Headline(Record):
    before_steps: int
    after_steps: int
    before_gpu_per_step: float
    after_gpu_per_step: float
    gpu_delta_pct: float | None
    gpu_p_value: float
    gpu_significant: bool
    before_step_time: float
    after_step_time: float
    step_time_delta_pct: float | None
    step_time_significant: bool
    before_launches_per_step: float
    after_launches_per_step: float
    before_graph_launches_per_step: float
    after_graph_launches_per_step: float


@dataclass(frozen=True)
class DiffResult:
    before: str
    after: str
    level: str
    headline: Headline
    rows: list[DiffRow]
    families: list[DiffRow]
    notes: list[str]

    def explaining(self, n: int = 5) -> list[DiffRow]:
        """The few significant rows with the largest per-step change."""
        sig = [r for r in self.rows + self.families if r.significant and r.kind != "family"]
        return sorted(sig, key=lambda r: -abs(r.delta_per_step))[:n]

    def to_dict(self) -> dict[str, object]:
        """The JSON payload of `diff` (docs/report-json.md); report/serialize.py adds the envelope."""
        return {
            "before": self.before,
            "after": self.after,
            "level": self.level,
            "headline": self.headline.to_dict(),
            "explaining": [r.to_dict() for r in self.explaining()],
            "rows": [r.to_dict() for r in self.rows],
            "families": [r.to_dict() for r in self.families],
            "notes": self.notes,
        }


def _mean(v: Sequence[int]) -> float:
    return float(np.mean(v)) if v else 0.0


def _pct_change(a: float, b: float) -> float | None:
    return None if a == 0 else 100.0 * (b - a) / a


def _compare(
    kind: str,
    key: str,
    a: Row | None,
    b: Row | None,
    sa: int,
    sb: int,
    alpha: float,
    min_effect: float,
    matched: str,
    min_delta: float = 0.0,
) -> DiffRow:
    ap = [0] * sa if a is None else a.per_step
    bp = [0] * sb if b is None else b.per_step
    if sa >= 2 and sb >= 2:
        p = mann_whitney_p(ap, bp)
        before_ps, after_ps = _mean(ap), _mean(bp)
    else:
        p = mann_whitney_p(a.sample if a else [], b.sample if b else [])
        before_ps = (a.total if a else 0) / max(sa, 1)
        after_ps = (b.total if b else 0) / max(sb, 1)
    delta = after_ps - before_ps
    pct = _pct_change(before_ps, after_ps)
    effect = abs(pct) / 100.0 if pct is not None else (1.0 if delta else 0.0)
    return DiffRow(
        kind=kind,
        key=key,
        family=(a or b).family if (a or b) else "",  # type: ignore[union-attr]
        before_count=a.count if a else 0,
        after_count=b.count if b else 0,
        before_per_step=before_ps,
        after_per_step=after_ps,
        delta_per_step=delta,
        delta_pct=pct,
        before_p50=a.p50 if a else None,
        after_p50=b.p50 if b else None,
        before_p99=a.p99 if a else None,
        after_p99=b.p99 if b else None,
        p_value=p,
        significant=bool(p < alpha and effect >= min_effect and abs(delta) >= min_delta),
        matched=matched,
        label=(a or b).label if (a or b) else "",  # type: ignore[union-attr]
    )


def diff_profiles(
    before: Profile, after: Profile, level: str = "name", alpha: float = 0.01, min_effect: float = 0.03
) -> DiffResult:
    """Compare two profiles per step. Kernels present on one side only are matched by operation family."""
    sa, sb = before.steps, after.steps
    busy_a, busy_b = step_busy(before), step_busy(after)
    # practical significance: a row must move at least 1% of the step (GPU time or host step time, per step)
    min_delta = 0.01 * max(_mean(busy_a), _mean(before.step_wall), 1.0)
    rows: list[DiffRow] = []
    ka, kb = before.kernels.get(level, {}), after.kernels.get(level, {})
    common = sorted(set(ka) & set(kb))
    for k in common:
        rows.append(_compare("kernel", k, ka[k], kb[k], sa, sb, alpha, min_effect, level, min_delta))
    if level != "family":
        # renamed kernels: what exists on one side only is compared per family
        only_a = [ka[k] for k in set(ka) - set(kb)]
        only_b = [kb[k] for k in set(kb) - set(ka)]
        for fam in sorted({r.family for r in only_a} | {r.family for r in only_b}):
            ra = _merge([r for r in only_a if r.family == fam], sa)
            rb = _merge([r for r in only_b if r.family == fam], sb)
            label = "family" if ra and rb else ("before only" if ra else "after only")
            rows.append(
                _compare(
                    "kernel",
                    f"{fam} (kernels renamed or only on one side)",
                    ra,
                    rb,
                    sa,
                    sb,
                    alpha,
                    min_effect,
                    label,
                    min_delta,
                )
            )
    for k in sorted(set(before.api) | set(after.api)):
        rows.append(
            _compare("api", k, before.api.get(k), after.api.get(k), sa, sb, alpha, min_effect, "name", min_delta)
        )
    for k in sorted(set(before.memops) | set(after.memops)):
        rows.append(
            _compare(
                "memop", k, before.memops.get(k), after.memops.get(k), sa, sb, alpha, min_effect, "name", min_delta
            )
        )
    fa, fb = before.kernels.get("family", {}), after.kernels.get("family", {})
    families = [
        _compare("family", k, fa.get(k), fb.get(k), sa, sb, alpha, min_effect, "family", min_delta)
        for k in sorted(set(fa) | set(fb))
    ]
    pg = mann_whitney_p(busy_a, busy_b)
    pw = mann_whitney_p(before.step_wall, after.step_wall)
    bg, ag = _mean(busy_a), _mean(busy_b)
    bw, aw = _mean(before.step_wall), _mean(after.step_wall)
    gd, wd = _pct_change(bg, ag), _pct_change(bw, aw)
    head = Headline(
        before_steps=sa,
        after_steps=sb,
        before_gpu_per_step=bg,
        after_gpu_per_step=ag,
        gpu_delta_pct=gd,
        gpu_p_value=pg,
        gpu_significant=bool(pg < alpha and gd is not None and abs(gd) >= 100 * min_effect),
        before_step_time=bw,
        after_step_time=aw,
        step_time_delta_pct=wd,
        step_time_significant=bool(pw < alpha and wd is not None and abs(wd) >= 100 * min_effect),
        before_launches_per_step=_mean(before.step_launches),
        after_launches_per_step=_mean(after.step_launches),
        before_graph_launches_per_step=_mean(before.step_graph_launches),
        after_graph_launches_per_step=_mean(after.step_graph_launches),
    )
    rows.sort(key=lambda r: -abs(r.delta_per_step))
    families.sort(key=lambda r: -abs(r.delta_per_step))
    notes = []
    if before.step_kind != after.step_kind:
        notes.append(f"steps differ in kind: {before.step_kind} vs {after.step_kind}")
    return DiffResult(before.source, after.source, level, head, rows, families, notes)


def step_busy(p: Profile) -> list[int]:
    """GPU time per step: kernels plus memory copies and memsets (a copy-bound run is judged on its copies)."""
    busy = np.asarray(p.step_gpu, dtype=np.int64)
    for row in p.memops.values():
        if len(row.per_step) == len(busy):
            busy = busy + np.asarray(row.per_step, dtype=np.int64)
    return [int(v) for v in busy]


def min_p_value(n1: int, n2: int) -> float:
    """The smallest two-sided p-value ``mann_whitney_p`` can give for samples of these sizes (complete
    separation, no ties): below ``alpha`` only with enough steps on both sides."""
    if n1 < 2 or n2 < 2:
        return 1.0
    n = n1 + n2
    z = (n1 * n2 / 2.0) / math.sqrt(n1 * n2 * (n + 1) / 12.0)
    return math.erfc(z / math.sqrt(2.0))


def comparison_problem(before: Profile, after: Profile, alpha: float, gating: bool) -> tuple[str, str] | None:
    """Why two profiles cannot be compared (or gated) and what to do, or None. A diff against a side with nothing
    measured would report -100% and pass any gate; a gate without the steps to reach significance cannot fail."""
    for side, p in (("BEFORE", before), ("AFTER", after)):
        if p.steps == 0:
            return (
                f"{side} ({p.source}) has no steps in its analysis window",
                "check the window with: nsys-doctor report TRACE (or give --window)",
            )
        if sum(step_busy(p)) == 0:
            return (
                f"{side} ({p.source}) has no kernels, copies or memsets in its steps",
                "check the capture traced CUDA (--trace=cuda) while the workload ran",
            )
    if not gating:
        return None
    if before.step_kind != after.step_kind:
        return (
            f"the runs differ in kind: BEFORE has {_KIND_WORDS[before.step_kind]}, AFTER has "
            f"{_KIND_WORDS[after.step_kind]}, so per-step times do not compare",
            "gate traces of the same workload captured the same way",
        )
    floor = min_p_value(before.steps, after.steps)
    if floor >= alpha:
        return (
            f"{before.steps} and {after.steps} steps are too few for the gate: no change could be significant at "
            f"alpha {alpha:g} (the smallest possible p is {floor:.2g})",
            "capture more steps (at least 5 per side at alpha 0.01) or raise --alpha",
        )
    return None


_KIND_WORDS = {"decode": "decode steps", "step": "steps without a decode phase", "all": "prefill steps only"}


def _merge(rows: list[Row], n: int) -> Row | None:
    if not rows:
        return None
    per = np.sum([np.asarray(r.per_step, dtype=np.int64) for r in rows], axis=0) if n else np.zeros(0)
    sample = sorted(v for r in rows for v in r.sample)
    return Row(
        key="+".join(r.key for r in rows),
        family=rows[0].family,
        category=rows[0].category,
        count=sum(r.count for r in rows),
        total=sum(r.total for r in rows),
        per_step=StepTotals(per),
        sample=downsample(np.asarray(sample, dtype=np.int64), SAMPLE_MAX),
    )


# --------------------------------------------------------------------------------------------------- gating


@dataclass(frozen=True)
class GateResult(Record):
    passed: bool
    threshold_pct: float
    reasons: list[str]


def gate(result: DiffResult, threshold_pct: float, family_thresholds: dict[str, float] | None = None) -> GateResult:
    """Fail when per-step GPU time (or a family with its own threshold) regresses beyond the threshold with
    significance."""
    reasons: list[str] = []
    h = result.headline
    if h.gpu_significant and h.gpu_delta_pct is not None and h.gpu_delta_pct > threshold_pct:
        reasons.append(f"GPU time per step +{h.gpu_delta_pct:.1f}% (p={h.gpu_p_value:.2g}) > {threshold_pct:g}%")
    for fam, limit in (family_thresholds or {}).items():
        row = next((r for r in result.families if r.key == fam), None)
        if row and row.significant and row.delta_pct is not None and row.delta_pct > limit:
            reasons.append(f"family {fam} +{row.delta_pct:.1f}% per step (p={row.p_value:.2g}) > {limit:g}%")
    return GateResult(not reasons, threshold_pct, reasons)


# -------------------------------------------------------------------------------------------------- scaling


@dataclass(frozen=True)
class ScalingRow(Record):
    kind: str  # "family" or "kernel"
    key: str
    family: str
    per_step: list[float]  # mean per decode step, one per trace (ordered by context)
    slope_per_1k: float | None  # ns per step per 1000 tokens of context
    growth_pct: float | None  # last vs first
    p_value: float  # first vs last trace, per-step totals
    status: str  # "scales (expected)", "investigate", "flat", "shrinks"


@dataclass(frozen=True)
class ScalingResult:
    traces: list[str]
    contexts: list[float]
    families: list[ScalingRow]
    kernels: list[ScalingRow]
    step_gpu: list[float]

    def investigate(self) -> list[ScalingRow]:
        return [r for r in self.kernels + self.families if r.status == "investigate"]

    def to_dict(self) -> dict[str, object]:
        """The JSON payload of `scaling` (docs/report-json.md); report/serialize.py adds the envelope."""
        return {
            "traces": self.traces,
            "contexts": self.contexts,
            "step_gpu_ns": self.step_gpu,
            "families": [r.to_dict() for r in self.families],
            "kernels": [r.to_dict() for r in self.kernels],
            "investigate": [r.to_dict() for r in self.investigate()],
        }


ATTENTION_FAMILIES = re.compile(r"attention")


def _slope(x: list[float], y: list[float]) -> float | None:
    if len(x) < 2 or max(x) == min(x):
        return None
    return float(np.polyfit(np.asarray(x), np.asarray(y), 1)[0]) * 1000.0


def scaling(profiles: list[Profile], alpha: float = 0.01, min_effect: float = 0.05) -> ScalingResult:
    """Per-decode-step time per family and kernel against context length. Only attention should grow."""
    ps = sorted(profiles, key=lambda p: p.context_tokens or 0.0)
    ctx = [float(p.context_tokens or 0.0) for p in ps]

    def rows(level: str, kind: str) -> list[ScalingRow]:
        keys = sorted(set().union(*(p.kernels.get(level, {}).keys() for p in ps)))
        out = []
        for k in keys:
            rs = [p.kernels.get(level, {}).get(k) for p in ps]
            fam = next(r.family for r in rs if r is not None)
            means = [_mean(r.per_step) if r else 0.0 for r in rs]
            first, last = rs[0], rs[-1]
            pval = mann_whitney_p(
                first.per_step if first else [0] * ps[0].steps, last.per_step if last else [0] * ps[-1].steps
            )
            growth = _pct_change(means[0], means[-1])
            big = (growth is None and means[-1] > 0) or (growth is not None and abs(growth) >= 100 * min_effect)
            if pval < alpha and big and means[-1] > means[0]:
                status = "scales (expected)" if ATTENTION_FAMILIES.search(fam) else "investigate"
            elif pval < alpha and big:
                status = "shrinks"
            else:
                status = "flat"
            if any(means):
                out.append(ScalingRow(kind, k, fam, means, _slope(ctx, means), growth, pval, status))
        out.sort(key=lambda r: -(r.per_step[-1] - r.per_step[0]))
        return out

    return ScalingResult(
        traces=[p.source for p in ps],
        contexts=ctx,
        families=rows("family", "family"),
        kernels=rows("base", "kernel"),
        step_gpu=[_mean(p.step_gpu) for p in ps],
    )
