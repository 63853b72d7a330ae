"""Findings from the tables: launch-bound runs, syncs and allocations in the API table, kernel tails."""

from __future__ import annotations

import re

from ...trace.pasted import PastedText
from ...units import format_ns
from ..findings import SEVERITY_ORDER, Finding, is_tail_outlier
from .tables import API_GROUPS, first_table, num

LAUNCH_BOUND_MIN_LAUNCHES = 100
# Launch calls take as long as the kernels run: the host issues kernels no faster than the GPU finishes them, so
# the GPU waits between kernels. Measured on the shared traces: eager decode 2.3, graphed decode 0.03, prefill 0.5.
LAUNCH_BOUND_RATIO = 1.0
LAUNCH_BOUND_CRITICAL = 1.5
SYNC_MIN = 10  # sync calls in a run before they are worth a finding
SYNC_WARN = 50
ALLOC_MIN = 10
ALLOC_WARN = 1000


WHOLE_RUN = "the tables cover the whole run, so this may include start-up"
IN_WINDOW = "the tables cover a window (a filter or capture range is in the text), not the whole run"
NEVER = 1 << 62
GROUP_FINDINGS = (  # API group, finding id, what the calls are, calls for a finding, calls for a warning
    ("sync_memcpy", "sync-memcpy", "synchronous calls", 1, SYNC_MIN),
    ("sync_memset", "sync-memset", "synchronous calls", 1, SYNC_MIN),
    ("allocations", "alloc-churn", "allocation calls", ALLOC_MIN, ALLOC_WARN),
    # module loading is a problem *inside* inference, which a summary cannot show: never more than info
    ("module_loads", "module-loading-in-window", "module loads", 1, NEVER),
)


def _api_findings(
    api: dict[str, object],
    kernel_ns: float,
    kernel_avg: float | None,
    steps: dict[str, object] | None = None,
    kernel_complete: bool = True,
) -> list[Finding]:
    """Findings from the CUDA API table. Counts from a partial table are lower bounds ("at least"); the launch ratio
    needs the whole kernel time, so a partial kernel table gives no launch-bound conclusion."""
    out: list[Finding] = []
    if not api:
        return out
    least = "" if api.get("complete", True) else "at least "

    def grp(key: str) -> dict:
        return api[key]  # type: ignore[return-value]

    launches = int(api["kernel_launches"])  # type: ignore[call-overload]
    launch_ns = float(api["kernel_launch_ns"])  # type: ignore[arg-type]
    n_steps = int(steps["count"] or 0) if steps else 0  # type: ignore[call-overload]
    step_note = f" ({launches / n_steps:,.0f} per `{steps['name']}` range)" if steps and n_steps else ""
    if (
        kernel_complete
        and launches >= LAUNCH_BOUND_MIN_LAUNCHES
        and kernel_ns > 0
        and launch_ns >= LAUNCH_BOUND_RATIO * kernel_ns
    ):
        ratio = launch_ns / kernel_ns
        out.append(
            Finding(
                "launch-bound",
                "critical" if ratio >= LAUNCH_BOUND_CRITICAL else "warning",
                f"{least}{launches:,} kernel launches{step_note} took {format_ns(launch_ns)} on the host, "
                f"{100 * ratio:.0f}% of the "
                f"{format_ns(kernel_ns)} the kernels ran on the GPU (average kernel {format_ns(kernel_avg)}, "
                f"average launch {format_ns(launch_ns / launches)}): the GPU waits for the host between kernels",
                {
                    "kernel_launches": launches,
                    "launch_api_ns": launch_ns,
                    "kernel_time_ns": kernel_ns,
                    "launch_to_kernel_time": round(ratio, 3),
                    "avg_kernel_ns": kernel_avg,
                },
                # the GPU cannot finish before the host has issued the last launch: at least this much idle time
                cost_ns=int(launch_ns - kernel_ns),
            )
        )
    scope = WHOLE_RUN if api.get("whole_run", True) else IN_WINDOW
    s = grp("syncs")
    if s["count"] >= SYNC_MIN:
        names = ", ".join(f"{k} x{v:,}" for k, v in s["by_name"].items())
        per = f", one per {launches / s['count']:,.0f} kernel launches" if launches >= 2 * s["count"] else ""
        if steps and n_steps:
            per += f", {s['count'] / n_steps:.1f} per `{steps['name']}` range"
        out.append(
            Finding(
                "host-sync-in-inference",
                "warning" if s["count"] >= SYNC_WARN else "info",
                f"{least}{s['count']:,} host synchronizations ({format_ns(s['total_ns'])} blocked{per}): {names}; "
                + scope,
                {"syncs": s["count"], "total_ns": s["total_ns"], "by_name": s["by_name"], "kernel_launches": launches},
            )
        )
    for key, fid, what, minimum, warn in GROUP_FINDINGS:
        g = grp(key)
        if g["count"] < minimum:
            continue
        share = f", {100 * (g['share_of_api_time'] or 0):.1f}% of CUDA API time" if key == "module_loads" else ""
        out.append(
            Finding(
                fid,
                "warning" if g["count"] >= warn else "info",
                f"{least}{g['count']:,} {what} ({format_ns(g['total_ns'])}{share}): "
                + ", ".join(f"{k} x{v:,}" for k, v in g["by_name"].items())
                + f"; {scope}",
                {"count": g["count"], "total_ns": g["total_ns"], "by_name": g["by_name"]},
            )
        )
    return out


def tail_findings(kernels: list[dict[str, object]]) -> list[Finding]:
    hits = []
    for r in kernels:
        med, mx, n = num(r["med_ns"]) or num(r["avg_ns"]), num(r["max_ns"]), num(r["count"])
        if med and mx and n and is_tail_outlier(n, med, mx):
            hits.append((mx - med, r, med, mx))
    if not hits:
        return []
    hits.sort(key=lambda h: (-h[0], str(h[1]["name"])))
    items = [
        f"{r['label']}: max {format_ns(mx)} vs median {format_ns(med)} ({mx / med:.0f}x)" for _, r, med, mx in hits[:3]
    ]
    return [
        Finding(
            "tail-outlier",
            "info",
            "; ".join(items)
            + " (a summary has only min/median/max: how often the slow instances occur needs the trace)",
            {"kernels": [{"name": r["name"], "med_ns": med, "max_ns": mx} for _, r, med, mx in hits[:3]]},
        )
    ]


def explain_findings(
    parsed: PastedText,
    api: dict[str, object],
    memory: dict[str, object],
    graphs: dict[str, object],
    kernels_all: list[dict[str, object]],
    kernel_ns: float,
    instances: float,
    nvtx: dict[str, object],
    kernel_complete: bool,
) -> list[Finding]:
    out: list[Finding] = []
    if graphs.get("inferred_trace") == "graph":
        out.append(
            Finding(
                "graph-trace-not-node",
                "critical",
                f"{graphs['graph_launch_calls']:,} CUDA graph launches, but {graphs['why']}: the capture recorded "
                "graphs as single blocks (--cuda-graph-trace=graph), so the kernel shares describe only the kernels "
                "launched outside graphs",
                {k: graphs[k] for k in ("graph_launch_calls", "kernel_launch_calls", "kernel_instances")}
                | {"flag": "--cuda-graph-trace=node"},
            )
        )
    avg = kernel_ns / instances if instances else None
    out += _api_findings(api, kernel_ns, avg, nvtx.get("steps"), kernel_complete)  # type: ignore[arg-type]
    if not api:
        out += _exec_launch_bound(parsed)
    pageable = memory.get("pageable") if memory else None
    if isinstance(pageable, dict) and pageable["copies"]:
        out.append(
            Finding(
                "pageable-memcpy",
                "warning",
                f"{'at least ' if pageable.get('at_least') else ''}{pageable['copies']:,} copies from pageable host "
                f"memory ({pageable['source']})",
                dict(pageable),
            )
        )
    out += tail_findings(kernels_all)
    dropped = [n for n in parsed.notes if re.search(r"might have been collected|dropped|lost", n, re.IGNORECASE)]
    if dropped:
        out.append(Finding("profiler-dropped-data", "info", "; ".join(dropped[:3]), {"messages": dropped}))
    out.sort(key=lambda f: (SEVERITY_ORDER[f.severity], 0 if f.id == "graph-trace-not-node" else 1))
    return out


def _exec_launch_bound(parsed: PastedText) -> list[Finding]:
    """Without an API table, the launch & exec summary still has the launch call time (A) and kernel time (K)."""
    ex = first_table(parsed, "kern_exec")
    if ex is None or ex.partial:  # the ratio of the rows shown says nothing about the kernels not shown
        return []
    launches = sum(num(r.get("count")) or 0 for r in ex.rows)
    api_ns = sum((num(r.get("count")) or 0) * (num(r.get("a_avg_ns")) or 0) for r in ex.rows)
    kern_ns = sum((num(r.get("count")) or 0) * (num(r.get("k_avg_ns")) or 0) for r in ex.rows)
    api: dict[str, object] = {
        "kernel_launches": int(launches),
        "kernel_launch_ns": api_ns,
        **{k: {"count": 0, "total_ns": 0, "by_name": {}, "share_of_api_time": None} for k in API_GROUPS},
    }
    return [f for f in _api_findings(api, kern_ns, kern_ns / launches if launches else None) if f.id == "launch-bound"]
