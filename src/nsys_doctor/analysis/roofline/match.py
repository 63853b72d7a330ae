"""Matching: the linear-layer kernels of each step lined up with the model's shapes, and the roofline itself."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

import polars as pl

from ...errors import UsageError
from ...units import format_bytes, format_ns
from ..distribution import percentile, percentile_expr
from ..model import DTYPES, Layout, LinearShape, Model
from ..ops import OpRule, classify, keyed_like, label_frame
from ..phases import Steps, assign_to_steps, launched_kernels
from .findings import roofline_findings
from .mapping import MapRule
from .peaks import Peaks
from .results import (
    COMPUTE_GOOD,
    CONSISTENT,
    HEADROOM,
    NEAR_LIMIT,
    SMALL_GEMV_BYTES,
    MatchFit,
    PhaseResult,
    Roofline,
    ShapeResult,
    StepResult,
    tile_check,
)

LINEAR_FAMILIES = ("gemv", "gemm")
SPLIT_K_OP = "(?i)split-?k"  # searched in the op rule's name ("linear split-K reduction")
IMPOSSIBLE = 1.20  # a shape "faster" than 1.2x peak means the model's shapes are not what ran


def _linear_instances(
    lk: pl.DataFrame, steps: pl.DataFrame, rules: list[OpRule], mapping: Sequence[MapRule] | None
) -> tuple[pl.DataFrame, int]:
    """One row per linear kernel instance inside a step: idx, kind, pos (order in the step), dur (plus its
    split-K reduction), label, grid, tiles, family, short, sig (kernel signature), mapped (shape from the mapping
    or null). Also the number of split-K reductions that had no GEMV before them in their step."""
    ks = lk.with_columns(pl.coalesce("l_start", "start").alias("t_launch"))
    ks = assign_to_steps(ks, steps.select("idx", "start", "end"), "t_launch").filter(pl.col("idx").is_not_null())
    empty = pl.DataFrame(
        schema={
            "idx": pl.Int64, "kind": pl.Utf8, "pos": pl.Int64, "start": pl.Int64, "dur": pl.Int64, "label": pl.Utf8,
            "grid": pl.Utf8, "tiles": pl.Int64, "family": pl.Utf8, "short": pl.Utf8, "sig": pl.Utf8,
            "mapped": pl.Utf8, "reduce": pl.Utf8,
        }
    )  # fmt: skip
    if ks.is_empty():
        return empty, 0
    names = ks.select("name", "short").unique()
    ops = classify(names["name"], rules, names["short"]).select("name", "family", "op").unique("name")
    ks = label_frame(ks.join(keyed_like(ops, ks), on="name", how="left")).with_columns(
        pl.concat_str([pl.col("gridX"), pl.col("gridY"), pl.col("gridZ")], separator="x").alias("grid"),
        (pl.col("gridX").cast(pl.Int64) * pl.col("gridY") * pl.col("gridZ")).alias("tiles"),  # past 32 bits
    )
    mapped = pl.lit(None, pl.Utf8)
    if mapping:
        keys = ks.select("name", "short", "grid").unique()
        hit = [
            next(
                (
                    r.shape
                    for r in mapping
                    if (r.grid is None or r.grid == g) and any(t and re.search(r.kernel, t) for t in (s, n))
                ),
                None,
            )
            for n, s, g in keys.iter_rows()
        ]
        ks = ks.join(keys.with_columns(pl.Series("mapped", hit, dtype=pl.Utf8)), on=["name", "short", "grid"])
        mapped = pl.col("mapped")
    ks = ks.with_columns(mapped.alias("mapped"))
    is_reduce = pl.col("op").fill_null("").str.contains(SPLIT_K_OP)
    is_linear = pl.col("mapped").is_not_null() | (pl.col("family").is_in(LINEAR_FAMILIES) & ~is_reduce)
    ks = ks.with_columns(is_linear.alias("_lin"), (is_reduce & pl.col("mapped").is_null()).alias("_red"))
    ks = ks.filter(pl.col("_lin") | pl.col("_red")).sort("idx", "start")
    ks = ks.with_columns((pl.col("_lin").cast(pl.Int64).cum_sum().over("idx") - 1).alias("pos"))
    orphans = ks.filter(pl.col("pos") < 0).height
    ks = ks.filter(pl.col("pos") >= 0)
    reduce_label = pl.col("label").filter(pl.col("_red")).first()
    inst = (
        ks.group_by("idx", "pos", maintain_order=True)
        .agg(
            pl.col("start").first(),
            pl.col("dur").sum(),
            pl.col("label").first(),
            pl.col("grid").first(),
            pl.col("tiles").first(),
            pl.col("family").first(),
            pl.col("short").first(),
            pl.col("mapped").first(),
            reduce_label.alias("reduce"),
        )
        .join(steps.select("idx", "kind"), on="idx", how="left")
    )
    sig = (
        pl.when(pl.col("reduce").is_not_null())
        .then(pl.concat_str([pl.col("label"), pl.lit(" + "), pl.col("reduce")]))
        .otherwise(pl.col("label"))
    )
    inst = inst.with_columns(sig.alias("sig"))
    return inst.select(empty.columns), orphans


def _fits_hint(n: int) -> str:
    fits = [f"{(n - 1) // per} layers of {per}" for per in (4, 5, 6, 7) if n > 1 and (n - 1) % per == 0]
    return f"{n} = layers x linears + 1 would fit {' or '.join(fits)}" if fits else ""


def _mismatch(model: Model, phase: str, observed: dict[int, int], expected: list[Layout], reds: int) -> UsageError:
    common = max(observed, key=lambda k: observed[k])
    other = ", ".join(f"{lay.kernels_per_step}" for lay in expected[1:])
    steps = sum(observed.values())
    per_step = f" and {reds / steps:.3g} split-K reductions" if reds and steps else ""
    msg = (
        f"model {model.name} does not fit the trace: {observed[common]} of {steps} {phase} steps run {common} "
        f"GEMV/GEMM kernels{per_step} each, but the model has {expected[0].describe()}"
        + (f" (with separate Q/K/V or gate/up: {other})" if other else "")
    )
    fit = _fits_hint(common)
    hint = (
        (f"{fit}; " if fit else "")
        + "check that --model is the traced model's config, or map kernels to shapes with --mapping FILE "
        "(see docs/roofline.md)"
    )
    return UsageError(msg, hint)


"""A shape's rating (``ShapeResult.rating``) and what it means."""


def _rating(bound: str | None, eff: float | None, feff: float | None, weight_bytes: int) -> str:
    """The field's rule of thumb, on efficiencies rounded to 0.1% (as printed)."""
    if bound == "compute":
        if feff is None:
            return "unknown-peak"
        return "compute-near-peak" if round(feff, 3) >= COMPUTE_GOOD else "compute-headroom"
    if eff is None:
        return "unknown-peak"
    e = round(eff, 3)
    if e >= NEAR_LIMIT:
        return "near-limit"
    if weight_bytes < SMALL_GEMV_BYTES:
        return "small"
    return "headroom" if e < HEADROOM else "some-headroom"


def _match_phase(
    inst: pl.DataFrame,
    step_table: pl.DataFrame,
    phase: str,
    model: Model,
    peaks: Peaks,
    mapping: Sequence[MapRule] | None,
    tokens: int | None,
    tokens_source: str,
) -> PhaseResult | None:
    kinds = ["prefill"] if phase == "prefill" else ["decode", "step"]
    steps = step_table.filter(pl.col("kind").is_in(kinds))
    if steps.is_empty():
        return None
    pi = inst.filter(pl.col("kind").is_in(kinds))
    per_step = (
        steps.select("idx")
        .join(
            pi.group_by("idx").agg(pl.len().alias("n"), pl.col("reduce").is_not_null().sum().alias("r")),
            on="idx",
            how="left",
        )
        .with_columns(pl.col("n").fill_null(0), pl.col("r").fill_null(0))
    )
    observed = {int(k): int(v) for k, v in per_step.group_by("n").len().iter_rows()}
    reds = int(per_step["r"].sum())
    notes: list[str] = []
    if mapping:
        wanted = {r.shape for r in mapping}
        layout = next((lay for lay in model.layouts if wanted <= {s.name for s, _ in lay.sequence()}), None)
        if layout is None:
            known = ", ".join(s.name for s in model.shapes())
            sources = sorted({r.source for r in mapping if r.source})
            where = f"mapping file {', '.join(sources)}" if sources else "mapping"
            missing = sorted(wanted - {s.name for s in model.shapes()})
            what = (
                f"shape(s) {', '.join(missing)} are not shapes of model {model.name}"
                if missing
                else f"shapes {', '.join(sorted(wanted))} do not all run in one layout of model {model.name}"
            )
            raise UsageError(f"{where}: {what}", f"use the shape names of one layout of the model: {known}")
        expected_counts: dict[str, int] = {}  # a mapping may name only some shapes: those are checked
        for s, _ in layout.sequence():
            if s.name in wanted:
                expected_counts[s.name] = expected_counts.get(s.name, 0) + 1
        counts = pi.filter(pl.col("mapped").is_not_null()).group_by("idx", "mapped").len()
        exp = pl.DataFrame({"mapped": list(expected_counts), "want": list(expected_counts.values())})
        full = steps.select("idx").join(exp, how="cross").join(counts, on=["idx", "mapped"], how="left")
        ok = full.group_by("idx").agg((pl.col("len").fill_null(0) == pl.col("want")).all().alias("ok"))
        fit_ids = ok.filter(pl.col("ok"))["idx"]
        matched = pi.filter(pl.col("idx").is_in(fit_ids.to_list()) & pl.col("mapped").is_not_null())
        matched = matched.with_columns(pl.col("mapped").alias("shape"))
        unmapped = pi.filter(pl.col("idx").is_in(fit_ids.to_list()) & pl.col("mapped").is_null())
        if unmapped.height:
            names = unmapped.group_by("label").len().sort("len", descending=True)["label"].head(3).to_list()
            notes.append(f"{unmapped.height:,} GEMV/GEMM instances match no [[map]] entry ({', '.join(names)})")
        if fit_ids.len() == 0:
            raise UsageError(
                f"no {phase} step runs every mapped shape as often as model {model.name} says "
                f"({', '.join(f'{k} x{v}' for k, v in expected_counts.items())})",
                "check the [[map]] patterns against the kernel names (nsys-doctor report lists them) and --model",
            )
        method = "mapping"
    else:
        candidates = sorted(
            model.layouts, key=lambda lay: -observed.get(lay.kernels_per_step, 0)
        )  # stable: the preferred layout wins ties
        layout = candidates[0]
        if set(observed) == {0}:
            raise UsageError(
                f"the {phase} steps run no GEMV/GEMM kernels, so there is nothing to match to model {model.name}",
                "if the steps launch CUDA graphs, recapture with --cuda-graph-trace=node (by default nsys records a "
                "graph as one opaque launch); otherwise map the linear-layer kernels with --mapping FILE or add op "
                "rules with --ops",
            )
        if observed.get(layout.kernels_per_step, 0) == 0:
            raise _mismatch(model, phase, observed, list(model.layouts), reds)
        seq = layout.sequence()
        order = pl.DataFrame(
            {"pos": list(range(len(seq))), "shape": [s.name for s, _ in seq]},
            schema={"pos": pl.Int64, "shape": pl.Utf8},
        )
        fit_ids = per_step.filter(pl.col("n") == layout.kernels_per_step)["idx"]
        matched = pi.filter(pl.col("idx").is_in(fit_ids.to_list())).join(order, on="pos", how="inner")
        method = "position"
    steps_fit = int(fit_ids.len())
    if steps_fit < steps.height:
        why = "have another kernel count" if method == "position" else "do not run the mapped shapes as expected"
        notes.append(f"{steps.height - steps_fit} of {steps.height} {phase} steps {why} and are left out")
    shapes_by_name = {s.name: s for s, _ in layout.sequence()}
    count_in_step = {n: sum(1 for s, _ in layout.sequence() if s.name == n) for n in shapes_by_name}

    # the kernel signature each shape usually runs, and how consistently
    # (ties in a fixed order: the grouping's order changes from run to run)
    keys = ["shape", "sig", "short", "tiles", "family"]
    sigs = matched.group_by(keys).len().sort(["len", *keys], descending=[True, *[False] * len(keys)], nulls_last=True)
    totals = matched.group_by("shape").len().rename({"len": "total"})
    stats = matched.group_by("shape").agg(
        pl.len().alias("instances"),
        percentile_expr("dur", 50).alias("p50"),
        pl.col("dur").mean().alias("mean"),
    )
    act_bytes = DTYPES.get(model.activation, 16) / 8
    rows: list[ShapeResult] = []
    dominant_total = 0
    agree: list[str] = []
    unchecked: list[str] = []
    bw = peaks.bandwidth_Bps
    for name in shapes_by_name:
        shape: LinearShape = shapes_by_name[name]
        st = stats.filter(pl.col("shape") == name)
        if st.is_empty():
            continue
        srow = st.row(0, named=True)
        ssig = sigs.filter(pl.col("shape") == name)
        best = ssig.row(0, named=True)
        total = int(totals.filter(pl.col("shape") == name)["total"][0])
        dominant_total += int(best["len"])
        # decode runs one token; in prefill a GEMV-family kernel (e.g. the LM head on the last token) runs one
        n_tok: int | None = 1 if phase == "decode" or best["family"] == "gemv" else tokens
        tc = tile_check(best["short"] or "", int(best["tiles"] or 0), shape.M, n_tok or 1)
        if tc == "contradicts" and n_tok is not None:
            raise UsageError(
                f"model {model.name} does not fit the trace: shape {name} [{shape.M} x {shape.K}] cannot be what "
                f"{best['short']} ran in the {phase} steps (grid of {best['tiles']} CTAs for an output of "
                f"{shape.M} x {n_tok}{' tokens' if n_tok > 1 else ''})",
                ("check --tokens (the prompt length of the prefill), " if n_tok > 1 else "")
                + "check that --model is the traced model's config (hidden size, heads, intermediate size), or map "
                "kernels to shapes with --mapping FILE",
            )
        (agree if tc == "agrees" else unchecked).append(name)
        p50 = int(srow["p50"])
        mean = float(srow["mean"])
        wb = shape.bytes
        achieved = wb / (p50 * 1e-9) if p50 > 0 else float("inf")
        eff = achieved / bw if bw else None
        eff_mean = wb / (mean * 1e-9) / bw if bw and mean > 0 else None
        flops = 2.0 * shape.M * n_tok * shape.K if n_tok else None
        moved = wb + (n_tok or 0) * (shape.K + shape.M) * act_bytes
        intensity = flops / moved if flops else None
        ridge = peaks.ridge
        bound = None if intensity is None or ridge is None else ("compute" if intensity >= ridge else "memory")
        if bound is None and n_tok == 1:
            bound = "memory"
        achieved_flops = flops / (p50 * 1e-9) if flops and p50 > 0 else None
        feff = achieved_flops / peaks.flops if achieved_flops and peaks.flops else None
        _check_physics(model, name, shape, phase, eff, feff, peaks, bound)
        kernels = tuple(str(x) for x in ssig["sig"].unique(maintain_order=True).to_list())
        rating = _rating(bound, eff, feff, wb)
        rows.append(
            ShapeResult(
                phase=phase,
                name=name,
                label=shape.title,
                M=shape.M,
                K=shape.K,
                N=n_tok,
                dtype=shape.fmt.label,
                weight_bytes=wb,
                per_step=count_in_step[name],
                instances=int(srow["instances"]),
                kernels=kernels,
                p50_ns=p50,
                mean_ns=mean,
                achieved_Bps=achieved,
                efficiency=eff,
                efficiency_mean=eff_mean,
                flops=flops,
                intensity=intensity,
                bound=bound,
                achieved_flops=achieved_flops,
                flops_efficiency=feff,
                consistency=int(best["len"]) / total,
                tile_check="agrees" if tc == "agrees" else "unchecked",
                rating=rating,
            )
        )
    consistency = dominant_total / matched.height if matched.height else 0.0
    if consistency < CONSISTENT:
        notes.append(
            f"only {100 * consistency:.0f}% of instances run their shape's usual kernel: the order of linear "
            "kernels varies, so position matching may be off (consider --mapping)"
        )
    fit = MatchFit(
        method=method,
        layout=layout.name,
        layout_detail=layout.describe(),
        expected_per_step=layout.kernels_per_step,
        observed=observed,
        steps_fit=steps_fit,
        steps_total=steps.height,
        reductions=int(matched["reduce"].is_not_null().sum()),
        consistency=consistency,
        tiles_agree=tuple(agree),
        tiles_unchecked=tuple(unchecked),
        notes=tuple(notes),
    )
    fit_steps = steps.filter(pl.col("idx").is_in(fit_ids.to_list()))
    step = _step_result(rows, fit_steps, matched, steps_fit, layout, peaks, phase)
    return PhaseResult(phase, tokens if phase == "prefill" else 1, tokens_source, fit, tuple(rows), step)


def _check_physics(
    model: Model, name: str, shape: LinearShape, phase: str, eff: float | None, feff: float | None, peaks: Peaks,
    bound: str | None,
) -> None:  # fmt: skip
    """Refuse numbers no GPU can produce: the model's shapes (or --dtype, --tokens) are not what ran."""
    cached = peaks.l2_bytes is not None and model.bytes_per_token <= peaks.l2_bytes
    if eff is not None and eff > IMPOSSIBLE and bound != "compute" and not cached:
        raise UsageError(
            f"model {model.name} does not fit the trace: shape {name} [{shape.M} x {shape.K}, "
            f"{format_bytes(shape.bytes)}] would have moved {100 * eff:.0f}% of the GPU's peak bandwidth in the "
            f"{phase} steps",
            "the traced kernels read fewer bytes: check --model (sizes) and --dtype (a quantized model?), or --peak-bw",
        )
    if feff is not None and feff > IMPOSSIBLE:
        raise UsageError(
            f"shape {name} [{shape.M} x {shape.K}] would have run at {100 * feff:.0f}% of the GPU's dense peak "
            f"FLOP/s in the {phase} steps",
            "the token count is too high: check --tokens (or the prompt length of the run), --model and --peak-flops",
        )


def _step_result(
    rows: list[ShapeResult],
    fit_steps: pl.DataFrame,
    matched: pl.DataFrame,
    n_steps: int,
    layout: Layout,
    peaks: Peaks,
    phase: str,
) -> StepResult:
    bytes_step = layout.bytes_per_step
    linear_bytes = sum(r.weight_bytes * r.per_step for r in rows)  # all of bytes_step unless a mapping is partial
    gpu = fit_steps["gpu_time"].drop_nulls().to_list()
    p50 = percentile(gpu, 50)
    wall = percentile(fit_steps["wall"].drop_nulls().to_list(), 50)
    mean = sum(gpu) / len(gpu) if gpu else None
    bw = peaks.bandwidth_Bps
    achieved = bytes_step / (p50 * 1e-9) if p50 else None
    eff = achieved / bw if achieved and bw else None
    sol = bytes_step / bw * 1e9 if bw else None
    linear = float(matched["dur"].sum()) / n_steps if n_steps else 0.0
    lin_bps = linear_bytes / (linear * 1e-9) if linear else None
    lin_eff = lin_bps / bw if lin_bps and bw else None
    share = linear / mean if mean else None
    shape_flops = [r.flops * r.per_step for r in rows if r.flops is not None]
    flops = sum(shape_flops) if rows and len(shape_flops) == len(rows) else None
    lin_flops = flops / (linear * 1e-9) if flops and linear else None
    compute = [r for r in rows if r.bound == "compute"]
    if phase == "prefill" and compute:
        best = max(compute, key=lambda r: r.time_per_step_ns)
        fe = f"{100 * best.flops_efficiency:.0f}% of dense peak" if best.flops_efficiency else "unknown peak"
        verdict = (
            f"prefill GEMMs are compute-bound ({len(compute)} of {len(rows)} shapes above the ridge point); the "
            f"heaviest, {best.label}, runs at {fe}"
        )
    elif lin_eff is None:
        verdict = "peak bandwidth unknown: pass --peak-bw"
    else:
        if round(lin_eff, 3) >= NEAR_LIMIT:
            rule = "over 80%: little headroom in the GEMVs; quantization or batching is the path"
        elif round(lin_eff, 3) < HEADROOM:
            rule = "under 70%: custom or better-tuned GEMV kernels can win"
        else:
            rule = "between 70% and 80%: some headroom in the GEMVs"
        what = "linear layers" if linear_bytes == bytes_step else "the mapped shapes"
        verdict = f"{what} move weights at {100 * lin_eff:.1f}% of peak bandwidth ({rule})"
        if eff is not None and share is not None and mean:
            verdict += (
                f"; the whole step reaches {100 * eff:.1f}% of the speed of light, and "
                f"{format_ns(mean - linear)} of its {format_ns(mean)} GPU time is outside the {what} "
                "(attention, norms, elementwise)"
            )
        if wall and p50 and wall > 1.5 * p50:
            verdict += (
                f"; the steps last {format_ns(wall)} (p50) for {format_ns(p50)} of GPU time: the GPU waits for the "
                "host, which no kernel can fix (see nsys-doctor report)"
            )
    return StepResult(
        bytes_per_step=bytes_step,
        linear_bytes=linear_bytes,
        gpu_time_p50_ns=int(p50) if p50 is not None else None,
        wall_p50_ns=int(wall) if wall is not None else None,
        gpu_time_mean_ns=mean,
        achieved_Bps=achieved,
        efficiency=eff,
        sol_ns=sol,
        linear_time_ns=linear,
        linear_share=share,
        linear_Bps=lin_bps,
        linear_efficiency=lin_eff,
        flops_per_step=flops,
        linear_flops=lin_flops,
        verdict=verdict,
    )


def roofline(
    kernels: pl.DataFrame,
    api: pl.DataFrame,
    steps: Steps,
    rules: list[OpRule],
    model: Model,
    peaks: Peaks,
    mapping: Sequence[MapRule] | None = None,
    prefill_tokens: int | None = None,
    tokens_source: str = "",
    lk: pl.DataFrame | None = None,
    trace: dict[str, object] | None = None,
    window: dict[str, object] | None = None,
) -> Roofline:
    """Match the linear kernels of every step to ``model``'s shapes and measure them against ``peaks``.

    ``kernels``/``api`` are ``TraceFrames`` columns, ``steps`` is ``phases.find_steps``'s result (``lk`` is
    ``launched_kernels(kernels, api)`` when the caller has it), ``rules`` the op rules, ``prefill_tokens`` the
    prompt length (tokens per prefill step; None: unknown). Raises ``UsageError`` when the model does not fit."""
    if prefill_tokens is not None and (isinstance(prefill_tokens, bool) or prefill_tokens < 1):
        raise UsageError(f"the prefill token count must be 1 or more, not {prefill_tokens!r}", "check --tokens")
    lk = launched_kernels(kernels, api) if lk is None else lk
    table = steps.table
    if table.is_empty():
        raise UsageError(
            "no steps found in the window, so kernels cannot be matched to the model's layers",
            "annotate steps with NVTX ranges, or choose the window with --window / --filter-nvtx",
        )
    inst, orphans = _linear_instances(lk, table, rules, mapping)
    if inst.is_empty():
        raise UsageError(
            "the steps of the window run no GEMV/GEMM kernels, so there is nothing to match to the model",
            "if the steps launch CUDA graphs, recapture with --cuda-graph-trace=node (by default nsys records a graph "
            "as one opaque launch); otherwise check the window, or map the linear-layer kernels with --mapping FILE "
            "(or op rules with --ops)",
        )
    notes = list(model.notes)
    if orphans:
        notes.append(f"{orphans} split-K reductions had no GEMV before them in their step and are left out")
    decode = _match_phase(inst, table, "decode", model, peaks, mapping, 1, "decode: one token per step")
    prefill_src = tokens_source or ("unknown (pass --tokens N)" if prefill_tokens is None else "")
    prefill = _match_phase(inst, table, "prefill", model, peaks, mapping, prefill_tokens, prefill_src)
    if decode is not None:
        notes.append(
            "decode assumes one token per step (batch 1): weight bytes per step are the bytes per token; FLOPs "
            "and intensity use N = 1"
        )
    result = Roofline(model, peaks, decode, prefill, steps.source, trace or {}, window, tuple(notes))
    return replace(result, findings=tuple(roofline_findings(result)))
