"""What the text cannot tell (tails, steps, idle time), with the capture that would answer it."""

from __future__ import annotations

from ...trace.pasted import PastedTable, PastedText
from .findings import LAUNCH_BOUND_MIN_LAUNCHES
from .tables import as_dict

CAPTURE = "nsys profile --trace=cuda,nvtx,osrt --cuda-graph-trace=node --export=sqlite -o run <your command>"


INTERPRETED = ("kernels", "api", "mem_time", "mem_size", "kern_exec", "nvtx", "gpu_sum", "gpu_trace", "pageable_copies")
"""Kinds of table explain draws conclusions from (``other`` tables are listed, not interpreted)."""


def partial_why(t: PastedTable) -> str:
    """Why a table is marked partial, in a few words."""
    if t.layout == "headerless":
        return "rows without their header"
    share = sum(float(v) for v in t.values("share") if isinstance(v, int | float))
    if t.has("share") and share < 99.5:
        return f"its shares add up to {share:.1f}%"
    if any("could not" in i or "cells for" in i or "not numbers" in i for i in t.issues):
        return "some rows could not be read"
    return "rows cut with ..."


def what_cannot_tell(
    parsed: PastedText,
    kernel_table: PastedTable | None,
    api: dict[str, object],
    memory: dict[str, object],
    graphs: dict[str, object],
    nccl: dict[str, object],
    nvtx: dict[str, object],
) -> list[str]:
    steps = "only NVTX range totals for steps" if nvtx.get("steps") else "no decode steps"
    out = [
        f"Tails, steps and idle time: a summary has no percentiles (only min/median/max per kernel), {steps} and no "
        "GPU idle time between kernels. Capture a trace and run `nsys-doctor report run.sqlite`: "
        f"`{CAPTURE}`",
    ]
    counts = {k: api[k]["count"] for k in ("syncs", "allocations", "module_loads", "sync_memcpy")} if api else {}  # type: ignore[index]
    present = [k.replace("_", " ") for k, v in counts.items() if v]
    if present:
        listed = present[0] if len(present) == 1 else ", ".join(present[:-1]) + " and " + present[-1]
        out.append(
            f"Whether the {listed} happen inside the inference loop or at start-up: the tables cover the "
            "whole run. Capture only steady-state inference (`--capture-range=cudaProfilerApi` with "
            "cudaProfilerStart/Stop around the decode loop), or add NVTX ranges and use "
            "`nsys stats --filter-nvtx RANGE`"
        )
    if kernel_table is None:
        out.append("Which kernels take the GPU time: paste `nsys stats -r cuda_gpu_kern_sum REPORT.nsys-rep`")
    if not api:
        out.append(
            "Host overhead (launches, syncs, allocations, graphs): paste `nsys stats -r cuda_api_sum REPORT.nsys-rep`"
        )
    if not memory:
        out.append("Memory copies: paste `nsys stats -r cuda_gpu_mem_time_sum,cuda_gpu_mem_size_sum REPORT.nsys-rep`")
    elif memory.get("pageable") is None and any(d in as_dict(memory.get("by_direction")) for d in ("htod", "dtoh")):
        out.append(
            "Whether copies use pageable host memory (staged and synchronous): run `nsys analyze -r "
            "cuda_memcpy_async REPORT.nsys-rep`, or look at SrcMemKd/DstMemKd in `nsys stats -r cuda_gpu_trace`"
        )
    if graphs.get("graph_launch_calls") and graphs.get("inferred_trace") is None:
        out.append(
            "Whether the kernels inside CUDA graphs are in the kernel table: recapture with --cuda-graph-trace=node "
            "to be sure they are"
        )
    if kernel_table is not None and kernel_table.clipped_names:
        out.append(
            f"The full names of kernels cut at 100 characters ({kernel_table.clipped_names} in the table): "
            "`nsys stats --format csv -r cuda_gpu_kern_sum` prints them whole (the family is read from the visible "
            "part)"
        )
    for t in parsed.tables:
        if t.partial and t.kind in INTERPRETED:
            out.append(
                f"Rows missing from the {t.report or t.kind} table at line {t.line} ({partial_why(t)}): "
                + ("only the rows shown are ranked" if t.has("share") else "shares are of the rows shown only")
                + ", and nothing is concluded from what the rows shown lack; paste the whole table"
            )
    launches = int(api.get("kernel_launches") or 0) if api else 0  # type: ignore[call-overload]
    if launches >= LAUNCH_BOUND_MIN_LAUNCHES and kernel_table is not None and kernel_table.partial:
        out.append(
            f"Whether kernel launches hold the GPU back: the kernel table is partial, so the kernel time to compare "
            f"the {launches:,} launch calls with is unknown; paste the whole `cuda_gpu_kern_sum`"
        )
    if graphs and not graphs.get("graph_launch_calls") and not graphs.get("complete"):
        out.append(
            "Whether CUDA graphs are used: no cudaGraphLaunch in the rows shown, but the CUDA API table is partial"
        )
    look = memory.get("copies_look_like") if memory else None
    if look in ("loading", "unknown") and memory.get("by_direction"):
        out.append(
            f"Whether the copies happen once (loading) or in every step: {memory['copies_why']}. Capture only "
            "steady-state inference (`--capture-range=cudaProfilerApi`) or use `nsys stats --filter-nvtx RANGE` to "
            "see the copies inside steps"
        )
    if nccl:
        out.append(
            "Rank skew and how much communication overlaps compute: needs a trace per rank "
            "(`nsys profile -o rank_%q{RANK} ...`, then `nsys-doctor report` on each)"
        )
    return out
