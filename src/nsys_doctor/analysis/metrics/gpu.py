"""GPU metrics per kernel and family: samples inside kernels, rates fitted by time share, the verdict."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from ..distribution import inside as inside  # the metrics' name for it (samples inside kernels)
from ..phases import Window

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
    target: Mapping[str, object],
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
    step_means: list[tuple[str, int, dict[str, float | None]]] = []  # kind, samples, means of each step
    for r in st.iter_rows(named=True):
        m = (ts >= r["gpu_start"]) & (ts < r["gpu_end"])
        means = _means(values, m)
        step_means.append((str(r["kind"]), int(m.sum()), means))
        per_step.append({"idx": r["idx"], "kind": r["kind"], "samples": int(m.sum()), **means})
    out["per_step"] = per_step
    by_kind: dict[str, object] = {}
    for kind in sorted({kd for kd, _, _ in step_means}):
        rows = [(n, means) for kd, n, means in step_means if kd == kind and n]
        if rows:
            by_kind[kind] = {
                "steps": len(rows),
                "samples_per_step_p50": float(np.median([float(n) for n, _ in rows])),
                **{
                    k: _r(float(np.median(v)))
                    for k in METRIC_KEYS
                    if (v := [x for _, means in rows if (x := means[k]) is not None])
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
        fit = fitted.get(name)
        time_in, wr, er = fit if fit is not None else (None, None, None)
        kernel_rows.append(
            {
                "name": name,
                "label": r.get("label"),
                "family": r.get("family"),
                "samples_inside": int(hit.sum()),
                "inside_mean": _means(values, hit),
                "time_in_samples": _r(time_in, 2),
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
    listed = r["name"]
    names = [str(n) for n in listed] if isinstance(listed, list) else []
    wr: dict[str, float | None] = {}
    er: dict[str, float | None] = {}
    shares: dict[str, float] = {}
    for key in METRIC_KEYS:
        parts: list[tuple[float, float, float | None]] = [
            (fitted[n][0], v, fitted[n][2][key]) for n in names if n in fitted and (v := fitted[n][1][key]) is not None
        ]
        w = sum(c for c, _, _ in parts)
        shares[key] = w / cover if cover > 0 else 0.0
        if parts and w > 0 and shares[key] >= 0.5:
            wr[key] = _r(sum(c * v for c, v, _ in parts) / w)
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
    target: Mapping[str, object],
    families: list[dict[str, object]],
    period: int,
    samples: int,
    r2: dict[str, float | None],
) -> dict[str, object] | None:
    """For the target family: DRAM throughput while it runs, and whether that says memory-bound."""
    fam = target.get("family")
    if target.get("kind") != "family" or fam is None:
        return None
    row = next((f for f in families if f["family"] == fam), None)
    w = None if row is None else row.get("while_running")
    if not isinstance(w, dict):
        return None
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
