"""Kernel identity from the run's structure (analysis/refine.py): a per-layer top-k is the MoE router, not sampling;
attention kernels take the phase of the steps they run in. Synthetic runs where the rules must fire and where they
must not, then real traces whose truth is in tests/data/runs/README.md and ../shared/traces/engines/README.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest

from nsys_doctor.analysis.ops import MATCH_KINDS, STRUCTURE_MATCH, classify
from nsys_doctor.analysis.refine import refine_ops
from nsys_doctor.cli.report import diagnose_trace
from nsys_doctor.loaders import load_rules

from .conftest import DATA, TRACES, open_trace

RUNS = DATA / "runs"
ENGINES = TRACES / "engines"

# real kernel names (as PyTorch / cuDNN / the C++ engine name them)
ROUTER_TOPK = "void at::native::sbtopk::gatherTopK<float, unsigned int, (int)2, (bool)0>(T2)"
ROUTER_SORT = "void at::native::bitonicSortKVInPlace<(int)2, (int)-1, (int)16, (int)16, float, long>(T8)"
ROUTER_SOFTMAX = "void <unnamed>::softmax_warp_forward<float, float, float, (int)3, (bool)0, (bool)0>(T2 *)"
SAMPLER_TOPK = "void at::native::mbtopk::gatherTopK<float, unsigned int, (int)2>(T2)"
SAMPLER_PASS = "void at::native::mbtopk::computeBlockDigitCounts<float, unsigned int, unsigned int, (int)2>(T2)"
SAMPLER_SOFTMAX = "void at::native::<unnamed>::cunn_SoftMaxForward<(int)8, float, float, float>(T4 *)"
SDPA = "cudnn_generated_fort_native_sdpa_sm80_flash_fprop_wmma_f16_knob_3_64x64x64_4x1x1_kernel0_0"
SDPA_PREFILL = "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x64_4x1x1_kernel0_0"
NORM = "void rms_norm_kernel<__nv_bfloat16>(T1 *)"
GEMV = "nvjet_sm90_tst_128x8_64x12_2x1_v_bz_TNT"
GEMM = "nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_TNT"
MOE = "kernelHistogram1D"
DECODE_ATTN = "decode_attention_kernel"
PREFILL_ATTN = "prefill_attention_kernel"


def _run(
    steps: list[tuple[str, list[str]]], extra: Sequence[str] = ()
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(ops, launched kernels, steps table) of a run: each step is (kind, kernel names in launch order), kernels
    1 us apart (launched 100 ns before they start), steps 1 ms apart. ``extra``: kernels before the first step."""
    rows: list[tuple[str, int, int, int]] = []
    table: list[tuple[int, str, int, int]] = []
    t = 0
    for name in extra:
        rows.append((name, t + 100, t, 500))
        t += 1_000
    for idx, (kind, names) in enumerate(steps):
        start = 1_000_000 * (idx + 1)
        for k, name in enumerate(names):
            rows.append((name, start + 1_000 * k + 100, start + 1_000 * k, 500))
        table.append((idx, kind, start, start + 1_000 * len(names)))
    lk = pl.DataFrame(
        rows, schema={"name": pl.String, "start": pl.Int64, "l_start": pl.Int64, "dur": pl.Int64}, orient="row"
    )
    st = pl.DataFrame(
        table, schema={"idx": pl.Int64, "kind": pl.String, "start": pl.Int64, "end": pl.Int64}, orient="row"
    )
    ops = classify(lk["name"].unique(maintain_order=True).to_list(), load_rules())
    return ops, lk, st


def _layer(attn: str = SDPA, router: bool = True) -> list[str]:
    """One decoder layer: norm, QKV GEMV, attention, O GEMV, norm, (router GEMV, softmax, top-k, sort), experts."""
    moe = [GEMV, ROUTER_SOFTMAX, ROUTER_TOPK, ROUTER_SORT] if router else []
    return [NORM, GEMV, attn, GEMV, NORM, *moe, GEMV, GEMV]


def _sampler() -> list[str]:
    """The sampler after the LM head: top-k over the vocabulary (4 radix passes, one gather), softmax."""
    return [NORM, GEMV, *([SAMPLER_PASS] * 4), SAMPLER_TOPK, SAMPLER_SOFTMAX]


def _forward(layers: int = 2, attn: str = SDPA, router: bool = True) -> list[str]:
    return [n for _ in range(layers) for n in _layer(attn, router)] + _sampler()


def _family(ops: pl.DataFrame, name: str) -> tuple[str, str, str, str]:
    row = ops.filter(pl.col("name") == name).row(0, named=True)
    return row["family"], row["category"], row["op"], row["match"]


# --- rule 1: a per-layer top-k is not sampling -----------------------------------------------------------------


def test_per_layer_topk_in_a_moe_run_is_the_router() -> None:
    ops, lk, st = _run([("prefill", _forward())] + [("decode", _forward())] * 5, extra=[MOE])
    before = {n: _family(ops, n)[0] for n in (ROUTER_TOPK, ROUTER_SORT, ROUTER_SOFTMAX)}
    assert before == dict.fromkeys(before, "sampling")  # by name alone, the router is "sampling"
    out = refine_ops(ops, lk, st)
    for name in (ROUTER_TOPK, ROUTER_SORT, ROUTER_SOFTMAX):
        family, category, op, match = _family(out, name)
        assert (family, category, match) == ("moe", "MoE", STRUCTURE_MATCH), name
        assert "MoE rout" in op and "2 per step, in 2 layers" in op, op
    assert _family(out, ROUTER_TOPK)[2].startswith("MoE router top-k")
    # the sampler runs once per step (its radix select 4 passes, but all after the last layer): still sampling
    for name in (SAMPLER_TOPK, SAMPLER_PASS, SAMPLER_SOFTMAX):
        assert _family(out, name) == _family(ops, name), name
        assert _family(out, name)[0] == "sampling"


def test_per_layer_topk_without_moe_kernels_is_not_sampling_either() -> None:
    ops, lk, st = _run([("decode", _forward())] * 4)
    out = refine_ops(ops, lk, st)
    family, category, op, match = _family(out, ROUTER_TOPK)
    assert (family, category, match) == ("top-k", "elementwise / other", STRUCTURE_MATCH)
    assert op.startswith("top-k, not sampling"), op
    # a per-layer softmax with no MoE in the run is an eager attention's softmax
    assert _family(out, ROUTER_SOFTMAX)[:2] == ("attention", "attention")
    assert _family(out, SAMPLER_TOPK)[0] == "sampling"


def test_topk_once_per_step_stays_sampling() -> None:
    # one MoE layer: the router runs once per step like the sampler; nothing tells them apart, so nothing changes
    ops, lk, st = _run([("decode", _forward(layers=1))] * 6, extra=[MOE])
    out = refine_ops(ops, lk, st)
    for name in (ROUTER_TOPK, ROUTER_SORT, ROUTER_SOFTMAX, SAMPLER_TOPK, SAMPLER_PASS, SAMPLER_SOFTMAX):
        assert _family(out, name) == _family(ops, name), name
        assert _family(out, name)[0] == "sampling"
    # several top-k instances per step, but all between the same two layer kernels (a multi-pass top-k): sampling
    ops, lk, st = _run([("decode", [NORM, GEMV, DECODE_ATTN, ROUTER_TOPK, ROUTER_TOPK, ROUTER_TOPK, GEMV])] * 4, [MOE])
    assert refine_ops(ops, lk, st).equals(ops)


def test_topk_that_is_per_layer_in_few_steps_only_stays() -> None:
    # the median step has one instance: a stray step with two is no evidence
    steps = [("decode", _forward(layers=1))] * 5 + [("decode", _forward(layers=2))] * 2
    ops, lk, st = _run(steps, extra=[MOE])
    assert _family(refine_ops(ops, lk, st), ROUTER_TOPK)[0] == "sampling"


# --- rule 3: a cumulative sum in the sampler is top-p's --------------------------------------------------------

CUMSUM = "void at::native::tensor_kernel_scan_innermost_dim<float, std::plus<float>>(T1 *, const T1 *)"
SAMPLER_SORT = "void at::native::radixSortKVInPlace<(int)2, (int)-1, (int)32, (int)4, float, long>(T8)"


def _top_p_sampler() -> list[str]:
    """Top-k, then top-p: sort the probabilities, their cumulative sum, softmax."""
    return [NORM, GEMV, SAMPLER_TOPK, SAMPLER_SORT, CUMSUM, SAMPLER_SOFTMAX]


def test_cumsum_beside_the_sampler_is_top_p() -> None:
    forward = [n for _ in range(2) for n in _layer(router=False)] + _top_p_sampler()
    ops, lk, st = _run([("decode", forward)] * 5)
    assert _family(ops, CUMSUM)[0] == "reduction"  # by name alone
    family, category, op, match = _family(refine_ops(ops, lk, st), CUMSUM)
    assert (family, category, match) == ("sampling", "sampling / top-k", STRUCTURE_MATCH)
    assert op == "cumulative sum (top-p) (by structure: after the last layer with the sampler, in 5 of 5 steps)"


@pytest.mark.parametrize(
    "forward",
    [
        # the cumsum of position ids, before the layers
        [CUMSUM] + [n for _ in range(2) for n in _layer(router=False)] + _top_p_sampler()[:-3] + [SAMPLER_SOFTMAX],
        # greedy decoding: no top-k or sort beside it
        [n for _ in range(2) for n in _layer(router=False)] + [NORM, GEMV, CUMSUM, SAMPLER_SOFTMAX],
        # a cumsum in every layer
        [n for _ in range(2) for n in [*_layer(router=False), CUMSUM]] + _top_p_sampler()[:-2] + [SAMPLER_SOFTMAX],
        # three times a step after the LM head: not the one cumsum of top-p
        [n for _ in range(2) for n in _layer(router=False)] + _top_p_sampler() + [CUMSUM, CUMSUM],
    ],
    ids=["before-the-layers", "no-sampler", "per-layer", "three-a-step"],
)
def test_other_cumsums_stay_reductions(forward: list[str]) -> None:
    ops, lk, st = _run([("decode", forward)] * 5)
    assert _family(refine_ops(ops, lk, st), CUMSUM) == _family(ops, CUMSUM)


def test_cumsum_with_the_sampler_in_few_of_its_steps_stays() -> None:
    layers = [n for _ in range(2) for n in _layer(router=False)]
    steps = [("decode", layers + _top_p_sampler())] * 2 + [("decode", [*layers, NORM, GEMV, CUMSUM])] * 3
    ops, lk, st = _run(steps)
    assert _family(refine_ops(ops, lk, st), CUMSUM)[0] == "reduction"


# --- rule 2: attention by phase --------------------------------------------------------------------------------


def test_attention_takes_the_phase_it_runs_in() -> None:
    steps = [("prefill", _forward(attn=SDPA_PREFILL, router=False))] + [("decode", _forward(router=False))] * 8
    ops, lk, st = _run(steps)
    assert _family(ops, SDPA)[0] == _family(ops, SDPA_PREFILL)[0] == "attention"
    out = refine_ops(ops, lk, st)
    family, category, op, match = _family(out, SDPA)
    assert (family, category, match) == ("attention-decode", "attention (decode)", STRUCTURE_MATCH)
    assert op.startswith("SDPA (cuDNN flash fprop) (decode by phase: 100%"), op
    assert _family(out, SDPA_PREFILL)[:2] == ("attention-prefill", "attention (prefill)")


def test_attention_split_across_phases_stays_attention() -> None:
    steps = [("prefill", _forward(router=False))] * 2 + [("decode", _forward(router=False))] * 8
    ops, lk, st = _run(steps)
    out = refine_ops(ops, lk, st)
    assert _family(out, SDPA) == _family(ops, SDPA)
    assert _family(out, SDPA)[0] == "attention"


def test_attention_mostly_outside_steps_is_not_given_a_phase() -> None:
    # 8 of its 16 instances run before the first step (warm-up in the window): 50% is no phase
    steps = [("decode", _forward(router=False))] * 4
    ops, lk, st = _run(steps, extra=[SDPA] * 8)
    assert _family(refine_ops(ops, lk, st), SDPA)[0] == "attention"


def test_named_phase_is_kept_when_the_steps_agree() -> None:
    steps = [("prefill", _forward(attn=PREFILL_ATTN, router=False))] + [
        ("decode", _forward(attn=DECODE_ATTN, router=False))
    ] * 4
    ops, lk, st = _run(steps)
    assert _family(ops, DECODE_ATTN)[0] == "attention-decode" and _family(ops, DECODE_ATTN)[3] == "meaning"
    out = refine_ops(ops, lk, st)
    assert out.equals(ops)


def test_named_decode_kernel_running_in_prefill_steps_says_so() -> None:
    steps = [("prefill", _forward(attn=DECODE_ATTN, router=False))] * 3 + [
        ("decode", _forward(attn=PREFILL_ATTN, router=False))
    ]
    ops, lk, st = _run(steps)
    out = refine_ops(ops, lk, st)
    family, category, op, match = _family(out, DECODE_ATTN)
    assert (family, category, match) == ("attention-prefill", "attention (prefill)", STRUCTURE_MATCH)
    assert "name says decode" in op and "prefill steps" in op, op
    assert _family(out, PREFILL_ATTN)[0] == "attention-decode"


def test_iterations_have_no_phase() -> None:
    ops, lk, st = _run([("iteration", _forward(router=False))] * 5)
    assert refine_ops(ops, lk, st).equals(ops)


# --- the function's contract ---------------------------------------------------------------------------------


def test_nothing_to_refine_without_steps_or_kernels() -> None:
    ops, lk, st = _run([("decode", _forward())] * 4, extra=[MOE])
    assert refine_ops(ops, lk, st.clear()).equals(ops)
    assert refine_ops(ops, lk.clear(), st).equals(ops)
    assert refine_ops(ops.clear(), lk, st).equals(ops.clear())


def test_rows_columns_and_order_kept_and_deterministic() -> None:
    ops, lk, st = _run([("prefill", _forward())] + [("decode", _forward())] * 5, extra=[MOE])
    out = refine_ops(ops, lk, st)
    assert out.columns == ops.columns and out.schema == ops.schema
    assert out["name"].to_list() == ops["name"].to_list()
    assert out.drop("family", "category", "op", "match").equals(ops.drop("family", "category", "op", "match"))
    shuffled = refine_ops(ops.reverse(), lk.sample(fraction=1.0, shuffle=True, seed=3), st.reverse())
    assert shuffled.equals(out.reverse())
    # the new match value is not one a rule can claim
    assert STRUCTURE_MATCH not in MATCH_KINDS


def test_kernels_without_a_launch_use_their_start() -> None:
    ops, lk, st = _run([("prefill", _forward(router=False))] + [("decode", _forward(router=False))] * 3)
    out = refine_ops(ops, lk.with_columns(pl.lit(None, pl.Int64).alias("l_start")), st)
    assert _family(out, SDPA)[0] == "attention"  # split across phases
    out = refine_ops(ops, lk.drop("l_start", "dur").with_columns((pl.col("start") + 500).alias("end")), st)
    assert out.equals(refine_ops(ops, lk, st))


def test_a_million_kernels_give_the_same_identity() -> None:
    ops, lk, st = _run([("decode", _forward(layers=28))] * 8, extra=[MOE])
    big = pl.concat([lk.with_columns(pl.col("start", "l_start") + 10_000_000 * i) for i in range(600)])
    steps = pl.concat(
        [st.with_columns(pl.col("start", "end") + 10_000_000 * i, pl.col("idx") + 8 * i) for i in range(600)]
    )
    out = refine_ops(ops, big, steps)
    assert big.height > 1_000_000
    assert _family(out, ROUTER_TOPK)[0] == "moe"


# --- real traces ---------------------------------------------------------------------------------------------


def _kernel_families(path: Path) -> dict[str, tuple[str, str, int]]:
    """Per kernel name in the report's window: (family, match, instances), from the report itself."""
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    d = diagnose_trace(open_trace(path), load_rules(), top=100_000)
    return {r["name"]: (r["family"], r["match"], r["count"]) for r in d.kernels.iter_rows(named=True)}


def _one(fams: dict[str, tuple[str, str, int]], pattern: str) -> tuple[str, str, int]:
    found = [v for k, v in fams.items() if pattern in k]
    assert len(found) == 1, (pattern, found)
    return found[0]


def test_moe_capture_router_topk_is_moe_and_the_sampler_stays_sampling() -> None:
    # README: Qwen2-MoE, 2 layers, 2 measured requests of 1 prefill + 11 decode = 24 forward passes; the router
    # (softmax_warp_forward, gatherTopK + bitonicSortKVInPlace) runs once per layer, the sampler (mbtopk radix select,
    # cunn_SoftMaxForward, multinomial) once per pass
    fams = _kernel_families(RUNS / "hf_moe_generate_sample_capture.sqlite")
    passes, layers = 24, 2
    assert _one(fams, "sbtopk::gatherTopK") == ("moe", STRUCTURE_MATCH, layers * passes)
    assert _one(fams, "bitonicSortKVInPlace") == ("moe", STRUCTURE_MATCH, layers * passes)
    assert _one(fams, "softmax_warp_forward") == ("moe", STRUCTURE_MATCH, layers * passes)
    assert _one(fams, "mbtopk::gatherTopK") == ("sampling", "library", passes)
    assert _one(fams, "cunn_SoftMaxForward") == ("sampling", "library", passes)
    assert _one(fams, "distribution_elementwise_grid_stride_kernel")[:2] == ("sampling", "library")
    assert all(f != "sampling" for k, (f, _m, _n) in fams.items() if "sbtopk" in k)


def test_hf_generate_attention_by_phase() -> None:
    # README: Llama, 2 layers, 2 measured requests of 1 prefill (48 tokens) + 19 decode passes; cuDNN SDPA picks one
    # kernel for the prefill's 48 tokens and another for decode's 1 token: 2 x 2 prefill, 2 x 38 decode instances
    fams = _kernel_families(RUNS / "hf_llama_generate_whole.sqlite")
    attention = {k: v for k, v in fams.items() if "sdpa" in k}
    assert sorted((f, n) for f, _m, n in attention.values()) == [("attention-decode", 76), ("attention-prefill", 4)]
    assert {m for _f, m, _n in attention.values()} == {STRUCTURE_MATCH}


@pytest.mark.parametrize(
    ("trace", "requests"), [("cpp_llama3b_graph.sqlite", 1), ("cpp_llama3b_eager_whole.sqlite", 2)]
)
def test_cpp_engine_attention_families(trace: str, requests: int) -> None:
    # engines README: 28 layers; per measured request 1 prefill step (prefill_attention_kernel) + 47 decode steps
    # (decode_attention_kernel). The names say the phase and the steps agree: read by meaning, unchanged
    fams = _kernel_families(ENGINES / trace)
    layers = 28
    assert _one(fams, "decode_attention_kernel") == ("attention-decode", "meaning", layers * 47 * requests)
    assert _one(fams, "prefill_attention_kernel") == ("attention-prefill", "meaning", layers * requests)
    assert not any(m == STRUCTURE_MATCH for _f, m, _n in fams.values())


# --- rule 4: a training step samples nothing --------------------------------------------------------------------

DROPOUT_RNG = "void at::native::<unnamed>::distribution_elementwise_grid_stride_kernel<float, (int)4>(long, T4)"


def test_training_steps_have_no_sampling() -> None:
    steps = [("iteration", [*_forward(layers=2, router=False), DROPOUT_RNG])] * 4
    ops, lk, st = _run(steps)
    assert {_family(ops, n)[0] for n in (SAMPLER_TOPK, SAMPLER_SOFTMAX, DROPOUT_RNG)} == {"sampling"}
    same = refine_ops(ops, lk, st)  # not training: the names' sampling stays
    assert _family(same, SAMPLER_SOFTMAX)[0] == "sampling"
    out = refine_ops(ops, lk, st, training=True)
    assert _family(out, SAMPLER_SOFTMAX) == (
        "reduction",
        "elementwise / other",
        "softmax / log-softmax: the loss's or attention's (a training step samples nothing)",
        STRUCTURE_MATCH,
    )
    assert _family(out, DROPOUT_RNG)[:2] == ("elementwise", "elementwise / other")
    family, category, op, match = _family(out, SAMPLER_TOPK)
    assert (family, category, match) == ("top-k", "elementwise / other", STRUCTURE_MATCH)
    assert op.endswith("(a training step samples nothing)"), op
    assert not (out["family"] == "sampling").any()
    # every other row is as the names made it
    others = ~ops["family"].is_in(["sampling"])
    assert out.filter(others).equals(ops.filter(others))


def test_training_keeps_the_moe_router() -> None:
    ops, lk, st = _run([("iteration", _forward())] * 4, extra=[MOE])
    out = refine_ops(ops, lk, st, training=True)
    assert _family(out, ROUTER_TOPK)[0] == "moe"  # rule 1 first
    assert _family(out, SAMPLER_SOFTMAX)[0] == "reduction"
