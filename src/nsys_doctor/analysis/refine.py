"""Kernel identity from the run's structure: what a kernel's name cannot say, where and how often it runs can.

``classify`` (analysis/ops.py) reads kernel names only. Two identities need the run's steps (forward passes) too:

1. **A top-k that runs in every layer is not sampling.** Sampling runs once per forward pass, after the last layer.
   ``torch.topk`` (``gatherTopK``, its sorted output's ``bitonicSortKVInPlace``...) is also the router of an MoE
   layer, and then runs once per MoE layer. A sampling-family top-k or sort kernel is *per layer* when, on the
   median step, it runs at least twice and its instances sit in at least two different layers: they are separated
   by a layer's kernels (attention, norm, GEMM, GEMV; the "layer segments" below). Counting alone is not enough: a
   sampler's radix select runs its passes several times per step (PyTorch's ``mbtopk::computeBlockDigitCounts``
   four times, cub's scan-by-key twice), all in one segment after the last layer.
   A per-layer top-k/sort in a run with MoE kernels is the MoE router (family ``moe``, op "MoE router top-k");
   without MoE kernels it is a top-k of another kind (family ``top-k``, category "elementwise / other"), not
   sampling. A per-layer softmax of the sampling family is the router's softmax when a per-layer router top-k with
   the same count per step exists in an MoE run, else attention's softmax (eager attention from matmuls).
2. **Attention by phase.** An attention kernel whose name does not say the phase (family ``attention``) that runs
   only (>= 90% of its time in the window) in decode steps is ``attention-decode``; in prefill steps,
   ``attention-prefill``. A kernel whose name says one phase but that runs (>= 90% of its time) in the other takes
   the phase of the evidence, and its op says so. Split kernels keep their family.

3. **A cumulative sum in the sampler is top-p's.** A scan kernel (``cumsum``: PyTorch's ``tensor_kernel_scan``, cub's
   ``DeviceScan``) is a reduction by name. One that runs after the last layer kernel of a step (the LM head's GEMM),
   where the sampler's top-k or sort runs too, at most twice a step, in at least 90% of the steps it runs in, is the
   cumulative probability of top-p (or min-p) sampling: family ``sampling``. The cumsum of position ids runs before
   the layers (once per prefill) and stays a reduction.

4. **A training step samples nothing.** In a run whose steps train (backward kernels run in them, see
   ``analysis/structure``), what the names call sampling is the step's own work: a softmax or log-softmax is the
   loss's (cross-entropy) or an eager attention's (family ``reduction``), random numbers are dropout or
   augmentation (family ``elementwise``), a top-k or sort is a metric or a router (family ``top-k``). Applied after
   rules 1-3 (an MoE router stays one).

Every row changed here has ``match = "structure"`` (the family comes from where the kernel runs, not from a known
library or from its name) and an op that says what the evidence was. Pure and vectorized: no loop over kernels.
"""

from __future__ import annotations

import polars as pl

from .ops import STRUCTURE_MATCH, keyed_like
from .phases import assign_to_steps

__all__ = ["STRUCTURE_MATCH", "refine_ops"]

PER_LAYER_MIN_PER_STEP = 2
"""On the median step, a per-layer kernel runs at least this many times..."""
PER_LAYER_MIN_SEGMENTS = 2
"""...in at least this many layer segments (stretches of a step between two layer kernels)."""
PHASE_SHARE = 0.9
"""Share of an attention kernel's time in the window that must lie in steps of one phase."""

ATTENTION_FAMILIES = ("attention", "attention-decode", "attention-prefill")
LAYER_FAMILIES = (*ATTENTION_FAMILIES, "norm", "gemm", "gemv")
"""Families whose kernels run inside every layer: they cut a step into layer segments."""

_PHASE = {
    "decode": ("attention-decode", "attention (decode)"),
    "prefill": ("attention-prefill", "attention (prefill)"),
}
_NAMED_PHASE = {"attention-decode": "decode", "attention-prefill": "prefill"}

_ROLE = "_role"  # topk, sort, softmax: sampling-family candidates for the per-layer rule; attention; scan; None
ROLES = pl.Enum(["topk", "sort", "softmax", "attention", "scan"])  # (a byte a kernel, not a text)
SCAN_NAMES = r"tensor_kernel_scan|(?i:cumsum)|DeviceScan(?:Init)?Kernel"
"""Scan (cumulative sum) kernels, by name (cub's scan-by-key is the top-k's, already sampling by name)."""
SAMPLER_SCAN_MAX_PER_STEP = 2
SAMPLER_SCAN_SHARE = 0.9
"""A scan is the sampler's when it runs at most this many times a step, after the last layer kernel beside the
sampler's top-k or sort, in at least this share of the steps it runs in."""
_COLUMNS = ("family", "category", "op", "match")


def refine_ops(ops: pl.DataFrame, lk: pl.DataFrame, steps_table: pl.DataFrame, training: bool = False) -> pl.DataFrame:
    """``ops`` (``classify``'s frame) with ``family``, ``category``, ``op`` and ``match`` replaced where the run's
    structure says what a kernel is (see the module docstring). Other rows and the row order are unchanged.
    ``training``: the run's steps train (rule 4).

    ``lk``: the kernels of the analyzed window (columns ``name``, ``start``, ``l_start`` (launch time, may be null),
    and ``dur`` or ``end``); ``steps_table``: its steps (``idx``, ``kind``, ``start``, ``end``). A kernel is in the
    step that holds its launch (its start when it has no launch), as elsewhere in the diagnosis. Without steps or
    kernels, ``ops`` is returned as it is."""
    out = _refine_by_steps(ops, lk, steps_table)
    return _training_updates(out) if training else out


def _training_updates(ops: pl.DataFrame) -> pl.DataFrame:
    """Rule 4: the sampling-family rows of a training run, renamed for what they are in a training step."""
    if ops.is_empty() or not set(_COLUMNS) <= set(ops.columns):
        return ops
    sampling = pl.col("family") == "sampling"
    op = pl.col("op").str.to_lowercase()
    softmax, rng = op.str.contains("softmax"), op.str.contains("random|rng|multinomial")
    return ops.with_columns(
        pl.when(sampling & softmax)
        .then(pl.lit("reduction"))
        .when(sampling & rng)
        .then(pl.lit("elementwise"))
        .when(sampling)
        .then(pl.lit("top-k"))
        .otherwise(pl.col("family"))
        .alias("family"),
        pl.when(sampling).then(pl.lit("elementwise / other")).otherwise(pl.col("category")).alias("category"),
        pl.when(sampling & softmax)
        .then(pl.lit("softmax / log-softmax: the loss's or attention's (a training step samples nothing)"))
        .when(sampling & rng)
        .then(pl.lit("random numbers: dropout (a training step samples nothing)"))
        .when(sampling)
        .then(pl.col("op") + pl.lit(" (a training step samples nothing)"))
        .otherwise(pl.col("op"))
        .alias("op"),
        pl.when(sampling).then(pl.lit(STRUCTURE_MATCH)).otherwise(pl.col("match")).alias("match"),
    )


def _refine_by_steps(ops: pl.DataFrame, lk: pl.DataFrame, steps_table: pl.DataFrame) -> pl.DataFrame:
    """Rules 1-3 (see ``refine_ops``)."""
    if ops.is_empty() or lk.is_empty() or steps_table.is_empty() or not set(_COLUMNS) <= set(ops.columns):
        return ops
    kinds = ops.select("name", "family", "op").unique("name", keep="first", maintain_order=True)
    kinds = kinds.with_columns(
        _role_expr().cast(ROLES).alias(_ROLE), pl.col("family").is_in(LAYER_FAMILIES).alias("_layer")
    )
    kinds = kinds.filter(pl.col(_ROLE).is_not_null() | pl.col("_layer"))
    if kinds.filter(pl.col(_ROLE).is_not_null()).is_empty():
        return ops
    dur = pl.col("dur") if "dur" in lk.columns else pl.col("end") - pl.col("start")
    launch = pl.coalesce("l_start", "start") if "l_start" in lk.columns else pl.col("start")
    events = lk.select("name", "start", dur.alias("_dur"), launch.alias("_t"))
    # each kernel carries its role and whether it is a layer's (a byte each); what a name is (family, operation)
    # is joined onto the per-name results, not onto millions of kernels as texts
    events = events.join(keyed_like(kinds.select("name", _ROLE, "_layer"), events), on="name", how="inner")
    steps = steps_table.select("idx", pl.col("kind").cast(pl.Categorical), "start", "end")
    events = assign_to_steps(events, steps.select("idx", "start", "end"), "_t").join(
        steps.select("idx", pl.col("kind").alias("_kind")), on="idx", how="left"
    )
    names = kinds.select("name", "family", "op")
    has_moe = bool((ops["family"] == "moe").any())
    # the kernels inside steps, in order, with their layer segment (how many layer kernels ran before each in its
    # step): rules 1 and 3 read both
    inside = events.filter(pl.col("idx").is_not_null()).sort("idx", "start", "name")
    inside = inside.with_columns(pl.col("_layer").cast(pl.Int64).cum_sum().over("idx").alias("_seg"))
    parts = [_per_layer_updates(inside, has_moe, names), _phase_updates(events, names), _sampler_scan_updates(inside)]
    parts = [p.with_columns(pl.col("name").cast(pl.String)) for p in parts]  # small: per name (and step)
    updates = pl.concat(parts, how="vertical_relaxed").unique("name", keep="first", maintain_order=True)
    if updates.is_empty():
        return ops
    new = updates.select("name", *(pl.col(c).alias(f"_new_{c}") for c in _COLUMNS))
    out = ops.with_row_index("_row").join(new, on="name", how="left")
    return out.with_columns(pl.coalesce(f"_new_{c}", c).alias(c) for c in _COLUMNS).sort("_row").select(ops.columns)


def _role_expr() -> pl.Expr:
    op = pl.col("op").str.to_lowercase()
    sampling = pl.col("family") == "sampling"
    return (
        pl.when(sampling & op.str.contains("top-k"))
        .then(pl.lit("topk"))
        .when(sampling & op.str.contains("sort"))
        .then(pl.lit("sort"))
        .when(sampling & (op == "softmax"))
        .then(pl.lit("softmax"))
        .when(pl.col("family").is_in(ATTENTION_FAMILIES))
        .then(pl.lit("attention"))
        .when((pl.col("family") == "reduction") & pl.col("name").str.contains(SCAN_NAMES))
        .then(pl.lit("scan"))
        .otherwise(pl.lit(None, pl.String))
    )


def _empty_updates() -> pl.DataFrame:
    return pl.DataFrame(schema={"name": pl.String, **dict.fromkeys(_COLUMNS, pl.String)})


def _per_layer_updates(inside: pl.DataFrame, has_moe: bool, names: pl.DataFrame) -> pl.DataFrame:
    """Sampling-family top-k, sort and softmax kernels that run in several layers of a step (rule 1); ``inside``:
    the kernels inside steps with their layer segment (``_seg``); ``names``: each name's family and op."""
    if inside.is_empty():
        return _empty_updates()
    per_step = (
        inside.filter(pl.col(_ROLE).is_in(["topk", "sort", "softmax"]))
        .group_by("name", "idx")
        .agg(pl.len().alias("_n"), pl.col("_seg").n_unique().alias("_segs"), pl.col(_ROLE).first())
    )
    per_name = per_step.group_by("name").agg(
        pl.col("_n").median().alias("_n"), pl.col("_segs").median().alias("_segs"), pl.col(_ROLE).first()
    )
    per_name = per_name.join(keyed_like(names.select("name", "op"), per_name), on="name", how="left")
    layer = per_name.filter((pl.col("_n") >= PER_LAYER_MIN_PER_STEP) & (pl.col("_segs") >= PER_LAYER_MIN_SEGMENTS))
    if layer.is_empty():
        return _empty_updates()
    # the router's softmax runs as often as the router's top-k
    router_counts = layer.filter(pl.col(_ROLE) == "topk")["_n"].unique()
    router_softmax = pl.lit(has_moe) & pl.col("_n").is_in(router_counts.implode())
    topk = pl.col(_ROLE).is_in(["topk", "sort"])
    moe = pl.lit(has_moe)
    how = pl.format(
        " (by structure: {} per step, in {} layers)",
        pl.col("_n").round(0).cast(pl.Int64),
        pl.col("_segs").round(0).cast(pl.Int64),
    )

    def by_role(column: str, routing: str, other_topk: str) -> pl.Expr:
        """``column``: ``routing`` for MoE routing (top-k and sort with experts, the router's softmax),
        ``other_topk`` for any other top-k or sort, else attention."""
        return (
            pl.when(topk & moe)
            .then(pl.lit(routing))
            .when(topk)
            .then(pl.lit(other_topk))
            .when(router_softmax)
            .then(pl.lit(routing))
            .otherwise(pl.lit("attention"))
            .alias(column)
        )

    return layer.sort("name").select(
        "name",
        by_role("family", "moe", "top-k"),
        by_role("category", "MoE", "elementwise / other"),
        pl.when(topk & moe & (pl.col(_ROLE) == "topk"))
        .then(pl.concat_str(pl.lit("MoE router top-k"), how))
        .when(topk & moe)
        .then(pl.concat_str(pl.lit("MoE routing sort"), how))
        .when(topk)
        .then(pl.concat_str(pl.col("op"), pl.lit(", not sampling"), how))
        .when(router_softmax)
        .then(pl.concat_str(pl.lit("MoE router softmax"), how))
        .otherwise(pl.concat_str(pl.lit("softmax (eager attention)"), how))
        .alias("op"),
        pl.lit(STRUCTURE_MATCH).alias("match"),
    )


def _sampler_scan_updates(inside: pl.DataFrame) -> pl.DataFrame:
    """Scan kernels that run with the sampler, after the last layer kernel of their steps (rule 3); ``inside``: the
    kernels inside steps with their layer segment (``_seg``)."""
    if inside.filter(pl.col(_ROLE) == "scan").is_empty():
        return _empty_updates()
    inside = inside.with_columns((pl.col("_seg") == pl.col("_seg").max().over("idx")).alias("_tail"))
    # steps whose last segment (after the last layer kernel) holds the sampler's top-k or sort
    sampler_steps = inside.filter(pl.col("_tail") & pl.col(_ROLE).is_in(["topk", "sort"]))["idx"].unique()
    per_step = (
        inside.filter(pl.col(_ROLE) == "scan")
        .group_by("name", "idx")
        .agg(pl.len().alias("_n"), pl.col("_tail").all())
        .with_columns(
            (
                pl.col("_tail")
                & pl.col("idx").is_in(sampler_steps.implode())
                & (pl.col("_n") <= SAMPLER_SCAN_MAX_PER_STEP)
            ).alias("_with_sampler")
        )
    )
    per_name = per_step.group_by("name").agg(pl.len().alias("_steps"), pl.col("_with_sampler").sum().alias("_good"))
    found = per_name.filter((pl.col("_good") >= 2) & (pl.col("_good") >= SAMPLER_SCAN_SHARE * pl.col("_steps")))
    if found.is_empty():
        return _empty_updates()
    how = pl.format(" (by structure: after the last layer with the sampler, in {} of {} steps)", "_good", "_steps")
    return found.sort("name").select(
        "name",
        pl.lit("sampling").alias("family"),
        pl.lit("sampling / top-k").alias("category"),
        pl.concat_str(pl.lit("cumulative sum (top-p)"), how).alias("op"),
        pl.lit(STRUCTURE_MATCH).alias("match"),
    )


def _phase_updates(events: pl.DataFrame, names: pl.DataFrame) -> pl.DataFrame:
    """Attention kernels that run (>= PHASE_SHARE of their time) in steps of one phase only (rule 2); ``names``:
    each name's family and op."""
    att = events.filter(pl.col(_ROLE) == "attention")
    if att.is_empty():
        return _empty_updates()
    per = att.group_by("name").agg(
        pl.col("_dur").sum().alias("_total"),
        pl.col("_dur").filter(pl.col("_kind") == "decode").sum().alias("_decode"),
        pl.col("_dur").filter(pl.col("_kind") == "prefill").sum().alias("_prefill"),
    )
    per = per.join(keyed_like(names, per), on="name", how="left")
    total = pl.max_horizontal(pl.col("_total"), pl.lit(1))
    per = per.with_columns(
        pl.when(pl.col("_decode") >= PHASE_SHARE * total)
        .then(pl.lit("decode"))
        .when(pl.col("_prefill") >= PHASE_SHARE * total)
        .then(pl.lit("prefill"))
        .otherwise(pl.lit(None, pl.String))
        .alias("_phase"),
        pl.col("family").replace_strict(_NAMED_PHASE, default=None, return_dtype=pl.String).alias("_named"),
    )
    # a change: an unnamed phase found, or a named phase contradicted by the evidence
    per = per.filter(
        pl.col("_phase").is_not_null() & (pl.col("_named").is_null() | (pl.col("_named") != pl.col("_phase")))
    )
    if per.is_empty():
        return _empty_updates()
    share = pl.format("{}%", (100 * pl.max_horizontal("_decode", "_prefill") / total).round(0).cast(pl.Int64))
    note = (
        pl.when(pl.col("_named").is_null())
        .then(pl.format(" ({} by phase: {} of its time in {} steps)", pl.col("_phase"), share, pl.col("_phase")))
        .otherwise(
            pl.format(" (name says {}, but {} of its time is in {} steps)", pl.col("_named"), share, pl.col("_phase"))
        )
    )
    return per.sort("name").select(
        "name",
        pl.col("_phase").replace_strict({k: v[0] for k, v in _PHASE.items()}, return_dtype=pl.String).alias("family"),
        pl.col("_phase").replace_strict({k: v[1] for k, v in _PHASE.items()}, return_dtype=pl.String).alias("category"),
        pl.concat_str(pl.col("op"), note).alias("op"),
        pl.lit(STRUCTURE_MATCH).alias("match"),
    )
