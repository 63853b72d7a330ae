"""Device memory: the watermark, its timeline and growth across decode steps, and the sentence for it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from ...trace.metrics import DEVICE_MEM_KINDS
from ...units import format_bytes
from ..distribution import scalar_int
from ..findings import Finding
from ..phases import Window

# device memory
GROWTH_WARNING = 0.10  # growth across decode steps as a share of the peak: warning from here, info below
MAX_TIMELINE_POINTS = 400


def number(v: object) -> int | float | None:
    """A value of a section's dict when it is a number (for the formatters), else None."""
    return v if isinstance(v, int | float) else None


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
    step_ends: list[tuple[int, str, int]] = []  # idx, kind, in use at the step's end
    if ends is not None and ends.size:
        at_end = _in_use_at(t, level, ends)
        step_ends = [
            (int(i), str(kd), int(b))
            for i, kd, b in zip(st["idx"].to_list(), st["kind"].to_list(), at_end.tolist(), strict=True)
        ]
    out["per_step"] = [{"idx": i, "kind": kd, "end_bytes": b} for i, kd, b in step_ends]
    rep = [b for _, kd, b in step_ends if kd == "decode"] or [b for _, kd, b in step_ends if kd != "prefill"]
    growth: dict[str, object] | None = None
    if len(rep) >= 2:
        lv = np.array(rep)
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
        a, b = scalar_int(r["start"]), scalar_int(r["end"])
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
    peak = scalar_int(mem["peak_bytes"])
    grows = growth is not None and bool(growth["monotonic"]) and scalar_int(growth["growth_bytes"]) > 0
    if not grows and not fails.height:
        return None
    parts = []
    evidence: dict[str, object] = {"peak_bytes": peak, "gpu_total_bytes": mem.get("gpu_total_bytes")}
    share = 0.0
    if grows and growth is not None:
        g = scalar_int(growth["growth_bytes"])
        share = g / peak if peak > 0 else 0.0
        first_b, last_b = format_bytes(number(growth["first_bytes"])), format_bytes(number(growth["last_bytes"]))
        parts.append(
            f"device memory in use grows by {format_bytes(g)} over {growth['steps']} {step_word}s "
            f"({first_b} to {last_b}; it grows in "
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


def describe_memory(mem: dict[str, object]) -> list[str]:
    """Lines for the text renderers."""
    b = {k: format_bytes(v) if isinstance(v, int) else "-" for k, v in mem.items() if k.endswith("bytes")}
    when = (
        "before the capture (nsys dates earlier allocations at time 0)"
        if scalar_int(mem["peak_at_ns"]) <= 0
        else f"at {scalar_int(mem['peak_at_ns']) / 1e9:.3f} s"
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
