"""What optional capture data measures: GPU metrics per step, per kernel and per family (and whether the target
family is memory-bound), the device-memory watermark, the host call sites of the slowest CUDA API calls, and the
``ncu`` command that profiles one instance of the target kernel in the measured region.

Pure functions: frames and numbers in, plain dicts (the JSON sections ``gpu_metrics``, ``memory``, ``callchains``,
``next_commands`` of docs/report-json.md) and findings out. See docs/metrics.md for the methods.

GPU metrics are sampled (10 kHz by default): a sample at time t is the mean over the period [t, t + period) of a
throughput as a percentage of the GPU's peak. Kernels of a decode step last a few microseconds, so one sample mixes
several kernels. Within a sample the throughputs add up by time share (bytes moved in the period = the sum over
the kernels of their own rate times the time they ran in it), so the rate of each kernel (and of each family)
while it runs is found by least squares over all samples of the window: value = sum_k share_k * rate_k.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

import numpy as np
import polars as pl

from ..trace.metrics import DEVICE_MEM_KINDS
from ..units import format_bytes, format_ns
from .findings import Finding
from .phases import Window

METRIC_KEYS = ("sm_active", "dram_read", "dram_write", "tensor_active")
METRIC_WORDS = {
    "sm_active": "SM active",
    "dram_read": "DRAM read",
    "dram_write": "DRAM write",
    "tensor_active": "tensor",
}

FIT_KERNELS = 40  # kernels with a column of their own in the fit (with MIN_COVER of time); the rest share one
MIN_COVER = 3.0  # a kernel (family) needs this many sample periods of its own time in the window for a rate
MAX_SE = 10.0  # percentage points: a fitted rate less certain than this is left out (null)
GAP_PERIODS = 2  # a sample followed by a gap longer than this many periods covers only this many

# families that a decode step expects to be limited by memory bandwidth: the measured DRAM throughput while they run
# confirms or refutes it
MEMORY_BOUND_FAMILIES = frozenset(
    {"gemv", "attention-decode", "kv-cache", "elementwise", "norm", "activation", "rope", "embedding", "reduction"}
)
BOUND_AT = 60.0  # DRAM (read + write) % of peak while the family runs: memory-bound from here
NOT_BOUND_BELOW = 40.0  # and not limited by bandwidth below this

# device memory
GROWTH_WARNING = 0.10  # growth across decode steps as a share of the peak: warning from here, info below
MAX_TIMELINE_POINTS = 400


# ------------------------------------------------------------------------------------------------ sampling


def sample_periods(ts: np.ndarray) -> tuple[np.ndarray, int]:
    """The end of each sample's period (the next sample, at most ``GAP_PERIODS`` periods on) and the period."""
    if ts.size < 2:
        return ts + 1, 1
    period = max(1, int(np.median(np.diff(ts))))
    te = np.empty_like(ts)
    te[:-1] = np.minimum(ts[1:], ts[:-1] + GAP_PERIODS * period)
    te[-1] = ts[-1] + period
    return te, period


def coverage(ts: np.ndarray, te: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per sample: the nanoseconds of the intervals [starts, ends) inside its period [ts, te)."""
    out = np.zeros(ts.size, dtype=np.float64)
    if ts.size == 0 or starts.size == 0:
        return out
    i0 = np.searchsorted(te, starts, side="right")
    i1 = np.searchsorted(ts, ends, side="left")
    counts = np.maximum(i1 - i0, 0)
    total = int(counts.sum())
    if total == 0:
        return out
    first = np.repeat(i0, counts)
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    idx = first + offset
    ov = np.minimum(np.repeat(ends, counts), te[idx]) - np.maximum(np.repeat(starts, counts), ts[idx])
    return np.bincount(idx, weights=np.clip(ov, 0, None).astype(np.float64), minlength=ts.size)


def inside(ts: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether each sample time falls inside one of the intervals [starts, ends)."""
    if ts.size == 0 or starts.size == 0:
        return np.zeros(ts.size, dtype=bool)
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], np.maximum.accumulate(ends[order])
    i = np.searchsorted(s, ts, side="right") - 1
    ok = i >= 0
    hit = np.zeros(ts.size, dtype=bool)
    hit[ok] = ts[ok] < e[i[ok]]
    return hit


def fit_rates(shares: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Least squares of ``y ~ shares @ rates`` (no intercept: an idle GPU reads ~0): rates, their standard errors
    and R². Columns with no time get NaN."""
    rates, se, r2 = fit_many(shares, y.reshape(-1, 1))
    return rates[:, 0], se[:, 0], r2[0]


def fit_many(shares: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[float | None]]:
    """``fit_rates`` for several value columns at once (one solve of the small normal equations): rates and
    standard errors of shape (columns of ``shares``, columns of ``ys``), and R² per value column."""
    n, p = shares.shape
    m = ys.shape[1]
    rates = np.full((p, m), np.nan)
    se = np.full((p, m), np.nan)
    used = shares.sum(axis=0) > 0
    k = int(used.sum())
    if n <= k or k == 0:
        return rates, se, [None] * m
    a = shares[:, used]
    inv = np.linalg.pinv(a.T @ a)
    coef = inv @ (a.T @ ys)
    resid = ys - a @ coef
    rss = (resid**2).sum(axis=0)
    dof = max(1, n - int(np.linalg.matrix_rank(a.T @ a)))
    err = np.sqrt(np.clip(np.outer(np.diag(inv), rss / dof), 0, None))
    rates[used], se[used] = coef, err
    ss = ((ys - ys.mean(axis=0)) ** 2).sum(axis=0)
    r2 = [float(1 - rss[j] / ss[j]) if ss[j] > 0 else None for j in range(m)]
    return rates, se, r2


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def _means(values: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for k in METRIC_KEYS:
        v = values[k][mask]
        v = v[np.isfinite(v)]
        out[k] = _r(float(v.mean())) if v.size else None
    return out


def _rates(
    cols: list[np.ndarray], values: dict[str, np.ndarray], rows: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, float | None]]:
    """Per metric: fitted rates and errors of the columns over the sample rows ``rows``, and the fit's R² (metrics
    the GPU's set lacks, or samples where one is missing, are fitted apart)."""
    shares = np.column_stack(cols)[rows]
    ys = np.column_stack([values[k][rows] for k in METRIC_KEYS])
    rates: dict[str, np.ndarray] = {}
    errs: dict[str, np.ndarray] = {}
    r2: dict[str, float | None] = {}
    complete = np.isfinite(ys).all(axis=1)
    if complete.all():
        rr, ee, fits = fit_many(shares, ys)
        for j, k in enumerate(METRIC_KEYS):
            rates[k], errs[k], r2[k] = rr[:, j], ee[:, j], _r(fits[j], 3)
        return rates, errs, r2
    for j, k in enumerate(METRIC_KEYS):
        ok = np.isfinite(ys[:, j])
        if ok.sum() < 2:
            rates[k] = errs[k] = np.full(shares.shape[1], np.nan)
            r2[k] = None
            continue
        rates[k], errs[k], fit_r2 = fit_rates(shares[ok], ys[ok, j])
        r2[k] = _r(fit_r2, 3)
    return rates, errs, r2


def _rate_dict(
    rates: dict[str, np.ndarray], errs: dict[str, np.ndarray], j: int, cover: float
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """A column's rates (0-100, null when its own time or its certainty is too small) and standard errors."""
    val: dict[str, float | None] = {}
    err: dict[str, float | None] = {}
    for k in METRIC_KEYS:
        r, e = float(rates[k][j]), float(errs[k][j])
        good = cover >= MIN_COVER and np.isfinite(r) and np.isfinite(e) and e <= MAX_SE
        val[k] = _r(min(100.0, max(0.0, r))) if good else None
        err[k] = _r(e) if np.isfinite(e) else None
    return val, err


def gpu_metrics_summary(
    samples: pl.DataFrame,
    names: dict[str, str],
    gpu: int,
    window: Window,
    kernels: pl.DataFrame,
    copies: pl.DataFrame,
    steps: pl.DataFrame,
    top_kernels: pl.DataFrame,
    target: dict[str, object],
) -> dict[str, object] | None:
    """The ``gpu_metrics`` section.

    ``samples``: timestamp and the metric columns (``trace.metrics.gpu_metric_samples``); ``kernels``: the window's
    kernels on that GPU (start, end, name, family, category); ``copies``: its memcpy/memset operations (start, end,
    kind); ``steps``: the steps table; ``top_kernels``: the diagnosis's top kernels (name, label, family);
    ``target``: the diagnosis's target (the family whose boundness is checked)."""
    s = samples.sort("timestamp")
    ts_all = s["timestamp"].to_numpy().astype(np.int64)
    te_all, period = sample_periods(ts_all)
    sel = (ts_all >= window.start) & (ts_all < window.end)
    if not sel.any():
        return None
    ts, te = ts_all[sel], te_all[sel]
    values = {k: s[k].to_numpy().astype(np.float64)[sel] for k in METRIC_KEYS}
    out: dict[str, object] = {
        "gpu": gpu,
        "metrics": {k: names.get(k) for k in METRIC_KEYS},
        "period_ns": period,
        "frequency_hz": round(1e9 / period),
        "samples_in_window": int(ts.size),
        "window": _means(values, np.ones(ts.size, dtype=bool)),
    }
    # per step: the samples inside the step's GPU span
    st = steps.filter(pl.col("gpu_start").is_not_null() & pl.col("gpu_end").is_not_null()).sort("idx")
    per_step: list[dict[str, object]] = []
    for r in st.iter_rows(named=True):
        m = (ts >= r["gpu_start"]) & (ts < r["gpu_end"])
        per_step.append({"idx": r["idx"], "kind": r["kind"], "samples": int(m.sum()), **_means(values, m)})
    out["per_step"] = per_step
    by_kind: dict[str, object] = {}
    for kind in sorted({str(p["kind"]) for p in per_step}):
        rows = [p for p in per_step if p["kind"] == kind and p["samples"]]
        if rows:
            by_kind[kind] = {
                "steps": len(rows),
                "samples_per_step_p50": float(np.median([float(p["samples"]) for p in rows])),  # type: ignore[arg-type]
                **{
                    k: _r(float(np.median(v)))
                    for k in METRIC_KEYS
                    if (v := [float(p[k]) for p in rows if p[k] is not None])  # type: ignore[arg-type]
                },
            }
    out["steps"] = by_kind
    # the time each kernel covers in each sample: a column of its own for every kernel with enough time (the
    # largest first, at most FIT_KERNELS), one for all other kernels and one for copies and memsets
    k = kernels.filter((pl.col("start") < int(te[-1])) & (pl.col("end") > int(ts[0])))
    totals = k.group_by("name").agg(pl.col("dur").sum().alias("t")).sort(["t", "name"], descending=[True, False])
    candidates = totals.filter(pl.col("t") >= MIN_COVER * period)["name"].head(FIT_KERNELS).to_list()
    by_name = k.partition_by("name", as_dict=True)
    none = k.clear()
    plen = (te - ts).astype(np.float64)

    def span(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return frame["start"].to_numpy().astype(np.int64), frame["end"].to_numpy().astype(np.int64)

    fit_names: list[str] = []
    cols: list[np.ndarray] = []
    for name in candidates:
        col = coverage(ts, te, *span(by_name[(name,)])) / plen
        if col.sum() >= MIN_COVER:  # its time inside the sampled periods (gaps in sampling leave some out)
            fit_names.append(str(name))
            cols.append(col)
    cols.append(coverage(ts, te, *span(k.filter(~pl.col("name").is_in(fit_names)))) / plen)
    cols.append(coverage(ts, te, *span(copies)) / plen if copies.height else np.zeros(ts.size))
    rows = np.sum(cols, axis=0) > 0
    rates, errs, r2 = _rates(cols, values, rows)
    out["fit"] = {"samples": int(rows.sum()), "r2": r2, "kernels": len(fit_names)}
    fitted: dict[str, tuple[float, dict[str, float | None], dict[str, float | None]]] = {}
    for j, name in enumerate(fit_names):
        cover = float(cols[j][rows].sum())
        fitted[name] = (cover, *_rate_dict(rates, errs, j, cover))
    kernel_rows: list[dict[str, object]] = []
    for r in top_kernels.iter_rows(named=True):
        name = str(r["name"])
        hit = inside(ts, *span(by_name.get((name,), none)))
        cover, wr, er = fitted.get(name, (None, None, None))  # type: ignore[arg-type]
        kernel_rows.append(
            {
                "name": name,
                "label": r.get("label"),
                "family": r.get("family"),
                "samples_inside": int(hit.sum()),
                "inside_mean": _means(values, hit),
                "time_in_samples": _r(cover, 2),
                "while_running": wr,
                "stderr": er,
            }
        )
    out["kernels"] = kernel_rows
    # per family: the time-weighted mean of its fitted kernels' rates
    families: list[dict[str, object]] = []
    if k.height:
        fams = k.group_by("family", "category").agg(pl.col("dur").sum().alias("t"), pl.col("name").unique().sort())
        by_family = k.partition_by("family", as_dict=True)
        for r in fams.sort(["t", "family"], descending=[True, False]).iter_rows(named=True):
            f = by_family[(r["family"],)]
            families.append(_family_rates(r, f, fitted, inside(ts, *span(f)), coverage(ts, te, *span(f)) / plen, rows))
    out["families"] = families
    out["verdict"] = _verdict(target, families, period, int(rows.sum()), r2)
    return out


def _family_rates(
    r: dict[str, object],
    f: pl.DataFrame,
    fitted: dict[str, tuple[float, dict[str, float | None], dict[str, float | None]]],
    hit: np.ndarray,
    col: np.ndarray,
    rows: np.ndarray,
) -> dict[str, object]:
    """A family's rates while it runs: its fitted kernels' rates weighted by their time in the samples, when those
    kernels hold at least half of the family's time (else null)."""
    cover = float(col[rows].sum())
    names = [str(n) for n in r["name"]]  # type: ignore[union-attr]
    wr: dict[str, float | None] = {}
    er: dict[str, float | None] = {}
    shares: dict[str, float] = {}
    for key in METRIC_KEYS:
        parts = [(fitted[n][0], fitted[n][1][key], fitted[n][2][key]) for n in names if n in fitted]
        parts = [(c, v, e) for c, v, e in parts if v is not None]
        w = sum(c for c, _, _ in parts)
        shares[key] = w / cover if cover > 0 else 0.0
        if parts and w > 0 and shares[key] >= 0.5:
            wr[key] = _r(sum(c * float(v) for c, v, _ in parts) / w)  # type: ignore[arg-type]
            er[key] = _r(float(np.sqrt(sum((c * float(e or 0.0)) ** 2 for c, _, e in parts))) / w)
        else:
            wr[key] = er[key] = None
    return {
        "family": r["family"],
        "category": r["category"],
        "kernels": len(names),
        "samples_inside": int(hit.sum()),
        "time_in_samples": _r(cover, 2),
        "fitted_share": _r(shares["dram_read"], 3),
        "while_running": wr,
        "stderr": er,
    }


def _verdict(
    target: dict[str, object], families: list[dict[str, object]], period: int, samples: int, r2: dict[str, float | None]
) -> dict[str, object] | None:
    """For the target family: DRAM throughput while it runs, and whether that says memory-bound."""
    fam = target.get("family")
    if target.get("kind") != "family" or fam is None:
        return None
    row = next((f for f in families if f["family"] == fam), None)
    if row is None or not isinstance(row.get("while_running"), dict):
        return None
    w: dict[str, float | None] = row["while_running"]  # type: ignore[assignment]
    rd, wr = w.get("dram_read"), w.get("dram_write")
    if rd is None:
        return None
    dram = rd + (wr or 0.0)
    cat = str(target.get("category") or fam)
    fit = f", time-share fit R² {r2['dram_read']:.3f}" if r2.get("dram_read") is not None else ""
    numbers = (
        f"DRAM read {rd:.0f}% of peak bandwidth"
        + (f" (write {wr:.0f}%)" if wr is not None else "")
        + f" while the {cat} kernels run"
        + (f", SM active {w['sm_active']:.0f}%" if w.get("sm_active") is not None else "")
        + (f", tensor {w['tensor_active']:.0f}%" if w.get("tensor_active") is not None else "")
        + f" (GPU metrics: {samples:,} samples at {round(1e9 / period / 1000, 1):g} kHz{fit})"
    )
    bound: str | None = None
    if fam in MEMORY_BOUND_FAMILIES:
        if dram >= BOUND_AT:
            bound, word = "memory-bound", "memory-bound, confirmed"
        elif dram < NOT_BOUND_BELOW:
            bound = "not-memory-bound"
            word = (
                "not memory-bound: the kernels leave most of the bandwidth unused (latency, launch gaps inside "
                "them or too little parallelism), so fewer bytes alone will not speed them up"
            )
        else:
            bound, word = "partly", "partly memory-bound: bandwidth is used but not saturated"
        text = f"measured: {numbers}: {word}"
    else:
        text = f"measured: {numbers}"
    return {
        "family": fam,
        "category": cat,
        "dram_read": rd,
        "dram_write": wr,
        "sm_active": w.get("sm_active"),
        "tensor_active": w.get("tensor_active"),
        "samples": samples,
        "bound": bound,
        "text": text,
    }


# ------------------------------------------------------------------------------------------- device memory


def _in_use_at(t: np.ndarray, level: np.ndarray, at: np.ndarray, base: int = 0) -> np.ndarray:
    """The in-use bytes just after time ``at`` (events at ``at`` included)."""
    i = np.searchsorted(t, at, side="right") - 1
    return np.where(i >= 0, level[np.clip(i, 0, None)] if level.size else base, base)


def memory_summary(
    events: pl.DataFrame,
    device: int | None,
    window: Window,
    steps: pl.DataFrame,
    requests: Sequence[dict[str, object]],
    total_memory: int | None,
    failures: pl.DataFrame,
    trace_end: int,
    step_word: str = "decode step",
) -> tuple[dict[str, object] | None, Finding | None]:
    """The ``memory`` section (device-memory watermark over time, per step and per request) and the
    ``device-memory-growth`` finding when memory grows across the decode steps (or an allocation ran out).

    ``events``: ``trace.metrics.memory_usage_events``; ``device``: the analyzed GPU (None: all); ``requests``:
    index, start, end, warmup of the run's requests; ``failures``: allocation calls that failed for lack of memory."""
    e = events.filter(pl.col("memKind").is_in(list(DEVICE_MEM_KINDS)))
    if device is not None:
        e = e.filter(pl.col("deviceId") == device)
    if e.is_empty():
        return None, None
    e = e.sort(["start", "seq"]).with_columns(
        pl.when(pl.col("op") == 1).then(-pl.col("bytes")).otherwise(pl.col("bytes")).cum_sum().alias("level")
    )
    t = e["start"].to_numpy().astype(np.int64)
    level = e["level"].to_numpy().astype(np.int64)
    peak_i = int(np.argmax(level))
    w0, w1 = _in_use_at(t, level, np.array([window.start, window.end]))
    in_w = (t >= window.start) & (t <= window.end)
    peak_w = int(max(level[in_w].max(), w0)) if in_w.any() else int(max(w0, w1))
    ops_w = e.filter((pl.col("start") >= window.start) & (pl.col("start") <= window.end))
    out: dict[str, object] = {
        "device": device,
        "events": e.height,
        "peak_bytes": int(level[peak_i]),
        "peak_at_ns": int(t[peak_i]),
        "in_use_at_window_start_bytes": int(w0),
        "in_use_at_window_end_bytes": int(w1),
        "peak_in_window_bytes": peak_w,
        "growth_in_window_bytes": int(w1 - w0),
        "allocations_in_window": int((ops_w["op"] == 0).sum()),
        "frees_in_window": int((ops_w["op"] == 1).sum()),
        "gpu_total_bytes": total_memory,
    }
    # per step: in use at the step's end
    st = steps.sort("idx")
    ends = st.select(pl.coalesce("end", "gpu_end").alias("e"))["e"].to_numpy().astype(np.int64) if st.height else None
    per_step = []
    if ends is not None and ends.size:
        at_end = _in_use_at(t, level, ends)
        per_step = [
            {"idx": int(i), "kind": str(kd), "end_bytes": int(b)}
            for i, kd, b in zip(st["idx"].to_list(), st["kind"].to_list(), at_end.tolist(), strict=True)
        ]
    out["per_step"] = per_step
    rep = [p for p in per_step if p["kind"] == "decode"] or [p for p in per_step if p["kind"] != "prefill"]
    growth: dict[str, object] | None = None
    if len(rep) >= 2:
        lv = np.array([int(p["end_bytes"]) for p in rep])  # type: ignore[call-overload]
        d = np.diff(lv)
        growth = {
            "steps": len(rep),
            "first_bytes": int(lv[0]),
            "last_bytes": int(lv[-1]),
            "growth_bytes": int(lv[-1] - lv[0]),
            "steps_growing": int((d > 0).sum()),
            "steps_shrinking": int((d < 0).sum()),
            "monotonic": bool((d >= 0).all() and (d > 0).sum() >= 2),
        }
    out["steps"] = growth
    req_rows = []
    for r in requests:
        a, b = int(r["start"]), int(r["end"])  # type: ignore[call-overload]
        v0, v1 = _in_use_at(t, level, np.array([a, b]))
        m = (t >= a) & (t <= b)
        req_rows.append(
            {
                "index": r["index"],
                "warmup": r.get("warmup"),
                "start_bytes": int(v0),
                "end_bytes": int(v1),
                "peak_bytes": int(max(level[m].max(), v0)) if m.any() else int(max(v0, v1)),
                "growth_bytes": int(v1 - v0),
            }
        )
    out["requests"] = req_rows
    fails = failures.filter(pl.col("start") <= trace_end) if failures.height else failures
    out["allocation_failures"] = fails.head(20).to_dicts() if fails.height else []
    out["timeline"] = _timeline(t, level, trace_end)
    finding = _memory_finding(out, growth, fails, step_word)
    return out, finding


def _timeline(t: np.ndarray, level: np.ndarray, end: int) -> dict[str, list[int]]:
    """The in-use level as a step function: (time, bytes) points, at most ``MAX_TIMELINE_POINTS``, keeping each
    bucket's largest level so that no peak is lost; the last level is carried to ``end``."""
    # one point per distinct time: the level after all events at it
    last = np.r_[t[1:] != t[:-1], True]
    tt, lv = t[last], level[last]
    if tt.size > MAX_TIMELINE_POINTS:
        edges = np.linspace(tt[0], tt[-1], MAX_TIMELINE_POINTS + 1)
        b = np.clip(np.searchsorted(edges, tt, side="right") - 1, 0, MAX_TIMELINE_POINTS - 1)
        keep_t, keep_v = [], []
        for i in np.unique(b):
            m = b == i
            j = int(np.argmax(lv[m]))
            keep_t.append(int(tt[m][j]))
            keep_v.append(int(lv[m][j]))
        tt, lv = np.array(keep_t), np.array(keep_v)
    ts, vs = [int(x) for x in tt], [int(x) for x in lv]
    if ts and end > ts[-1]:
        ts.append(int(end))
        vs.append(vs[-1])
    return {"t_ns": ts, "bytes": vs}


def _memory_finding(
    mem: dict[str, object], growth: dict[str, object] | None, fails: pl.DataFrame, step_word: str
) -> Finding | None:
    peak = int(mem["peak_bytes"])  # type: ignore[call-overload]
    grows = growth is not None and bool(growth["monotonic"]) and int(growth["growth_bytes"]) > 0  # type: ignore[call-overload]
    if not grows and not fails.height:
        return None
    parts = []
    evidence: dict[str, object] = {"peak_bytes": peak, "gpu_total_bytes": mem.get("gpu_total_bytes")}
    share = 0.0
    if grows and growth is not None:
        g = int(growth["growth_bytes"])  # type: ignore[call-overload]
        share = g / peak if peak > 0 else 0.0
        parts.append(
            f"device memory in use grows by {format_bytes(g)} over {growth['steps']} {step_word}s "
            f"({format_bytes(growth['first_bytes'])} to {format_bytes(growth['last_bytes'])}; it grows in "  # type: ignore[arg-type]
            f"{growth['steps_growing']} of them and never shrinks), {100 * share:.1f}% of the peak "
            f"({format_bytes(peak)}): a leak or a cache that grows with every step"
        )
        evidence.update({k: growth[k] for k in ("steps", "first_bytes", "last_bytes", "growth_bytes", "steps_growing")})
        evidence["growth_share_of_peak"] = round(share, 4)
    if fails.height:
        first = fails.row(0, named=True)
        parts.append(
            f"{fails.height} allocation call(s) failed for lack of device memory (first: {first['name']} at "
            f"{int(first['start']) / 1e9:.3f} s): it ends in an out-of-memory error"
        )
        evidence["allocation_failures"] = fails.height
    severity = "critical" if fails.height else ("warning" if share >= GROWTH_WARNING else "info")
    # a memory finding explains no time: no cost
    return Finding("device-memory-growth", severity, "; ".join(parts), evidence)


# --------------------------------------------------------------------------------------------- call chains

# modules of the CUDA runtime, driver and profiler: the frames below the application's own call
_CUDA_MODULES = re.compile(r"(libcupti|libcuda\.so|libcudart|libToolsInjection|libnvToolsExt|libnvperf)", re.I)
_INTERPRETER = re.compile(r"(^|/)(python[\d.]*|libpython[\d.]*\.so[\d.]*)$")
_PROGRAM_ENTRY = frozenset({"main", "__libc_start_main", "_start", "__libc_start_call_main"})
# frames that only pass a call along (PyTorch's dispatcher, std::function): left out of the shown path
_PLUMBING = re.compile(
    r"^(c10::impl::|c10::Dispatcher|c10::BoxedKernel|c10::KernelFunction|at::_ops::|std::|"
    r"torch::autograd::VariableType::|c10::detail::)"
)


def short_symbol(symbol: str) -> str:
    """A C++ symbol without parameters, template arguments, return type and lambda parts:
    ``at::native::_local_scalar_dense_cuda(at::Tensor const&)::{lambda()#1}::operator()() const`` ->
    ``at::native::_local_scalar_dense_cuda``."""
    depth, out = 0, []
    for ch in symbol:
        if ch in "<(":
            depth += 1
        elif ch in ">)" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    s = "".join(out).strip()
    s = re.sub(r"\s+const$", "", s)
    s = s.split("::{lambda")[0]
    s = s.rsplit(" ", 1)[-1] if " " in s else s
    s = re.sub(r"(::)+", "::", s).strip(":")
    return s or symbol


Frame = tuple[str | None, str | None, bool | None]  # symbol, module, unresolved


def _site(frames: tuple[Frame, ...]) -> tuple[str | None, str | None, list[str], list[str]]:
    """(issuer, entry, path, stack) of one call chain (innermost first): the first frame outside the CUDA
    libraries, the last native frame before the interpreter (or the program's entry), the meaningful frames
    between them, and the stack as short names."""
    stack: list[str] = []
    own: list[str] = []
    for sym, mod, unres in frames:
        name = short_symbol(str(sym)) if sym and not unres else f"?? ({str(mod or '?').rsplit('/', 1)[-1]})"
        stack.append(name)
        module = str(mod or "")
        if _INTERPRETER.search(module) or name in _PROGRAM_ENTRY:
            break
        if _CUDA_MODULES.search(module) or unres or not sym:
            continue
        if not own or own[-1] != name:
            own.append(name)
    issuer = own[0] if own else None
    entry = own[-1] if own else None
    path = [n for n in own if not _PLUMBING.search(n)]
    if entry is not None and (not path or path[-1] != entry):
        path.append(entry)
    return issuer, entry, path, stack


def callchain_summary(
    calls: pl.DataFrame, frames: pl.DataFrame, window: Window, top: int = 8
) -> dict[str, object] | None:
    """The ``callchains`` section: CUDA API calls with a host call stack in the window, grouped by API and call
    site (the application frames between the CUDA library and the interpreter), the most time first."""
    c = calls.filter((pl.col("start") >= window.start) & (pl.col("start") <= window.end))
    if c.is_empty():
        return None
    # the frames of each chain, innermost first; chains with the same frames are read once
    stacks: dict[int, list[Frame]] = {}
    used = frames.filter(pl.col("chain").is_in(c["chain"].unique().to_list())).sort(["chain", "depth"])
    for chain, sym, mod, unres in used.select("chain", "symbol", "module", "unresolved").iter_rows():
        stacks.setdefault(int(chain), []).append((sym, mod, unres))
    by_frames: dict[tuple[Frame, ...], tuple[str | None, str | None, list[str], list[str]]] = {}
    sites: dict[int, tuple[str | None, str | None, list[str], list[str]]] = {}
    for chain, st in stacks.items():
        key = tuple(st)
        if key not in by_frames:
            by_frames[key] = _site(key)
        sites[chain] = by_frames[key]
    chains = c["chain"].unique().to_list()
    paths = pl.DataFrame(
        {"chain": chains, "path_key": [" <- ".join(sites.get(int(x), (None, None, [], []))[2]) for x in chains]},
        schema={"chain": pl.Int64, "path_key": pl.Utf8},
    )
    keyed = c.join(paths, on="chain", how="left")
    groups = (
        keyed.group_by("name", "path_key")
        .agg(
            pl.len().alias("count"),
            pl.col("dur").sum().alias("total_ns"),
            pl.col("dur").max().alias("max_ns"),
            pl.col("dur").median().alias("p50_ns"),
            pl.col("chain").sort_by(["dur", "chain"], descending=[True, False]).first().alias("slowest_chain"),
        )
        .sort(["total_ns", "name", "path_key"], descending=[True, False, False])
    )
    rows = []
    for g in groups.head(top).iter_rows(named=True):
        issuer, entry, path, stack = sites.get(int(g["slowest_chain"]), (None, None, [], []))
        rows.append(
            {
                "api": g["name"],
                "count": g["count"],
                "total_ns": int(g["total_ns"]),
                "max_ns": int(g["max_ns"]),
                "p50_ns": int(g["p50_ns"]),
                "issuer": issuer,
                "entry": entry,
                "path": path,
                "stack": stack[:24],
            }
        )
    return {
        "calls": c.height,
        "api_time_ns": int(c["dur"].sum()),
        "sites": rows,
        "note": "only calls longer than the --cudabacktrace threshold carry a stack; collecting stacks slows the "
        "host, so host-side times of this trace are inflated",
    }


# -------------------------------------------------------------------------------------------- next commands


def _ncu_name(short: str) -> str:
    return "ncu_" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", short).strip("_") or "kernel")[:60]


def target_kernel(target: dict[str, object], top_kernels: pl.DataFrame) -> dict[str, object] | None:
    """The kernel the diagnosis says to work on: the largest kernel of the target family among the top kernels."""
    if target.get("kind") != "family" or top_kernels.is_empty() or "family" not in top_kernels.columns:
        return None
    rows = top_kernels.filter(pl.col("family") == target.get("family"))
    return rows.row(0, named=True) if rows.height else None


def ncu_commands(
    kernel: dict[str, object] | None,
    kernels: pl.DataFrame,
    window: Window,
    argv: list[str] | None,
    command: str | None,
    cwd: str | None,
    capture: dict[str, object],
) -> list[dict[str, object]]:
    """The ``ncu`` command that profiles one instance of ``kernel`` in the same program, the first of the analysis
    window (past warm-up): ``--launch-skip N`` skips the N launches of kernels with the same base name (what
    ``--kernel-name regex:^NAME$`` matches) made before it, in launch order (``l_start``, the launch call's time,
    else the kernel's start). ``kernels``: all kernels of the trace (name, short, start, pid, l_start)."""
    if kernel is None:
        return []
    name, short = str(kernel["name"]), str(kernel.get("short") or "")
    if not short:
        short = str(kernels.filter(pl.col("name") == name)["short"].head(1).to_list()[0]) if kernels.height else name
    k = kernels.with_columns(pl.coalesce("l_start", "start").alias("_t"))
    mine = k.filter((pl.col("name") == name) & (pl.col("start") >= window.start) & (pl.col("start") <= window.end))
    if mine.is_empty():
        return []
    first = mine.sort(["_t", "start"]).row(0, named=True)
    same = k.filter(pl.col("short") == short)
    notes: list[str] = []
    pids = same["pid"].unique().drop_nulls().to_list()
    if len(pids) > 1 and first.get("pid") is not None:
        same = same.filter(pl.col("pid") == first["pid"])
        notes.append(f"counted in process {first['pid']} only; ncu counts the launches of every process it follows")
    before = same.filter(
        (pl.col("_t") < first["_t"]) | ((pl.col("_t") == first["_t"]) & (pl.col("start") < first["start"]))
    )
    n = before.height
    regex = "regex:^" + re.escape(short) + "$"
    opts = ["ncu"]
    if capture.get("capture_range") == "cudaProfilerApi":
        opts += ["--profile-from-start", "off"]
        notes.append("the trace starts at cudaProfilerStart: with --profile-from-start off ncu also counts from there")
    elif capture.get("start_delay_ms"):
        notes.append(
            f"the capture started {capture['start_delay_ms']} ms after launch: launches before it are not in the "
            "trace, so the skip count is too small by those"
        )
    opts += ["--kernel-name", regex, "--launch-skip", str(n), "--launch-count", "1", "--set", "full"]
    opts += ["-o", _ncu_name(short)]
    head = shlex.join(opts)
    if argv:
        program, recorded = shlex.join(argv), True
    elif command:
        program, recorded = command, True
    else:
        program, recorded = "<your command line>", False
    label = str(kernel.get("label") or short)
    why = (
        f"profiles one instance of {label}, the first in the analysis window (at {int(first['start']) / 1e9:.6f} s): "
        f"--launch-skip {n} skips the {n} launches of kernels named {short} before it (loading and warm-up "
        "included); --set full replays it many times to collect every section"
    )
    if not recorded:
        why += "; the trace does not record the command line: put the program and its arguments after --"
    if notes:
        why += "; " + "; ".join(notes)
    return [
        {
            "what": f"profile the target kernel {label} with Nsight Compute",
            "tool": "ncu",
            "command": f"{head} -- {program}",
            "cwd": cwd,
            "kernel": name,
            "base_name": short,
            "launch_skip": n,
            "command_recorded": recorded,
            "why": why,
        }
    ]


def describe_memory(mem: dict[str, object]) -> list[str]:
    """Lines for the text renderers."""
    b = {k: format_bytes(v) if isinstance(v, int) else "-" for k, v in mem.items() if k.endswith("bytes")}
    when = (
        "before the capture (nsys dates earlier allocations at time 0)"
        if int(mem["peak_at_ns"]) <= 0  # type: ignore[call-overload]
        else f"at {int(mem['peak_at_ns']) / 1e9:.3f} s"  # type: ignore[call-overload]
    )
    total = f" of {b['gpu_total_bytes']}" if mem.get("gpu_total_bytes") else ""
    lines = [
        f"in use at the window's start {b['in_use_at_window_start_bytes']}, at its end "
        f"{b['in_use_at_window_end_bytes']} (peak in the window {b['peak_in_window_bytes']}); peak of the trace "
        f"{b['peak_bytes']}{total}, {when}; {mem['allocations_in_window']} allocations and {mem['frees_in_window']} "
        "frees in the window"
    ]
    g = mem.get("steps")
    if isinstance(g, dict):
        lines.append(
            f"over {g['steps']} steps: {format_bytes(g['first_bytes'])} to {format_bytes(g['last_bytes'])} "
            f"({'+' if g['growth_bytes'] >= 0 else ''}{format_bytes(g['growth_bytes'])}), growing in "
            f"{g['steps_growing']} steps, shrinking in {g['steps_shrinking']}"
        )
    reqs = mem.get("requests")
    if isinstance(reqs, list) and reqs:
        parts = [
            f"#{r['index']}{' (warm-up)' if r.get('warmup') else ''} peak {format_bytes(r['peak_bytes'])}, "
            f"{'+' if r['growth_bytes'] >= 0 else ''}{format_bytes(r['growth_bytes'])}"
            for r in reqs[:8]
        ]
        lines.append("per request: " + "; ".join(parts) + (f"; and {len(reqs) - 8} more" if len(reqs) > 8 else ""))
    return lines


def describe_callsite(s: dict[str, object], frames: int = 3) -> str:
    """One line per call site: the API, how often and how long, and its path (the first ``frames`` application
    frames, then the frame where the program entered native code)."""
    path = [str(p) for p in s.get("path") or []]  # type: ignore[union-attr]
    if len(path) > frames + 1:
        path = [*path[:frames], "...", path[-1]]
    text = " <- ".join(path) or "(no application frame)"
    return f"{s['api']} x{s['count']} ({format_ns(s['total_ns'])} in all, max {format_ns(s['max_ns'])}): {text}"  # type: ignore[arg-type]
