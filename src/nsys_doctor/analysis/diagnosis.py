"""``diagnose``: where GPU time goes in the inference window, what is wrong, and what to do next.

Pure function: in-memory tables in, a ``Diagnosis`` out (renderers turn it into terminal, Markdown or JSON).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

import numpy as np
import polars as pl

from ..trace.schema import GRID
from ..units import format_ns
from .distribution import (
    PACKED_GRID,
    decode_texts,
    pack_grid,
    packable_grid,
    packed_widths,
    percentile,
    ratio,
    row_chunks,
    scalar_int,
    sorted_unique,
    tail_table,
    tail_tables,
    text_codes,
    unpack_ints,
)
from .findings import HOST_CAUSES, Facts, Finding, run_rules
from .host import HostSummary, busy_intervals_of, summarize_host
from .ops import OpRule, classify, label_frame
from .phases import (
    GRAPH_LAUNCH_API,
    Steps,
    Window,
    analyze_structure,
    assign_to_steps,
    calls,
    launch_blocks,
    launched_kernels,
    window_and_steps,
)
from .refine import refine_ops
from .structure import RunStructure

FAMILY_ADVICE: dict[str, str] = {
    "gemv": "GEMV (decode linear layers) dominates: it is memory-bound, so compare achieved bandwidth per shape "
    "with the GPU's peak (weight bytes / kernel time). Near the peak only fewer bytes help (quantization, "
    "batching); well below it, microbenchmark the top shapes against a tuned GEMV kernel",
    "gemm": "GEMM dominates: it is compute-bound at these sizes; check achieved TFLOP/s per shape against the "
    "GPU's dense peak, try other tile configurations or FP8",
    "attention-decode": "decode attention dominates: check it grows only with context length, use a paged / "
    "split-KV decode kernel and keep the KV cache layout contiguous",
    "attention-prefill": "prefill attention dominates: use a flash-attention kernel for the GPU generation "
    "(FA3 / cuDNN SDPA on Hopper)",
    "attention": "attention dominates: check how it scales with context and use a fused (flash / paged) kernel",
    "elementwise": "many small elementwise kernels: fuse them (RMSNorm+residual, SiLU*mul, RoPE, casts) into "
    "neighbouring kernels or with a compiler",
    "norm": "normalization kernels are heavy: fuse the residual add and the norm, or fold the norm into the GEMM",
    "activation": "activation kernels are heavy: fuse SiLU*mul into the gate/up GEMM epilogue",
    "rope": "RoPE / QK-norm kernels are heavy: fuse them with the QKV projection or the KV-cache append",
    "kv-cache": "KV-cache writes are heavy: fuse the append with RoPE or attention, avoid copies of the cache",
    "sampling": "sampling is heavy: use a fused top-k/top-p sampling kernel and avoid a full sort over the vocab",
    "embedding": "embedding lookups are heavy: check for gathers over the whole table",
    "communication": "communication dominates: overlap collectives with compute and check rank skew",
    "memcpy": "memory copies are heavy: keep data on the GPU and avoid per-step copies",
    "memset": "memsets are heavy: avoid clearing buffers every step",
    "reduction": "reductions are heavy: fuse them into the producing kernel",
    "moe": "MoE routing/expert kernels dominate: check expert load balance and grouped-GEMM efficiency",
    "conv": "convolutions dominate: check they run on the tensor cores (FP16/BF16 or INT8 kernels, not FP32 ones "
    "such as *_scudnn_* or implicit_convolve_sgemm) with channels-last (NHWC) tensors, let cuDNN pick the fastest "
    "algorithm for fixed shapes (torch.backends.cudnn.benchmark = True; TensorRT picks its tactics when it builds "
    "the engine), and fold batch norm and the activation into the convolution",
}


class Target(TypedDict, total=False):
    """What to work on first: the ``diagnosis`` section of the report JSON (docs/report-json.md)."""

    kind: str  # family (a family to tune), recapture (the trace cannot tell); explain also: need-data
    why: str
    flag: str  # recapture: the nsys flag to capture again with
    family: str
    category: str
    share: float
    host_first: str  # a host finding that costs more GPU idle time than the whole top family takes
    host_cost_ns: int
    measured: str  # with GPU metrics: what the target family does to the GPU
    waiting_for_rank: int  # a rank set: this rank's collectives wait for that (late) rank
    kernel_table_partial: bool  # explain: the pasted kernel table is cut short
    copies: dict[str, object]  # explain: memory copies take a large share of GPU time


@dataclass(frozen=True)
class Diagnosis:
    trace: dict[str, object]
    window: Window
    steps: Steps
    step_summary: dict[str, object]
    kernels: pl.DataFrame  # top kernels in the window
    families: pl.DataFrame
    unmapped: tuple[str, ...]
    kernel_tails: pl.DataFrame
    base_tails: pl.DataFrame
    grid_tails: pl.DataFrame
    api_tails: pl.DataFrame
    host: HostSummary
    findings: tuple[Finding, ...]
    target: Target
    next_actions: tuple[str, ...]
    notes: tuple[str, ...] = ()
    run: dict[str, object] = field(default_factory=dict)  # the run's structure (run_summary)
    roofline: dict[str, object] | None = None  # report --model: the roofline result (analysis/roofline/)
    timing: dict[str, object] | None = None  # unprofiled vs traced timing from the capture record
    # measured by optional capture data (analysis/metrics/, docs/metrics.md): None when the trace lacks it
    gpu_metrics: dict[str, object] | None = None  # --gpu-metrics-devices
    memory: dict[str, object] | None = None  # --cuda-memory-usage=true
    callchains: dict[str, object] | None = None  # --cudabacktrace
    next_commands: tuple[dict[str, object], ...] = ()  # runnable commands (ncu on the target)
    # every kernel name of the window with its family, category and label (not part of the JSON)
    kernel_families: pl.DataFrame | None = None

    def with_findings(self, extra: Sequence[Finding]) -> Diagnosis:
        """This diagnosis with findings from another analysis (roofline, ranks, measurements): merged in severity
        order, their actions appended."""
        from .findings import rank_key

        actions = list(self.next_actions)
        for f in extra:
            text = f"{f.title}: {f.action}."
            if f.severity in ("critical", "warning") and text not in actions:
                actions.append(text)
        findings = tuple(sorted([*self.findings, *extra], key=rank_key))
        return replace(self, findings=findings, next_actions=tuple(actions))

    def with_note(self, note: str) -> Diagnosis:
        return replace(self, notes=(*self.notes, note))

    def to_dict(self) -> dict[str, object]:
        """The JSON payload of `report` (docs/report-json.md); report/serialize.py adds the envelope."""
        return {
            "trace": self.trace,
            "run": self.run,
            "window": self.window.to_dict(),
            "steps": {**self.step_summary, "per_step": self.steps.table.to_dicts()},
            "kernels": self.kernels.to_dicts(),
            "families": self.families.to_dicts(),
            "unmapped_kernels": self.unmapped,
            "tails": {
                "kernels": self.kernel_tails.to_dicts(),
                "kernels_by_base_name": self.base_tails.to_dicts(),
                "kernels_by_grid": self.grid_tails.to_dicts(),
                "api": self.api_tails.to_dicts(),
            },
            "host": self.host.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
            "diagnosis": self.target,
            "next_actions": self.next_actions,
            "notes": self.notes,
            "roofline": self.roofline,
            "timing": self.timing,
            "next_commands": self.next_commands,
            "gpu_metrics": self.gpu_metrics,
            "memory": self.memory,
            "callchains": self.callchains,
        }


def _dist(values: list[int]) -> dict[str, int | float | None]:
    return {f"p{p}_ns": percentile(values, p) for p in (50, 95, 99)} | {"max_ns": max(values) if values else None}


def summarize_steps(steps: Steps, run_kind: str = "llm-decode") -> dict[str, object]:
    t = steps.table
    out: dict[str, object] = {"source": steps.source, "count": t.height, "notes": steps.notes}
    for kind in ("prefill", "decode", "iteration", "step"):
        k = t.filter(pl.col("kind") == kind)
        if k.is_empty():
            continue
        # the GPU's step period (end of one step's kernels to the end of the next): what a token costs when
        # the host runs ahead of the GPU, as in graphed decode where the host step time says little
        ends = k.sort("idx")["gpu_end"].drop_nulls()
        periods = [int(v) for v in ends.diff().drop_nulls().to_list() if v > 0]
        out[kind] = {
            "count": k.height,
            "gpu_time": _dist(k["gpu_time"].to_list()),
            "step_time": _dist(k["wall"].to_list()),
            "gpu_period": _dist(periods),
            "kernels_per_step_p50": percentile(k["kernels"].to_list(), 50),
            "launches_per_step_p50": percentile(k["launches"].to_list(), 50),
        }
    out["warning"] = "step times come from the traced run and are stretched by the profiler; quote " + (
        "unprofiled numbers for latency (TPOT)" if run_kind == "llm-decode" else "unprofiled numbers for latency"
    )
    return out


def _grid_str(gx: object, gy: object, gz: object) -> str:
    return f"{gx}x{gy}x{gz}"


def _grid_text(prefix: str = "") -> pl.Expr:
    return pl.concat_str([pl.col(f"{prefix}{g}") for g in GRID], separator="x")


def kernel_tails(
    kw: pl.DataFrame, t: pl.DataFrame | None = None, grid_table: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Tails per full kernel name, with the typical grid and the grid of the slowest instance.

    ``t`` is ``tail_table(kw, ["name", ...])`` and ``grid_table`` is ``tail_table(kw, ["name", *GRID])`` when the
    caller already has them."""
    t = tail_table(kw, ["name"]) if t is None else t
    if t.is_empty():
        return t.with_columns(
            pl.lit(None, pl.Utf8).alias("typical_grid"),
            pl.lit(None, pl.Utf8).alias("tail_grid"),
            pl.lit(None, pl.UInt32).alias("grids"),
        )
    g = tail_table(kw, ["name", *GRID]) if grid_table is None else grid_table
    by_grid = g.select("name", *GRID, pl.col("count").alias("n"), pl.col("max").alias("gmax"))
    # ties broken by the grid itself, so the same trace always gives the same typical and tail grid
    typical = (
        by_grid.sort(["n", *GRID], descending=[True, False, False, False])
        .unique("name", keep="first", maintain_order=True)
        .select("name", _grid_text().alias("typical_grid"))
    )
    slowest = (
        by_grid.sort(["gmax", *GRID], descending=[True, False, False, False])
        .unique("name", keep="first", maintain_order=True)
        .select("name", _grid_text().alias("tail_grid"))
    )
    n_grids = by_grid.group_by("name").agg(pl.len().cast(pl.UInt32).alias("grids"))
    return (
        t.join(typical, on="name", how="left")
        .join(slowest, on="name", how="left")
        .join(n_grids, on="name", how="left")
        .sort(["tail_score", "name"], descending=[True, False])
    )


def diagnose(
    kernels: pl.DataFrame,
    api: pl.DataFrame,
    memcpy: pl.DataFrame,
    gpu_parts: Mapping[str, pl.DataFrame],
    nvtx: pl.DataFrame,
    graph_launch_rows: int,
    capture: dict[str, object],
    diagnostics: list[str],
    overhead: pl.DataFrame,
    trace_info: dict[str, object],
    rules: list[OpRule],
    window: Window | None = None,
    top: int = 10,
    structure: RunStructure | None = None,
    request: int | None = None,
    prepared: tuple[RunStructure, Window, Steps, pl.DataFrame] | None = None,
) -> Diagnosis:
    """The diagnosis of one trace's window. ``prepared`` is the run's (structure, window, steps, launched kernels)
    when the caller already has them (a ``TraceSession``); else they are found here."""
    cr = capture.get("capture_range")
    capture_range = cr if isinstance(cr, str) else None
    if prepared is not None:
        structure, w, steps, lk = prepared
    elif structure is None:
        lk = launched_kernels(kernels, api)
        structure, w, steps = analyze_structure(
            kernels,
            api,
            memcpy,
            nvtx,
            capture_range,
            rules,
            window,
            lk,
            request=request,
        )
    else:
        lk = launched_kernels(kernels, api)
        w, steps = window_and_steps(kernels, api, memcpy, nvtx, capture_range, structure, window, lk, request)
    kw = w.rows(kernels)
    lkw = w.rows(lk)  # the window's kernels with their launches
    total = int(kw["dur"].sum()) if kw.height else 0
    n_decode = steps.table.filter(pl.col("kind") != "prefill").height
    n_steps = n_decode + steps.table.filter(pl.col("kind") == "prefill").height
    # names: one row per distinct kernel name, with its operation and label (joined onto small tables only)
    # (the first row of each name, found by its code: grouping millions of rows by the names would hash them;
    # the same codes give the tails by name below)
    kw_codes, kw_texts = text_codes(kw["name"])
    first = kw_codes.arg_unique()
    names = pl.DataFrame([kw["name"].gather(first), kw["short"].gather(first)]).cast(pl.String)
    ops = classify(names["name"].to_list(), rules, short_names=names["short"].to_list())
    # kernel identity from where each kernel runs (per-layer top-k = MoE router, attention phase from its steps; no
    # sampling in a training step)
    ops = refine_ops(ops, lkw, steps.table, training=structure.training)
    names = label_frame(names.join(ops.select("name", "family", "category", "op", "match"), on="name", how="left"))
    kw_name_tails = tail_tables(kw.with_columns(kw_codes), [["name"]], coded={"name": kw_texts})[0]
    del kw_codes  # a column of millions of rows: not held through the host's passes
    per_kernel = kw_name_tails.join(names, on="name", how="left")
    per_kernel = per_kernel.with_columns(ratio(per_kernel["total"], max(total, 1), "share")).sort(
        ["total", "name"], descending=[True, False]
    )
    fam = per_kernel.group_by("family", "category").agg(
        pl.col("total").sum(), pl.col("count").sum().alias("count"), pl.len().alias("kernels")
    )
    fam = fam.with_columns(
        ratio(fam["total"], max(total, 1), "share"), ratio(fam["total"], max(n_steps, 1), "per_step_ns")
    ).sort(["total", "family", "category"], descending=[True, False, False])
    # GPU time is kernels plus copies plus memsets: a copy-bound run must lead with its copies
    in_w = [
        (kind, f.filter((pl.col("start") >= w.start) & (pl.col("start") <= w.end)))
        for kind in ("memcpy", "memset")
        if (f := gpu_parts.get(kind)) is not None
    ]
    mem = [(kind, int((f["end"] - f["start"]).sum()), f.height) for kind, f in in_w if f.height]
    if mem:
        mem_rows = pl.DataFrame(
            {
                "family": [kind for kind, _, _ in mem],
                "total": [t for _, t, _ in mem],
                "count": [n for _, _, n in mem],
                "category": ["memcpy / memset"] * len(mem),
                "kernels": [0] * len(mem),
            },
            schema={
                "family": pl.String,
                "total": pl.Int64,
                "count": pl.UInt32,
                "category": pl.String,
                "kernels": pl.UInt32,
            },
        )
        gpu_total = total + int(mem_rows["total"].sum())
        fam = pl.concat(
            [
                fam.select("family", "category", "total", "count", "kernels"),
                mem_rows.select(
                    "family",
                    "category",
                    pl.col("total").cast(fam.schema["total"]),
                    pl.col("count").cast(fam.schema["count"]),
                    pl.col("kernels").cast(fam.schema["kernels"]),
                ),
            ]
        )
        fam = fam.with_columns(
            ratio(fam["total"], max(gpu_total, 1), "share"), ratio(fam["total"], max(n_steps, 1), "per_step_ns")
        )
        fam = fam.sort(["total", "family", "category"], descending=[True, False, False])
    # the host's side before the tails: its passes over the launched kernels and the GPU's busy time never hold
    # memory at the same time as the decode steps' kernels below; the busy time is read from each kind of GPU
    # operation in place (never a sorted copy of millions of kernels) and freed before the tails
    all_busy = busy_intervals_of(list(gpu_parts.values()))
    firsts = [scalar_int(f["start"].min()) for f in gpu_parts.values() if f.height]
    first_op = min(firsts) if firsts else 0
    del gpu_parts
    host = summarize_host(kernels, api, memcpy, all_busy, first_op, w, steps, lk)
    del all_busy
    # unmapped kernels, the most GPU time first (per_kernel is sorted by total, then name)
    unmapped = (
        per_kernel.join(ops.filter(~pl.col("mapped")).select("name"), on="name", how="semi")["name"].to_list()
        if ops.height
        else []
    )
    # tails are measured over the decode steps when there are enough of them: a prefill's instances of the same
    # kernel are other work, not a tail
    decode_ids = steps.table.filter(pl.col("kind") != "prefill").select("idx", "start", "end")
    kt = kw
    coded: dict[str, pl.Series] = {}  # the texts of kt's coded columns (none when kt is kw)
    if decode_ids.height >= 3:
        # only the columns the tails read, the names as codes: every other column of the launched kernels, and
        # the names' 16-byte views, would be copied too (millions of rows)
        (name_codes, name_texts), (short_codes, short_texts) = text_codes(lkw["name"]), text_codes(lkw["short"])
        # the grid as one packed key (8 bytes a row, not 24), and the step's time left out once the step is found
        grid = [pack_grid()] if packable_grid(lkw) else GRID
        in_decode = assign_to_steps(
            lkw.select(name_codes, short_codes, *grid, "dur", pl.coalesce("l_start", "start").alias("t")),
            decode_ids,
            "t",
        ).drop("t")
        # the step as 4 bytes a kernel before the copy of the kernels in decode steps (held through the tails below)
        in_decode = in_decode.with_columns(pl.col("idx").cast(pl.Int32))
        in_decode = in_decode.filter(pl.col("idx").is_not_null())
        del name_codes, short_codes
        if in_decode.height:
            kt, coded = in_decode, {"name": name_texts, "short": short_texts}
        del in_decode
    # the tails by name, by name and grid, by short name: one sort of the durations, each name coded once
    if kt is kw:  # the tails by name are the table above
        name_tails = kw_name_tails
        grid_table, short_tails = tail_tables(kt, [["name", *GRID], ["short"]])
    else:
        grid_types = {g: kw.schema[g] for g in GRID}  # of the grid packed in kt, if it is
        name_tails, grid_table, short_tails = tail_tables(
            kt, [["name"], ["name", *GRID], ["short"]], coded=coded, grid_types=grid_types
        )
    if kt is not kw:  # per decode step: the family time inside decode steps over their number
        per_step = (
            name_tails.select("name", "total")
            .join(names.select("name", "family"), on="name", how="left")
            .group_by("family")
            .agg(pl.col("total").sum())
        )
        per_step = per_step.select("family", ratio(per_step["total"], decode_ids.height, "per_step_ns"))
        fam = (
            fam.drop("per_step_ns")
            .join(per_step, on="family", how="left")
            .sort(["total", "family"], descending=[True, False])
        )
    ktails = kernel_tails(kt, name_tails.join(names, on="name", how="left"), grid_table)
    ktails = _slow_step_share(ktails, kt, decode_ids.height, coded.get("name"))
    grid_tails = (
        grid_table.join(names.select("name", "label"), on="name", how="left")
        .with_columns(
            _grid_text().alias("grid"),
            launch_blocks().alias("blocks"),
        )
        .drop(*GRID)
    )
    base_tails = short_tails.sort(["tail_score", "short"], descending=[True, False])
    dynamic = _dynamic_shapes(
        lkw,
        decode_ids,
        names.select("name", "label"),
        kt.select("name", PACKED_GRID if PACKED_GRID in kt.columns else GRID, "idx") if kt is not kw else None,
        coded.get("name"),
    )
    # the decode steps' kernels (a copy of millions of rows) are freed before the API calls' tails sort theirs
    del kt
    api_w = w.rows(api)
    atails = (
        tail_table(api_w, ["name"]).sort(["total", "name"], descending=[True, False])
        if api_w.height
        else tail_table(api_w, ["name"])
    )
    ovh: dict[str, int] = {}
    if overhead.height:
        o = overhead.filter((pl.col("start") >= w.start) & (pl.col("start") <= w.end))
        ovh = {str(k): int(v) for k, v in o.group_by("name").agg(pl.col("dur").sum()).iter_rows()}
    facts = Facts(
        window=w,
        steps=steps,
        host=host,
        kernel_tails=ktails,
        grid_tails=grid_tails,
        graph_mode=capture.get("cuda_graph_trace"),  # type: ignore[arg-type]
        graph_launch_rows=graph_launch_rows,
        graph_launch_calls=calls(api_w, GRAPH_LAUNCH_API, columns=["start"]).height,
        kernels_in_window=kw.height,
        kernel_time_ns=total,
        diagnostics=diagnostics,
        overhead=ovh,
        dynamic=dynamic,
        run_kind=structure.kind,
        sm_count=sms if isinstance(sms := trace_info.get("gpu_sms"), int) and sms > 0 else None,
        growing_passes=structure.growing_passes,
    )
    findings = run_rules(facts)
    target, actions = conclude(fam, findings, host, structure.kind, per_kernel, training=structure.training)
    return Diagnosis(
        trace=trace_info,
        window=w,
        steps=steps,
        step_summary=summarize_steps(steps, structure.kind),
        kernels=per_kernel.head(max(top, 1)),
        families=fam,
        unmapped=tuple(unmapped),
        kernel_tails=ktails.head(max(top, 1)),
        base_tails=base_tails.head(max(top, 1)),
        grid_tails=grid_tails.sort(["tail_score", "name", "grid"], descending=[True, False, False]).head(max(top, 1)),
        api_tails=atails.head(max(top, 1)),
        host=host,
        findings=tuple(findings),
        target=target,
        next_actions=tuple(actions),
        run=run_summary(structure, steps),
        kernel_families=names.select("name", "family", "category", "label"),
    )


def run_summary(structure: RunStructure, steps: Steps) -> dict[str, object]:
    """The ``run`` section: what kind of run this is and how its structure was found (JSON contract, see
    docs/report-json.md). Counts are those of the analyzed window's steps."""
    d = structure.to_dict()
    t = steps.table
    return {
        "kind": structure.kind,
        "requests": len(structure.measured_requests),
        "warmup_requests": len(structure.warmup_requests),
        "iterations": t.filter(pl.col("kind") == "iteration").height,
        "prefill_steps": t.filter(pl.col("kind") == "prefill").height,
        "decode_steps": t.filter(pl.col("kind") == "decode").height,
        "source": structure.source,
        "confidence": structure.confidence,
        "period_kernels": structure.period,
        "marker": structure.marker,
        "draft_passes": structure.draft_passes,
        "draft_share": structure.draft_share,
        "training": structure.training,
        "micro_batches": structure.micro_batches,
        "growing_passes": None if structure.growing_passes is None else round(structure.growing_passes, 3),
        "phases": d.get("phases"),
        "request_list": d.get("request_list"),
        "evidence": d.get("evidence"),
        "notes": d.get("notes"),
    }


def _slow_step_share(
    tails: pl.DataFrame, kt: pl.DataFrame, n_steps: int, texts: pl.Series | None = None
) -> pl.DataFrame:
    """Per kernel: the share of decode steps with an instance slower than 2x its p50 (null without steps).
    ``texts``: ``kt``'s names are ``text_codes``' codes of these texts.

    An outlier is rare (the pathology's 1-in-25 steps); a kernel slow in most steps has a systematic, bimodal cost
    (like a KV-cache copy that grows every step), not a tail."""
    if "idx" not in kt.columns or n_steps == 0 or tails.is_empty():
        return tails.with_columns(pl.lit(None, pl.Float64).alias("slow_step_share"))
    # each instance against twice its kernel's p50, looked up by name without joining (which would copy the names)
    known = tails.filter(pl.col("name").is_not_null())
    keys = known["name"]
    if texts is not None:  # the names' codes
        code_of = {t: c for c, t in enumerate(texts.to_list()) if t is not None}
        keys = pl.Series([code_of[n] for n in keys.to_list()], dtype=kt.schema["name"])
    if (
        texts is not None
        and kt.schema["name"].is_integer()
        and not kt.select("name", "idx", "dur").null_count().sum_horizontal().item()
    ):
        slow = _slow_instances(kt, keys, known["p50"])
    else:
        p50 = kt["name"].replace_strict(keys, known["p50"], default=None, return_dtype=pl.Float64)
        slow = kt.select("name", "idx").filter((kt["dur"] > 2 * p50).fill_null(False))
    slow = slow.group_by("name").agg((pl.col("idx").n_unique() / n_steps).alias("slow_step_share"))
    if texts is not None:
        slow = slow.with_columns(decode_texts(slow["name"], texts))
    return tails.join(slow, on="name", how="left").with_columns(pl.col("slow_step_share").fill_null(0.0))


def _slow_instances(kt: pl.DataFrame, codes: pl.Series, p50: pl.Series) -> pl.DataFrame:
    """The name and step (``idx``) of each instance of ``kt`` (names as codes; no null name, step or duration)
    slower than twice its name's p50 (``p50`` of the names ``codes``; a name without one has no slow instance),
    compared a chunk of instances at a time: no column of millions of thresholds, nor a copy of the frame's names
    and steps."""
    twice = np.full(max(scalar_int(kt["name"].max() or 0), scalar_int(codes.max() or 0)) + 1, np.inf)
    for code, value in zip(codes.to_list(), p50.to_list(), strict=True):
        if value is not None:
            twice[code] = 2.0 * value
    names, steps, durs = (kt[c].to_numpy() for c in ("name", "idx", "dur"))
    found_names, found_steps = [names[:0]], [steps[:0]]
    for at in row_chunks(kt.height):
        slow = durs[at] > twice[names[at]]  # as polars compares an integer with a float
        found_names.append(names[at][slow])
        found_steps.append(steps[at][slow])
    return pl.DataFrame(
        [
            pl.Series("name", np.concatenate(found_names), dtype=kt.schema["name"]),
            pl.Series("idx", np.concatenate(found_steps), dtype=kt.schema["idx"]),
        ]
    )


def _dynamic_shapes(
    lk: pl.DataFrame,
    decode: pl.DataFrame,
    labels: pl.DataFrame,
    inside: pl.DataFrame | None = None,
    texts: pl.Series | None = None,
) -> pl.DataFrame:
    """Kernels whose launch shapes change from one decode step to the next.

    Per decode step and kernel name, the set of its grids is the step's signature for that kernel; a kernel with
    more than one signature across steps runs with dynamic shapes (the same name used for several fixed shapes
    inside every step is not dynamic, nor is a kernel launched more often in some steps than in others with the
    same grid: its work changes, not its shape). ``inside``: the kernels of ``lk`` already placed in the decode steps
    (name, the grid or its packed key ``PACKED_GRID``, idx; only those with a step), when the caller has them;
    ``texts``: their names are ``text_codes``' codes of these texts."""
    empty = pl.DataFrame(
        schema={"label": pl.Utf8, "name": pl.Utf8, "signatures": pl.UInt32, "grids": pl.UInt32, "steps": pl.UInt32}
    )
    if lk.is_empty() or decode.height < 2:
        return empty
    if inside is None:
        lk = lk.with_columns(pl.coalesce("l_start", "start").alias("t"))
        inside = assign_to_steps(lk.select("name", *GRID, "t"), decode, "t").filter(pl.col("idx").is_not_null())
    if inside.is_empty():
        return empty
    if texts is None:
        codes, texts = text_codes(inside["name"])  # grouped by code: grouping by the names would copy them
    else:
        codes = inside["name"]
    grid = pl.col(PACKED_GRID) if PACKED_GRID in inside.columns else pack_grid()  # packed by the caller, or here
    inside = inside.select(codes, "idx", grid.alias("g"))
    # a step's signature for a name is its grids, distinct and sorted: one sort of the distinct (name, step, grid)
    # rows makes each signature a run of rows in order (sorting inside every group is twice as slow)
    runs = _distinct_sorted(inside)
    del inside
    per_step = runs.group_by("name", "idx", maintain_order=True).agg(pl.col("g").alias("sig"))
    out = per_step.group_by("name").agg(
        pl.col("sig").n_unique().cast(pl.UInt32).alias("signatures"), pl.len().cast(pl.UInt32).alias("steps")
    )
    out = out.filter(pl.col("signatures") >= 2)
    if out.is_empty():
        return empty
    # a name's grids: those of its distinct (step, grid) rows
    grids = runs.group_by("name").agg(pl.col("g").n_unique().cast(pl.UInt32).alias("grids"))
    out = out.join(grids, on="name")
    return (
        out.with_columns(decode_texts(out["name"], texts))
        .join(labels, on="name", how="left")
        .sort(["signatures", "name"], descending=[True, False])
        .select("label", "name", "signatures", "grids", "steps")
    )


def _distinct_sorted(rows: pl.DataFrame) -> pl.DataFrame:
    """The distinct rows of (name, idx, g) sorted by all three. Where they fit, the three are packed into one
    integer column (the grid as its rank among the distinct grids, which keeps their order), which polars makes
    distinct and sorts several times faster than the three columns (and in less memory); else the three columns."""
    name, idx, g = rows["name"], rows["idx"], rows["g"]
    if rows.height and not (name.null_count() or idx.null_count() or g.null_count()):
        grids = g.unique().sort()
        lows = (scalar_int(name.min()), scalar_int(idx.min()))
        widths = packed_widths(scalar_int(name.max()), scalar_int(idx.max()), grids.len() - 1)
        if min(lows) >= 0 and widths is not None:
            # ``pack_ints`` of the three, made and sorted inside one array (millions of rows: no column per step);
            # numpy's sort is 3x polars' here
            packed = name.to_numpy().astype(np.int64, copy=True)
            np.left_shift(packed, widths[1], out=packed)
            packed += idx.to_numpy()
            np.left_shift(packed, widths[2], out=packed)
            packed += grids.search_sorted(g).to_numpy()
            key = pl.Series(name.name, sorted_unique(packed, owned=True))
            del packed
            n, i, rank = unpack_ints(key, widths)
            return pl.DataFrame(
                [n.cast(name.dtype).alias("name"), i.cast(idx.dtype).alias("idx"), grids.gather(rank).alias("g")]
            )
    return rows.unique(["name", "idx", "g"]).sort("name", "idx", "g")


# advice in words that fit runs that are not LLM decode (CNNs, ViTs, encoders, HPC): no RMSNorm/RoPE/decode talk
FP32_GEMM_ADVICE = (
    "GEMM dominates and runs in FP32 on the CUDA cores, not the tensor cores ({share:.0%} of its time in SIMT SGEMM "
    "kernels such as {example}): allow TF32 (PyTorch: torch.set_float32_matmul_precision('high'); cuBLAS: "
    "CUBLAS_TF32_TENSOR_OP_MATH) or run the model in BF16/FP16"
)
FP32_SIMT_GEMM = re.compile(r"sgemm|_ffma_|gemmSN_[A-Z]{2}_kernel<float")
"""cuBLAS's FP32 GEMMs on the CUDA cores (``ampere_sgemm_*``, ``sm80_xmma_gemm_f32f32_f32f32_..._ffma_...``): a TF32
kernel says ``tf32``, a half-precision one ``f16``/``bf16``/``hmma``."""


def _gemm_advice(kernels: pl.DataFrame | None) -> str | None:
    """The GEMM advice for GEMMs that run mostly (at least half their time) in FP32 SIMT kernels, else None."""
    if kernels is None or kernels.is_empty():
        return None
    gemm = kernels.filter(pl.col("family") == "gemm")
    total = int(gemm["total"].sum()) if gemm.height else 0
    if total <= 0:
        return None
    simt = gemm.filter(pl.Series([bool(FP32_SIMT_GEMM.search(str(n))) for n in gemm["name"].to_list()]))
    share = int(simt["total"].sum()) / total if simt.height else 0.0
    if share < 0.5:
        return None
    example = str(simt.sort(["total", "name"], descending=[True, False])["name"][0]).split("(")[0]
    example = example.removeprefix("void ").strip()
    if len(example) > 80:  # cuBLAS's xmma names run to 120 characters
        example = example[:77] + "..."
    return FP32_GEMM_ADVICE.format(share=share, example=example)


GENERIC_ADVICE: dict[str, str] = {
    "elementwise": "many small elementwise kernels: fuse them into their neighbours (a compiler such as torch.compile "
    "or XLA, or fused epilogues)",
    "norm": "normalization kernels are heavy: fold batch norm into the convolution for inference, or fuse layer norm "
    "with the residual add",
    "activation": "activation kernels are heavy: fuse them into the producing GEMM or convolution epilogue",
    "gemv": "GEMV dominates: it is memory-bound; compare achieved bandwidth with the GPU's peak and batch more "
    "work per weight read",
}


# a training step keeps its batch norm (it cannot be folded into the convolution while its statistics are learned)
TRAINING_ADVICE: dict[str, str] = {
    "norm": "normalization kernels are heavy: in training batch norm cannot be folded into a convolution, so fuse "
    "norms with their neighbours (a compiler such as torch.compile fuses batch norm or layer norm with the "
    "activation and the residual add, forward and backward)",
    "conv": "convolutions dominate: check they run on the tensor cores (mixed precision: BF16/FP16 autocast) with "
    "channels-last (NHWC) tensors, and let cuDNN pick the fastest algorithm for fixed shapes "
    "(torch.backends.cudnn.benchmark = True)",
}


LONG_ELEMENTWISE_NS = 50_000
"""Elementwise kernels this long on average (50 us) are not launch overhead: each streams a large tensor."""
LONG_ELEMENTWISE_ADVICE = (
    "elementwise kernels are long here (each streams a large tensor, memory-bound): fuse chains of them so that each "
    "tensor is read and written once, keep the tensors in a lower precision, and compare their bandwidth with the "
    "GPU's peak"
)


def _long_elementwise(fam: pl.DataFrame) -> bool:
    """Whether the elementwise family's kernels average ``LONG_ELEMENTWISE_NS`` or more: "many small kernels" is then
    not what costs (a TensorRT engine's generated pointwise kernels over a super-resolution image took 0.55 ms each)."""
    if fam.is_empty() or "count" not in fam.columns:
        return False
    rows = fam.filter(pl.col("family") == "elementwise")
    if rows.is_empty():
        return False
    row = rows.row(0, named=True)
    return bool(row["count"]) and int(row["total"]) >= LONG_ELEMENTWISE_NS * int(row["count"])


def _fam_name(row: dict[str, object]) -> str:
    """The category, or the family where the category is the catch-all (XLA reductions, pooling...)."""
    cat, fam = str(row["category"]), str(row["family"])
    return f"{fam} ({cat})" if cat == "elementwise / other" and fam not in ("other", "elementwise") else cat


def _single_kernel_lever(
    fam: pl.DataFrame, kernels: pl.DataFrame | None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The top kernel and its family when one kernel outweighs the top family as a target: it belongs to another
    family, takes at least half the top family's time, and 1.5x the top family's own largest kernel. Tuning one
    kernel (an engine's attention kernel far from its bandwidth floor) is then the largest single lever, while the
    top family's time is spread over several kernels and shapes. Not when the top family is copies or memsets:
    they are not kernels, and their time is not spread over kernels (a copy-bound run leads with its copies)."""
    if kernels is None or kernels.is_empty() or fam.height < 2 or "family" not in kernels.columns:
        return None
    k = kernels.row(0, named=True)
    top = fam.row(0, named=True)
    if k["family"] == top["family"] or top["family"] in ("memcpy", "memset"):
        return None
    own = kernels.filter(pl.col("family") == top["family"])["total"]
    largest_own = int(own.max()) if own.len() else 0  # type: ignore[arg-type]
    if int(k["total"]) < 0.5 * int(top["total"]) or int(k["total"]) < 1.5 * largest_own:
        return None
    rows = fam.filter(pl.col("family") == k["family"])
    return (k, rows.row(0, named=True)) if rows.height else None


def conclude(
    fam: pl.DataFrame,
    findings: list[Finding],
    host: HostSummary,
    run_kind: str = "llm-decode",
    kernels: pl.DataFrame | None = None,
    training: bool = False,
) -> tuple[Target, list[str]]:
    ids = [f.id for f in findings]
    target: Target = {}
    actions: list[str] = []
    top_total: int | None = None  # the GPU time of the target family (what its advice could save at most)
    if "graph-trace-not-node" in ids:
        target = {
            "kind": "recapture",
            "why": "the kernels inside CUDA graphs were not recorded, so no kernel-level diagnosis is possible",
            "flag": "--cuda-graph-trace=node",
        }
    elif "no-kernels" in ids:
        target = {"kind": "recapture", "why": "no kernels in the window"}
    if fam.height and not target:
        top = fam.row(0, named=True)
        second = fam.row(1, named=True) if fam.height > 1 else None
        what = "memory operations" if top["family"] in ("memcpy", "memset") else "kernels"
        why = f"{_fam_name(top)} {what} take {100 * top['share']:.1f}% of GPU time in the window"
        if second:
            why += f" (next: {_fam_name(second)}, {100 * second['share']:.1f}%)"
        lever = _single_kernel_lever(fam, kernels)
        if lever is not None:
            k, row = lever
            why = (
                f"one kernel, {k['label']}, takes {100 * int(k['total']) / max(int(fam['total'].sum()), 1):.1f}% of "
                f"GPU time: the largest single lever ({row['category']}); {top['category']} {what} take "
                f"{100 * top['share']:.1f}% spread over {top['kernels']} kernels"
            )
            second, top = top, row
        top_total = int(top["total"])
        target = {
            "kind": "family",
            "family": top["family"],
            "category": top["category"],
            "share": top["share"],
            "why": why,
        }
        # the host goes first only when what it costs is more than the whole top family could save
        host_issue = max(
            (f for f in findings if f.id in HOST_CAUSES and f.cost_ns),
            key=lambda f: (f.cost_ns or 0, f.id),
            default=None,
        )
        if host_issue is not None and (host_issue.cost_ns or 0) > int(top["total"]):
            target["host_first"] = host_issue.id
            target["host_cost_ns"] = int(host_issue.cost_ns or 0)  # not None: only findings with a cost compete
            target["why"] = str(target["why"]) + (
                f"; but the host side costs more than all of it ({host_issue.id}: {format_ns(host_issue.cost_ns or 0)} "
                f"of GPU idle time against {format_ns(int(top['total']))} of {top['category']} kernels): "
                f"{host_issue.summary}"
            )
    # actions in the order of what they cost: a finding's before the top family's advice only when it costs more
    # than that whole family (or has no cost: a blocker); the others after it
    urgent = [f for f in findings if f.severity in ("critical", "warning")]
    later = [f for f in urgent if top_total is not None and f.cost_ns is not None and f.cost_ns <= top_total]
    for f in urgent:
        if f not in later and f.action not in actions:
            actions.append(f"{f.title}: {f.action}.")
    advice_for = FAMILY_ADVICE if run_kind.startswith("llm") else {**FAMILY_ADVICE, **GENERIC_ADVICE}
    if training:
        advice_for = {**advice_for, **TRAINING_ADVICE}
    fp32_gemm = _gemm_advice(kernels)
    if fp32_gemm is not None:
        advice_for = {**advice_for, "gemm": fp32_gemm}
    if _long_elementwise(fam):
        advice_for = {**advice_for, "elementwise": LONG_ELEMENTWISE_ADVICE}
    if target.get("kind") == "family":
        advice = advice_for.get(str(target["family"]))
        if advice:
            actions.append(f"{advice}.")
        others = fam.filter(pl.col("family") != target["family"])
        if others.height:
            second = others.row(0, named=True)
            adv2 = advice_for.get(str(second["family"]))
            if adv2 and second["share"] >= 0.1:
                then = "Then " if advice else ""
                actions.append(f"{then}{second['category']} ({100 * second['share']:.0f}%): {adv2}.")
    for f in later:
        if f.action not in actions:
            actions.append(f"{f.title}: {f.action}.")
    if not actions:
        actions.append("No problem stands out: profile a longer run or compare against a baseline (nsys-doctor diff).")
    return target, actions
