"""Run structure (kind, phases, requests, warm-up, prefill/decode steps, iterations) found from the data.

Expected values are the ground truth of the traces' READMEs (../shared/traces/README.md, engines/README.md,
public/README.md), the workloads that made them (../shared/device) and the capture record of
tests/data/capture_decode.sqlite, never the module's own output. Step counts may be off by one.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nsys_doctor.analysis.phases import launched_kernels
from nsys_doctor.analysis.structure import RunStructure, find_structure, structure_of
from nsys_doctor.analysis.structure.sequence import Api, Seq, kernel_sequence
from nsys_doctor.trace.meta import capture_settings
from nsys_doctor.trace.tables import TraceFrames

from .conftest import DATA, SAMPLE, TRACES, needs_shared, open_trace

ENGINES = TRACES / "engines"
PUBLIC = TRACES / "public"
MULTI = TRACES / "multigpu"
RUNS = DATA / "runs"


@cache
def frames(path: Path) -> tuple[TraceFrames, str | None]:
    trace = open_trace(path)
    return TraceFrames(trace), capture_settings(trace).get("capture_range")  # type: ignore[return-value]


@cache
def structure(path: Path, nvtx: bool = True) -> RunStructure:
    f, cap = frames(path)
    return find_structure(
        f.kernels, f.api, f.memcpy, f.memset, f.nvtx if nvtx else f.nvtx.clear(), cap, None, f.graph_launches
    )


@dataclass(frozen=True)
class Truth:
    kind: str
    requests: int  # all requests, warm-up included
    warmup: int
    prefill: int  # in measured requests
    decode: int  # in measured requests
    iterations: int = 0  # in measured requests
    total_passes: int | None = None  # forward passes in the whole trace (warm-up included)


def within_one(found: int, truth: int) -> bool:
    return abs(found - truth) <= 1


def check(s: RunStructure, t: Truth) -> None:
    d = s.to_dict()
    got = (d["kind"], d["requests"], d["warmup_requests"], d["steps"])
    assert s.kind == t.kind, got
    assert len(s.requests) == t.requests, got
    assert len(s.warmup_requests) == t.warmup, got
    assert within_one(s.count("prefill"), t.prefill), got
    assert within_one(s.count("decode"), t.decode), got
    assert within_one(s.count("iteration"), t.iterations), got
    if t.total_passes is not None:
        assert within_one(len(s.steps), t.total_passes), (len(s.steps), got)
    if t.kind != "llm-decode":
        assert s.count("decode", measured=False) == 0
    if t.kind == "iterations":
        assert s.count("prefill", measured=False) == 0
    # the steps of a request are in time order and do not overlap
    for a, b in zip(s.steps, s.steps[1:], strict=False):
        assert a.start <= a.end and (a.request != b.request or a.end < b.start)


# ------------------------------------------------------------------------------------------ own corpus (H100)
OWN = {
    # 1 request, prompt 1, 128 tokens: the prefill step then 127 graphed decode steps (127 graph launches)
    "decode_graph_node": Truth("llm-decode", 1, 0, 1, 127),
    "decode_graph_stop": Truth("llm-decode", 1, 0, 1, 127),
    # graph-level capture: the graphs' kernels are missing, the graph launches still mark the 127 decode steps
    "decode_graph_graph": Truth("llm-decode", 1, 0, 1, 127),
    "decode_eager": Truth("llm-decode", 1, 0, 1, 127),
    "ctx_long_graph_node": Truth("llm-decode", 1, 0, 1, 127),  # prompt 2048 then 128 tokens
    "decode_graph_extras": Truth("llm-decode", 1, 0, 1, 63),  # 64 tokens
    "prefill_2048": Truth("llm-prefill", 1, 0, 1, 0),  # prompt 2048, 1 output token: no decode
    # 1 warm-up + 3 requests of prompt 16 / 96 tokens, whole run
    "decode_pathologies": Truth("llm-decode", 4, 1, 3, 3 * 95, total_passes=4 * 96),
    # one capture range per file, each 1 request of 16 tokens
    "repeat.1": Truth("llm-decode", 1, 0, 1, 15),
    "repeat.2": Truth("llm-decode", 1, 0, 1, 15),
}

ENGINE = {
    # cudaProfilerApi range around the measured request: 1 prefill (256 tokens) + 47 graphed decode steps
    "cpp_llama3b_graph": Truth("llm-decode", 1, 0, 1, 47),
    # whole process: loading, 1 warm-up request, 2 measured requests of 1 prefill + 47 decode steps
    "cpp_llama3b_eager_whole": Truth("llm-decode", 3, 1, 2, 2 * 47, total_passes=3 * 48),
    # generate: 1 warm-up + 2 measured requests of 40 forward passes (1 prefill + 39 decode)
    "hf_qwen2_generate": Truth("llm-decode", 3, 1, 2, 2 * 39, total_passes=3 * 40),
    # 1 warm-up + 1 measured request of 32 tokens (1 prefill + 31 decode), compilation and autotuning before
    "jax_decode_small": Truth("llm-decode", 2, 1, 1, 31, total_passes=2 * 32),
}


@needs_shared
@pytest.mark.parametrize("name", sorted(OWN))
def test_own_traces(name):
    check(structure(TRACES / f"{name}.sqlite"), OWN[name])


@needs_shared
@pytest.mark.parametrize("name", sorted(ENGINE))
def test_engine_traces(name):
    check(structure(ENGINES / f"{name}.sqlite"), ENGINE[name])


@needs_shared
@pytest.mark.parametrize(
    "name", ["decode_graph_node", "decode_eager", "ctx_long_graph_node", "decode_graph_extras", "repeat.1"]
)
def test_without_nvtx_the_kernel_sequence_gives_the_same_structure(name):
    s = structure(TRACES / f"{name}.sqlite", nvtx=False)
    check(s, OWN[name])
    assert s.source == "kernel-period"
    assert not any(e.source == "nvtx" for e in s.evidence)


@needs_shared
def test_without_nvtx_the_first_of_identical_requests_is_warmup():
    s = structure(TRACES / "decode_pathologies.sqlite", nvtx=False)
    check(s, OWN["decode_pathologies"])
    assert s.requests[0].warmup and not any(r.warmup for r in s.requests[1:])


@needs_shared
def test_nvtx_ranges_that_line_up_are_evidence():
    s = structure(TRACES / "decode_pathologies.sqlite")
    nv = [e for e in s.evidence if e.source == "nvtx"]
    assert any("'decode_step'" in e.detail and e.fact == "passes" for e in nv)
    assert any("'iter'" in e.detail and e.fact == "requests" for e in nv)
    assert s.requests[0].warmup and "NVTX request ranges" in s.requests[0].reason
    # the measured requests are those inside the 'iter' ranges; the loading phase comes first
    assert s.phases[0].kind == "loading"
    assert s.window is not None and s.window[0] >= s.requests[1].start


@needs_shared
def test_prefill_steps_are_not_decode_steps():
    s = structure(TRACES / "ctx_long_graph_node.sqlite")
    first = s.steps[0]
    assert first.kind == "prefill"
    decode = [st.gpu_time for st in s.steps if st.kind == "decode"]
    assert first.gpu_time > 3 * sorted(decode)[len(decode) // 2]


@needs_shared
def test_graph_level_capture_steps_follow_graph_launches():
    s = structure(TRACES / "decode_graph_graph.sqlite")
    assert any("graph launches" in e.detail for e in s.evidence if e.fact == "passes")


# ------------------------------------------------------------------------------------------ engines
@needs_shared
def test_cpp_engine_phases_and_markers():
    s = structure(ENGINES / "cpp_llama3b_eager_whole.sqlite")
    kinds = [p.kind for p in s.phases]
    assert kinds[0] == "loading" and "warm-up" in kinds and kinds[-1] == "measured"
    loading = s.phases[0]
    assert "init_weights_kernel" in loading.detail or "module" in loading.detail
    assert s.requests[0].warmup and s.window is not None and s.window[0] > s.requests[0].end
    # a prefill step is 10x a decode step and each request starts with one
    for r in s.requests:
        steps = [st for st in s.steps if st.request == r.index]
        assert steps[0].kind == "prefill" and all(st.kind == "decode" for st in steps[1:])
    assert s.period is not None and 300 <= s.period <= 360
    graph = structure(ENGINES / "cpp_llama3b_graph.sqlite")
    assert graph.marker is not None and graph.confidence == "high"


@needs_shared
def test_generate_syncs_do_not_split_tokens():
    s = structure(ENGINES / "hf_qwen2_generate.sqlite")
    assert len(s.steps) == 120  # two syncs per token, one step per token
    assert s.requests[0].warmup and "load" in s.requests[0].reason


@needs_shared
def test_xla_compilation_and_autotuning_are_phases_not_steps():
    s = structure(ENGINES / "jax_decode_small.sqlite")
    kinds = {p.kind for p in s.phases}
    assert {"loading", "autotuning", "compilation"} <= kinds
    assert s.source == "kernel-period"
    assert not any(e.source == "nvtx" and e.fact in ("passes", "requests") for e in s.evidence)
    measured = s.measured_requests[0]
    tune = next(p for p in s.phases if p.kind == "autotuning")
    assert tune.end < measured.start


@needs_shared
def test_vit_is_iterations_not_decode():
    s = structure(ENGINES / "vit_b16_infer.sqlite")
    assert s.kind == "iterations"
    assert len(s.steps) == 50 and all(st.kind == "iteration" for st in s.steps)
    # 2 warm-up + 3 measured requests of 10 passes: the data separates warm-up (20 passes, lazy loading, a
    # device sync) from the 30 measured passes, not the requests inside each group (no sync or gap between them)
    assert s.count("iteration") == 30
    assert sum(r.iterations for r in s.warmup_requests) == 20
    d = s.to_dict()
    assert d["steps"] == {"prefill": 0, "decode": 0, "iteration": 30} and d["iterations"] == 30


# ------------------------------------------------------------------------------------------ multi-GPU
@needs_shared
@pytest.mark.parametrize("rank", [0, 1])
def test_tp2_rank_traces(rank):
    # 64 decode steps captured after one warm-up request; no prompt (decode from position 0)
    s = structure(MULTI / f"tp2_straggler_rank{rank}.sqlite")
    check(s, Truth("llm-decode", 1, 0, 0, 64))


@needs_shared
def test_tp2_allranks_is_one_process_at_a_time():
    # both ranks in one report, whole run: per process one warm-up request and one measured request of 32 steps
    s = structure(MULTI / "tp2_allranks.sqlite")
    check(s, Truth("llm-decode", 2, 1, 0, 32))
    assert any("processes launch kernels" in n for n in s.notes)


# ------------------------------------------------------------------------------------------ public traces
@needs_shared
@pytest.mark.parametrize(
    "name",
    ["fuser_report1_8fa9ec2", "gpu4_report", "gpu4_report2", "rodinia_gaussian_report2", "sc23omp_report3"],
)
def test_tests_and_hpc_codes_are_unstructured(name):
    s = structure(PUBLIC / f"{name}.sqlite")
    assert s.kind == "unstructured" and not s.steps and not s.requests


@needs_shared
def test_no_kernels_at_all():
    s = structure(PUBLIC / "weatherbench2_report1.sqlite")
    assert s.kind == "unstructured" and not s.steps
    assert any("no kernel rows" in n for n in s.notes)


@needs_shared
def test_dlprof_per_op_ranges_are_never_steps():
    s = structure(PUBLIC / "dlprof_nsys_profile_a.sqlite")
    assert s.source != "nvtx"
    assert not any(e.source == "nvtx" for e in s.evidence)
    assert not any("{" in e.detail for e in s.evidence)


@needs_shared
def test_nested_numbered_nvtx_ranges_give_steps_from_one_level():
    s = structure(PUBLIC / "llama3inf_real_inference_simulation.sqlite")
    # token_N_processing around layer_N_token_M: steps from the token level, names grouped, never listed
    assert s.source == "nvtx"
    assert len(s.steps) == 64
    ev = next(e for e in s.evidence if e.fact == "passes")
    assert "token_N_processing" in ev.detail
    demo = structure(PUBLIC / "llama3inf_demo.sqlite")
    assert len(demo.evidence) + len(demo.notes) < 20
    assert all(len(e.detail) < 300 for e in demo.evidence)


@needs_shared
@pytest.mark.parametrize("name", ["con_kernel", "ex-gpu.s10", "profile16"])
def test_old_exports_do_not_break(name):
    s = structure(TRACES / "external" / "extrap" / f"{name}.sqlite")
    assert s.kind in ("unstructured", "iterations")


# ------------------------------------------------------------------------------------------ bundled data
def test_bundled_sample():
    # prefill + 16 decode steps of a graphed decode, cut from decode_graph_node
    trace = open_trace(SAMPLE)
    s = structure_of(TraceFrames(trace), capture_settings(trace).get("capture_range"))  # type: ignore[arg-type]
    check(s, Truth("llm-decode", 1, 0, 1, 16))
    assert s.steps[0].kind == "prefill"


def test_capture_fixture():
    # the end-to-end capture (prompt 1, graphed decode), cut to its first 25 forward passes: the prefill and the
    # 24 decode steps its NVTX ranges name
    check(structure(DATA / "capture_decode.sqlite"), Truth("llm-decode", 1, 0, 1, 24))


# tests/data/runs/README.md, section 1 (ground truth of each capture)
RUN_TRUTH = {
    # 1 warm-up + 2 measured generate requests of 1 prefill + 19 decode passes
    "hf_llama_generate_whole": Truth("llm-decode", 3, 1, 2, 38, total_passes=60),
    # capture range holds exactly the 2 measured requests (12 passes: 1 prefill + 11 decode)
    "hf_moe_generate_sample_capture": Truth("llm-decode", 2, 0, 2, 22, total_passes=24),
    # prefill only: 1 warm-up pass + 5 measured passes, one pass per request
    "hf_qwen3_prefill_whole": Truth("llm-prefill", 6, 1, 5, 0, total_passes=6),
    # decode steps only: 1 warm-up request of 16 steps + 3 measured requests of 40 (graphs)
    "compile_decode_graphs_whole": Truth("llm-decode", 4, 1, 0, 120, total_passes=136),
    # decode steps only: 1 warm-up request of 16 steps + 2 measured requests of 32
    "compile_decode_default_warmcache": Truth("llm-decode", 3, 1, 0, 64, total_passes=80),
    # 2 warm-up + 2 measured requests of 1 eager prefill + 19 graphed decode passes
    "hf_mistral_static_compile_whole": Truth("llm-decode", 4, 2, 2, 38, total_passes=80),
    # generate with prompt lookup decoding (no draft found in a random prompt: every pass is one token), whose n-gram
    # search gathers once per request: 1 warm-up + 2 measured requests of 1 prefill + 15 decode passes (section 8)
    "hf_prompt_lookup_small_whole": Truth("llm-decode", 3, 1, 2, 30, total_passes=48),
    # requests of different lengths: 1 warm-up request of 8 passes, then 24, 16 and 32 (1 prefill + the rest decode)
    "hf_varlen_generate_whole": Truth("llm-decode", 4, 1, 3, 69, total_passes=80),
    # a Mamba (no attention; its prefill scans the prompt's tokens in a loop): 1 warm-up + 2 measured requests of
    # 1 prefill + 15 decode passes
    "hf_mamba_generate_whole": Truth("llm-decode", 3, 1, 2, 30, total_passes=48),
}


def _runs_here(name: str) -> bool:
    return (RUNS / f"{name}.sqlite").is_file()


@pytest.mark.parametrize("name", sorted(RUN_TRUTH))
def test_runs(name):
    if not _runs_here(name):
        pytest.skip(f"tests/data/runs/{name}.sqlite is not present")
    s = structure(RUNS / f"{name}.sqlite")
    check(s, RUN_TRUTH[name])
    assert not s.training and s.micro_batches is None  # inference: no backward kernel


@pytest.mark.skipif(not _runs_here("bert_base_nvtx_whole"), reason="trace not present")
def test_runs_encoder_with_nvtx_iterations():
    # 3 warm-up iterations (NVTX warmup_N) + 10 measured (iteration_N), one forward pass each; not an LLM
    s = structure(RUNS / "bert_base_nvtx_whole.sqlite")
    assert s.kind == "iterations"
    assert len(s.steps) == 13 and s.count("iteration") == 10
    assert sum(r.iterations for r in s.warmup_requests) == 3
    assert any(e.source == "nvtx" and "iteration_N" in e.detail for e in s.evidence)


@pytest.mark.skipif(not _runs_here("resnet50_fp16_cl_whole"), reason="trace not present")
def test_runs_cnn_without_per_pass_sync():
    # 2 warm-up passes (cuDNN autotuning in the first) + 10 measured; host syncs only after each loop
    s = structure(RUNS / "resnet50_fp16_cl_whole.sqlite")
    assert s.kind == "iterations"
    assert len(s.steps) == 12 and s.count("iteration") == 10
    assert sum(r.iterations for r in s.warmup_requests) == 2
    assert s.period is not None and abs(s.period - 280) <= 2


@pytest.mark.skipif(not _runs_here("train_llama_accum_whole"), reason="trace not present")
def test_runs_training_with_gradient_accumulation():
    # AdamW steps of 4 micro-batches each (forward, loss / 4, backward), the loss read with .item() once per optimizer
    # step; 1 warm-up + 4 measured optimizer steps (tests/data/runs/README.md, section 1)
    s = structure(RUNS / "train_llama_accum_whole.sqlite")
    assert s.kind == "iterations" and s.training
    assert s.micro_batches == 4
    assert [(r.iterations, r.warmup) for r in s.requests] == [(4, True)] + [(4, False)] * 4
    assert s.words() == ("optimizer step", "micro-batch")
    assert s.to_dict()["micro_batches"] == 4 and s.to_dict()["training"] is True


@pytest.mark.skipif(not _runs_here("train_resnet18_whole"), reason="trace not present")
def test_runs_training_steps_of_a_cnn():
    # SGD with momentum, 2 warm-up + 8 measured optimizer steps, the loss read with .item() once per step
    s = structure(RUNS / "train_resnet18_whole.sqlite")
    assert s.kind == "iterations" and s.training and s.micro_batches is None
    assert len(s.steps) == 10
    # the second warm-up step runs like the measured ones (the idle gap after the warm-up loop holds a lazy module
    # load, so it is no request boundary): only the first step, with 35 module loads, is left out
    assert len(s.warmup_requests) == 1 and s.count("iteration") == 9
    assert s.words() == ("request", "training step")


@pytest.mark.skipif(not _runs_here("train_resnet50_adamw_accum_whole"), reason="trace not present")
def test_runs_optimizer_steps_are_requests():
    # AdamW steps of 2 micro-batches, 1 warm-up + 4 measured (README section 9): 10 micro-batches, each a forward
    # and a backward pass (the backward kernels make them passes even in the first, among cuDNN's autotuning and 56
    # module loads), and the syncs after the warm-up step are no boundary (a module loads there): the optimizer's
    # kernels, once every 2 passes, cut the optimizer steps
    s = structure(RUNS / "train_resnet50_adamw_accum_whole.sqlite")
    assert s.training and s.micro_batches == 2
    assert [r.iterations for r in s.requests] == [2, 2, 2, 2, 2]
    # the first measured step lazily loads a module (AdamW's second step): it is left out with the warm-up
    assert [r.warmup for r in s.requests] == [True, True, False, False, False]
    assert "1 module load(s)" in s.requests[1].reason


@pytest.mark.skipif(not _runs_here("hf_embed_requests_whole"), reason="trace not present")
def test_runs_embedding_requests_of_changing_length():
    # an embedding service: 8 requests (2 warm-up) of one BERT forward pass each, batch 4, sequence lengths 37 to 200
    s = structure(RUNS / "hf_embed_requests_whole.sqlite")
    assert len(s.steps) == 8  # one pass per request, found from the repeating kernel sequence
    # passes of another length run other GEMM kernels and look like prefill passes starting requests; the passes
    # after them change shape from one to the next, which no decode step does: not an LLM
    assert s.kind == "iterations" and s.count("prefill") == s.count("decode") == 0
    kind = [e.detail for e in s.evidence if e.fact == "kind"]
    assert any("changes between 1 of 1 following steps" in d for d in kind), kind
    # then an input copy before every pass (and inside none) makes each pass a request, as the workload ran
    assert [r.iterations for r in s.requests] == [1] * 8
    # warm-up: request 0 only. The requests of new lengths load the cuBLAS kernels of their shapes lazily, kernels
    # the requests after them hardly run: measured (they were all taken for warm-up, 5 for 2, before that was told
    # apart); request 1, a warm-up by how the loop ran, runs like the measured ones (the truth: [0, 1])
    warm = [r.index for r in s.requests if r.warmup]
    assert warm == [0], warm


@pytest.mark.skipif(not _runs_here("hf_embed_requests_b8_whole"), reason="trace not present")
def test_runs_embedding_requests_each_with_its_input():
    # 10 requests of one BERT-base pass (12 layers, batch 8, 16 to 256 tokens), each copying its ids to the GPU; no
    # pass looks like a prefill here, yet the input copy before every pass makes each a request
    s = structure(RUNS / "hf_embed_requests_b8_whole.sqlite")
    assert s.kind == "iterations"
    assert [r.iterations for r in s.requests] == [1] * 10
    # warm-up: request 0 (24 module loads). Request 6, the only one of 16 tokens, lazily loads 5 modules for kernels
    # of its own length (run by no later request): measured, its loads are the module-loading finding's (it ran 2x
    # slower than the others unprofiled, 72.8 ms against 32-41 ms); request 1, a warm-up by how the loop ran, runs
    # like the measured ones (a known miss: tests/test_acceptance.py)
    assert [r.index for r in s.requests if r.warmup] == [0]
    assert any(n.startswith("request 6 loads 5 module(s) for kernels it runs first") for n in s.notes), s.notes


def test_optimizer_kernel_names():
    from nsys_doctor.analysis.structure.patterns import OPTIMIZER_KERNELS

    for name in ("void at::native::<unnamed>::multi_tensor_apply_kernel<TensorListMetadata<4>>", "FusedAdam<float>",
                 "apex::multi_tensor_adam", "fused_adamw_kernel", "fused_sgd_kernel", "OptimizerStep"):  # fmt: skip
        assert OPTIMIZER_KERNELS.search(name), name
    for name in ("void at::native::elementwise_kernel<128, 2, lambda>", "Lamb", "Madame", "gemv_kernel"):
        assert not OPTIMIZER_KERNELS.search(name), name


@pytest.mark.skipif(not _runs_here("compile_decode_graphs_whole"), reason="trace not present")
def test_runs_compilation_is_not_inference():
    s = structure(RUNS / "compile_decode_graphs_whole.sqlite")
    measured = s.window
    assert measured is not None
    loading = next(p for p in s.phases if p.kind == "loading")
    assert loading.end < measured[0]
    # 39 kernels per step (37 graph nodes + eager copy_ and add_)
    assert s.period is not None and abs(s.period - 39) <= 1


# ------------------------------------------------------------------------------------------ API and synthetic runs
def kernel_frame(names: list[str], starts: list[int], durs: list[int], shorts: list[str] | None = None) -> pl.DataFrame:
    """The kernel frame of a synthetic run: kernel i named ``names[i]`` (short name ``shorts[i]``, else the same)
    runs from ``starts[i]`` for ``durs[i]`` ns, all on one device, stream and process, correlation ids 1, 2, ... in
    order, grids of one block."""
    n = len(names)
    return pl.DataFrame(
        {
            "start": starts,
            "end": [s + d for s, d in zip(starts, durs, strict=True)],
            "dur": durs,
            "deviceId": [0] * n,
            "streamId": [7] * n,
            "correlationId": list(range(1, n + 1)),
            "pid": [42] * n,
            "name": names,
            "short": names if shorts is None else shorts,
            "gridX": [1] * n,
            "gridY": [1] * n,
            "gridZ": [1] * n,
        }
    )


def launches_and_syncs(starts: list[int], syncs: list[int]) -> pl.DataFrame:
    """The API frame of a synthetic run: a launch call just before each kernel start (correlation ids 1, 2, ...) and
    a ``cudaStreamSynchronize`` of 20 us at each of ``syncs``."""
    n = len(starts)
    launch = pl.DataFrame(
        {
            "start": [s - 500 for s in starts],
            "end": [s - 100 for s in starts],
            "pid": [42] * n,
            "tid": [1] * n,
            "correlationId": list(range(1, n + 1)),
            "name": ["cudaLaunchKernel_v7000"] * n,
        }
    )
    sync = pl.DataFrame(
        {
            "start": syncs,
            "end": [s + 20_000 for s in syncs],
            "pid": [42] * len(syncs),
            "tid": [1] * len(syncs),
            "correlationId": list(range(n + 1, n + 1 + len(syncs))),
            "name": ["cudaStreamSynchronize_v3020"] * len(syncs),
        }
    )
    return pl.concat([launch, sync])


def _synthetic(requests: int = 3, decode: int = 20, layers: int = 4, gap_ns: int = 50_000_000) -> dict[str, object]:
    """A synthetic eager LLM run: per request a prefill pass (GEMMs, prefill attention) then ``decode`` decode
    passes (GEMVs, decode attention), each pass ending with the LM head, argmax and a host sync."""
    names: list[str] = []
    starts: list[int] = []
    durs: list[int] = []
    syncs: list[int] = []
    t = 1_000_000
    for _ in range(requests):
        for p in range(decode + 1):
            prefill = p == 0
            seq = ["embedding_kernel"]
            for _layer in range(layers):
                seq += ["rms_norm_kernel", "gemm_qkv" if prefill else "gemv_qkv"]
                seq += ["prefill_attention_kernel" if prefill else "decode_attention_kernel"]
                seq += ["gemm_o" if prefill else "gemv_o", "gemm_mlp" if prefill else "gemv_mlp"]
            seq += ["rms_norm_kernel", "lm_head_gemv", "argmax_kernel"]
            for n in seq:
                names.append(n)
                starts.append(t)
                d = 40_000 if prefill else 4_000
                durs.append(d)
                t += d + 1_000
            syncs.append(t)
            t += 30_000
        t += gap_ns
    return {"kernels": kernel_frame(names, starts, durs), "api": launches_and_syncs(starts, syncs)}


def test_synthetic_decode_run():
    f = _synthetic()
    s = find_structure(f["kernels"], f["api"])  # type: ignore[arg-type]
    # whole run, no capture range: the first of 3 identical requests is warm-up
    check(s, Truth("llm-decode", 3, 1, 2, 40, total_passes=63))
    assert s.marker in ("embedding_kernel", "lm_head_gemv", "argmax_kernel")
    assert s.period == 3 + 5 * 4 + 1
    d = s.to_dict()
    for key in ("kind", "requests", "warmup_requests", "iterations", "source", "confidence", "steps"):
        assert key in d
    assert d["steps"] == {"prefill": 2, "decode": 40, "iteration": 0}
    frame = s.steps_frame()
    assert frame.height == 42 and frame["kind"].to_list().count("prefill") == 2


def test_modules_every_request_loads_are_no_warm_up():
    # a library that loads (or compiles) a few modules in every call: 3 in each request, 12 in the first (its lazy
    # loading); the later requests are measured, the first is warm-up
    f = _synthetic()
    k = f["kernels"]
    s = find_structure(k, _with_loads(k, f["api"], [12, 3, 3]))  # type: ignore[arg-type]
    check(s, Truth("llm-decode", 3, 1, 2, 40, total_passes=63))
    assert "12 module load(s)" in s.requests[0].reason
    assert any("the last request loads 3 module(s) too" in note for note in s.notes)


def _with_loads(k: pl.DataFrame, api: pl.DataFrame, per_request: list[int]) -> pl.DataFrame:
    """``api`` with ``per_request[r]`` module loads at the start of request r of a ``_synthetic`` run."""
    starts = k["start"].sort().to_list()
    heads = [starts[0]] + [b for a, b in itertools.pairwise(starts) if b - a > 10_000_000]
    loads = [h + 2_200 + 5_000 * i for h, n in zip(heads, per_request, strict=True) for i in range(n)]
    n = api.height
    extra = pl.DataFrame(
        {
            "start": loads,
            "end": [t + 300 for t in loads],
            "pid": [42] * len(loads),
            "tid": [1] * len(loads),
            "correlationId": list(range(10 * n, 10 * n + len(loads))),
            "name": ["cuLibraryLoadData"] * len(loads),
        }
    )
    return pl.concat([api, extra])


def _renamed_prefill_attention(k: pl.DataFrame, names: dict[int, str]) -> pl.DataFrame:
    """``k`` (a ``_synthetic`` run) with request r's prefill attention kernels named ``names[r]``."""
    heads = k.sort("start")["start"].to_list()
    bounds = [heads[0]] + [b for a, b in itertools.pairwise(heads) if b - a > 10_000_000] + [heads[-1] + 1]
    name = pl.col("name")
    for r, new in names.items():
        inside = (pl.col("start") >= bounds[r]) & (pl.col("start") < bounds[r + 1])
        name = pl.when(inside & (pl.col("name") == "prefill_attention_kernel")).then(pl.lit(new)).otherwise(name)
    return k.with_columns(name.alias("name"), name.alias("short"))


def test_modules_loaded_for_a_request_of_its_own_shape_are_no_warm_up():
    # 5 requests of another prompt length each: requests 1 to 3 load modules for a prefill attention kernel of their
    # own length that no later request runs (lazy loading at its first launch); only request 0 is warm-up
    f = _synthetic(requests=5)
    k = _renamed_prefill_attention(f["kernels"], {r: f"prefill_attention_len{r}" for r in (1, 2, 3)})  # type: ignore[arg-type]
    s = find_structure(k, _with_loads(k, f["api"], [12, 3, 3, 3, 0]))  # type: ignore[arg-type]
    check(s, Truth("llm-decode", 5, 1, 4, 80, total_passes=105))
    assert sum("its own shapes" in note for note in s.notes) == 3, s.notes
    # a kernel that request 1 runs first and every later request runs too: request 1 warmed it up
    g = _renamed_prefill_attention(f["kernels"], {r: "prefill_attention_v2" for r in (1, 2, 3, 4)})  # type: ignore[arg-type]
    t = find_structure(g, _with_loads(g, f["api"], [12, 3, 0, 0, 0]))  # type: ignore[arg-type]
    assert [r.warmup for r in t.requests] == [True, True, False, False, False], [r.reason for r in t.requests]


def test_synthetic_prefill_only_requests():
    # 5 prompts, no decode: every pass multiplies matrices (GEMM) and each is its own request
    f = _synthetic(requests=5, decode=0)
    s = find_structure(f["kernels"], f["api"], capture_range="cudaProfilerApi")  # type: ignore[arg-type]
    check(s, Truth("llm-prefill", 5, 0, 5, 0))


def test_capture_range_keeps_the_first_request():
    f = _synthetic(requests=2)
    s = find_structure(f["kernels"], f["api"], capture_range="cudaProfilerApi")  # type: ignore[arg-type]
    assert len(s.requests) == 2 and not s.warmup_requests


def test_deterministic_and_order_independent():
    f = _synthetic()
    a = find_structure(f["kernels"], f["api"])  # type: ignore[arg-type]
    shuffled = f["kernels"].sample(fraction=1.0, shuffle=True, seed=7)  # type: ignore[union-attr]
    b = find_structure(shuffled, f["api"].sample(fraction=1.0, shuffle=True, seed=3))  # type: ignore[union-attr,arg-type]
    assert a == b and a.to_dict() == b.to_dict()


def test_empty_and_tiny_inputs():
    f = _synthetic(requests=1, decode=1)
    empty = f["kernels"].clear()  # type: ignore[union-attr]
    s = find_structure(empty, f["api"].clear())  # type: ignore[union-attr,arg-type]
    assert s.kind == "unstructured" and s.to_dict()["steps"] == {"prefill": 0, "decode": 0, "iteration": 0}
    one = find_structure(f["kernels"].head(3), f["api"])  # type: ignore[union-attr,arg-type]
    assert one.kind == "unstructured"


def _synthetic_iterations(
    passes: int = 50, signal_at: Sequence[int] = (), signal: str = "copy", layers: int = 4
) -> dict[str, pl.DataFrame]:
    """A synthetic eager encoder run (ViT-like, no sampling kernels): ``passes`` forward passes back to back, 100 us
    of host time between them. Before each pass in ``signal_at`` a request signal: a host-to-device copy of the
    input (``copy``) or an idle gap of 500 us (``gap``: 5x the typical gap, no request gap by itself)."""
    names: list[str] = []
    starts: list[int] = []
    copies: list[int] = []
    t = 1_000_000
    for i in range(passes):
        if i in signal_at:
            if signal == "copy":
                copies.append(t)
                t += 20_000
            else:
                t += 400_000
        seq = ["conv_patch_kernel", "cat_cls_token"]
        for _layer in range(layers):
            seq += ["layer_norm_kernel", "gemm_qkv", "flash_attention_fwd", "gemm_proj"]
            seq += ["layer_norm_kernel", "gemm_fc1", "gelu_kernel", "gemm_fc2"]
        seq += ["layer_norm_kernel", "head_gemm"]
        for n in seq:
            names.append(n)
            starts.append(t)
            t += 5_000
        t += 100_000
    n = len(names)
    kernels = kernel_frame(names, starts, [4_000] * n)
    ids = list(range(n + 1, n + 1 + len(copies)))
    api = pl.DataFrame(
        {
            "start": [s - 500 for s in starts] + copies,
            "end": [s - 100 for s in starts] + [c + 10_000 for c in copies],
            "pid": [42] * (n + len(copies)),
            "tid": [1] * (n + len(copies)),
            "correlationId": list(range(1, n + 1)) + ids,
            "name": ["cudaLaunchKernel_v7000"] * n + ["cudaMemcpyAsync_v3020"] * len(copies),
        }
    )
    memcpy = pl.DataFrame(
        {
            "start": [c + 2_000 for c in copies],
            "end": [c + 8_000 for c in copies],
            "bytes": [150_528] * len(copies),
            "copyKind": [1] * len(copies),
            "correlationId": ids,
            "globalPid": [42 << 24] * len(copies),
        },
        schema_overrides={"start": pl.Int64, "end": pl.Int64, "bytes": pl.Int64, "copyKind": pl.Int64},
    )
    return {"kernels": kernels, "api": api, "memcpy": memcpy}


def _iteration_requests(f: dict[str, pl.DataFrame]) -> RunStructure:
    s = find_structure(f["kernels"], f["api"], f["memcpy"], capture_range="cudaProfilerApi")
    assert s.kind == "iterations" and len(s.steps) == 50 and s.period == 36, (s.kind, len(s.steps), s.period)
    return s


def test_a_signal_at_a_regular_stride_splits_equal_requests():
    # an input copy before every 10th pass (no sync, no long gap): 5 requests of 10 passes
    s = _iteration_requests(_synthetic_iterations(signal_at=range(0, 50, 10)))
    assert [r.iterations for r in s.requests] == [10] * 5
    ev = [e for e in s.evidence if e.fact == "requests"]
    assert ev and ev[0].source == "copies" and "every 10 steps" in ev[0].detail
    # the same with an idle gap of 5x the typical one instead of a copy
    g = _iteration_requests(_synthetic_iterations(signal_at=range(10, 50, 10), signal="gap"))
    assert [r.iterations for r in g.requests] == [10] * 5
    assert any(e.source == "idle-gaps" and "every 10 steps" in e.detail for e in g.evidence)
    # whole run without a capture range: the first of the identical requests is warm-up
    f = _synthetic_iterations(signal_at=range(0, 50, 10))
    w = find_structure(f["kernels"], f["api"], f["memcpy"])
    assert (len(w.requests), len(w.warmup_requests), w.count("iteration")) == (5, 1, 40)


def test_an_irregular_or_constant_signal_splits_nothing():
    for at in ([0, 10, 17, 30, 42], [0, 25], list(range(50))):  # irregular, once, before every pass
        s = _iteration_requests(_synthetic_iterations(signal_at=at))
        assert len(s.requests) == 1, (at, [r.iterations for r in s.requests])
        assert not any(e.fact == "requests" for e in s.evidence)
    g = _iteration_requests(_synthetic_iterations(signal_at=[10, 20, 35, 40], signal="gap"))
    assert len(g.requests) == 1
    # every 10th boundary but the last 10 passes lack the signal's end: 10, 10, 10, 20 is no stride
    u = _iteration_requests(_synthetic_iterations(signal_at=[10, 20, 30]))
    assert len(u.requests) == 1


@needs_shared
def test_same_result_twice_on_a_real_trace():
    f, cap = frames(ENGINES / "hf_qwen2_generate.sqlite")
    a = find_structure(f.kernels, f.api, f.memcpy, f.memset, f.nvtx, cap, None, f.graph_launches)
    b = structure_of(f, cap)
    assert a == b and a.to_dict() == b.to_dict()


@pytest.mark.parametrize("name", ["resnet18_requests_whole", "diffusion_unet_whole"])
def test_groups_of_passes_counted_a_chunk_of_kernels_at_a_time(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels of a level found to group whole passes (requests of passes; denoising steps) are counted into
    its units a chunk at a time: the same structure, with its reason, at any chunk size."""
    from nsys_doctor.analysis import distribution

    f, cap = frames(RUNS / f"{name}.sqlite")
    whole = structure_of(f, cap)
    assert any("whole forward passes" in r for e in whole.to_dict()["evidence"] for r in [str(e)])
    monkeypatch.setattr(distribution, "ROW_CHUNK", 7)
    chunked = structure_of(f, cap)
    assert chunked == whole and chunked.to_dict() == whole.to_dict()


# ------------------------------------------------------------------------------------------ passes vs groups of passes
CONV = "sm90_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc_tilesize64x192x64_execute_kernel__5x_cudnn"
STEM = "sm90_xmma_fprop_implicit_gemm_f16f16_f32_f16_nhwckrsc_nhwc_hmma_k64c4r7s7_stride2x2_execute_kernel__5x_cudnn"
ARGMAX = "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<c10::Half, at::native::ArgMaxOps<c10::Half>>>"
MEAN = "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::MeanOps<float, float>>>"


def _cnn_pass(blocks: int = 8) -> list[tuple[str, int]]:
    """One ResNet-like forward pass: (kernel name, GPU ns); the stem, ``blocks`` basic blocks, pooling, the fc."""
    out = [(STEM, 20_000), ("bn_fw_inf_1C11_kernel_NCHW", 3_000), ("relu_kernel", 2_000)]
    out.append(("max_pool_forward_nchw", 3_000))
    for _ in range(blocks):
        out += [(CONV, 10_000), ("bn_fw_inf_1C11_kernel_NCHW", 3_000), ("relu_kernel", 2_000)]
        out += [(CONV, 10_000), ("bn_fw_inf_1C11_kernel_NCHW", 3_000), ("add_relu_kernel", 2_000)]
    return [*out, (MEAN, 3_000), ("nvjet_sm90_hsh_64x8_64x16_4x1_v_bz_bias_TNT", 5_000)]


def _llm_pass(layers: int, per_layer: int) -> list[tuple[str, int]]:
    """One decode pass of an eager LLM: the embedding, ``layers`` layers of ``per_layer`` kernels (GEMVs, decode
    attention, many small elementwise kernels), the final norm, the LM head (a heavy GEMV) and the argmax."""
    layer = [("rms_norm_kernel", 2_000), ("gemv_qkv", 20_000), ("decode_attention_kernel", 10_000)]
    layer += [("gemv_o", 10_000), ("gemv_mlp", 30_000)]
    layer += [(f"elementwise_op_{j}", 1_000) for j in range(per_layer - len(layer))]
    head = [("embedding_kernel", 2_000)]
    tail = [("final_norm_kernel", 2_000), ("lm_head_gemv", 150_000), ("argmax_kernel", 2_000)]
    return [*head, *(layer * layers), *tail]


def _synthetic_passes(
    requests: int,
    passes: int,
    one_pass: Sequence[tuple[str, int]],
    request_tail: Sequence[tuple[str, int]] = (),
    read_back: str = "request",
    closing: Sequence[tuple[str, int]] = (),
    input_bytes: int = 2_408_448,
) -> dict[str, pl.DataFrame]:
    """Requests of ``passes`` identical forward passes launched back to back (20 us of host time between them). Each
    request copies its input (``input_bytes``) host-to-device first and ends with its ``request_tail`` kernels, a
    device-to-host read back and a stream sync, then 2 ms of host time; with ``read_back="pass"`` every pass ends
    with the read back and the sync (a token read) instead. ``closing`` kernels, when given, run after the request's
    read back and before a device sync that ends it."""
    names: list[str] = []
    starts: list[int] = []
    durs: list[int] = []
    calls: list[tuple[int, int, str]] = []  # (start, end, API name)
    copies: list[tuple[int, int]] = []  # (API start, copyKind)
    t = 1_000_000

    def launch(seq: Sequence[tuple[str, int]]) -> None:
        nonlocal t
        for n, d in seq:
            names.append(n)
            starts.append(t)
            durs.append(d)
            t += d + 1_000

    def read() -> None:
        nonlocal t
        copies.append((t, 2))
        t += 10_000
        calls.append((t, t + 5_000, "cudaStreamSynchronize_v3020"))
        t += 10_000

    for _ in range(requests):
        copies.append((t, 1))
        t += 30_000
        for _ in range(passes):
            launch(one_pass)
            if read_back == "pass":
                read()
            t += 20_000
        launch(request_tail)
        if read_back == "request":
            read()
        if closing:
            launch(closing)
            calls.append((t, t + 5_000, "cudaDeviceSynchronize_v3020"))
            t += 10_000
        t += 2_000_000
    n = len(names)
    ids = list(range(n + 1, n + 1 + len(calls) + len(copies)))
    api = pl.DataFrame(
        {
            "start": [s - 500 for s in starts] + [c[0] for c in calls] + [c[0] for c in copies],
            "end": [s - 100 for s in starts] + [c[1] for c in calls] + [c[0] + 5_000 for c in copies],
            "pid": [42] * (n + len(calls) + len(copies)),
            "tid": [1] * (n + len(calls) + len(copies)),
            "correlationId": list(range(1, n + 1)) + ids,
            "name": ["cudaLaunchKernel_v7000"] * n + [c[2] for c in calls] + ["cudaMemcpyAsync_v3020"] * len(copies),
        }
    )
    kernels = kernel_frame(names, starts, durs, [m.split("<")[0].removeprefix("void at::native::") for m in names])
    memcpy = pl.DataFrame(
        {
            "start": [c[0] + 1_000 for c in copies],
            "end": [c[0] + 4_000 for c in copies],
            "bytes": [input_bytes if c[1] == 1 else 64 for c in copies],
            "copyKind": [c[1] for c in copies],
            "correlationId": ids[len(calls) :],
            "globalPid": [42 << 24] * len(copies),
        },
        schema_overrides={"start": pl.Int64, "end": pl.Int64, "bytes": pl.Int64, "copyKind": pl.Int64},
    )
    return {"kernels": kernels, "api": api, "memcpy": memcpy}


def test_passes_of_a_request_with_a_once_per_request_argmax_are_iterations():
    # 4 requests of 5 CNN passes (58 kernels each); the argmax over the logits runs once per request, after its
    # passes: the 291-kernel unit between argmaxes is a request, not a pass, and the passes are iterations
    one = _cnn_pass()
    f = _synthetic_passes(4, 5, one, request_tail=[(ARGMAX, 2_000)])
    s = find_structure(f["kernels"], f["api"], f["memcpy"], capture_range="cudaProfilerApi")
    assert s.kind == "iterations", [e.detail for e in s.evidence]
    assert len(s.steps) == 20 and s.period is not None and abs(s.period - len(one)) <= 1, (len(s.steps), s.period)
    assert [r.iterations for r in s.requests] == [5] * 4
    assert s.count("decode", measured=False) == 0 and s.count("prefill", measured=False) == 0
    passes = next(e for e in s.evidence if e.fact == "passes")
    assert "groups 5 passes" in passes.detail, passes.detail
    # whole run: the first of the identical requests is warm-up, 3 x 5 measured iterations
    w = find_structure(f["kernels"], f["api"], f["memcpy"])
    assert (w.kind, len(w.requests), len(w.warmup_requests), w.count("iteration")) == ("iterations", 4, 1, 15)


def test_layers_inside_a_pass_are_not_passes():
    # 8 layers of 100 kernels per decode pass; embedding, final norm, LM head and argmax once per pass: only 4 extra
    # kernels per 100-kernel layer (few kernels), but the LM head is a large share of one layer's GPU time, so the
    # pass is a pass and the layers are layers
    one = _llm_pass(layers=8, per_layer=100)
    f = _synthetic_passes(2, 24, one, read_back="pass")
    s = find_structure(f["kernels"], f["api"], f["memcpy"], capture_range="cudaProfilerApi")
    assert s.kind == "llm-decode", [e.detail for e in s.evidence]
    assert len(s.steps) == 48 and s.period == len(one), (len(s.steps), s.period)
    assert s.marker in ("embedding_kernel", "final_norm_kernel", "lm_head_gemv", "argmax_kernel")
    assert not any("groups" in e.detail for e in s.evidence)
    # the same with few kernels per layer (a fused engine): 4 extra kernels per 10-kernel layer
    small = _llm_pass(layers=32, per_layer=10)
    g = _synthetic_passes(2, 24, small, read_back="pass")
    t = find_structure(g["kernels"], g["api"], g["memcpy"], capture_range="cudaProfilerApi")
    assert t.kind == "llm-decode" and len(t.steps) == 48 and t.period == len(small), (t.kind, len(t.steps), t.period)


def test_a_convolution_led_run_with_an_argmax_per_pass_is_not_an_llm():
    # a CNN classifier served one pass per read back: the argmax runs once per pass, like an LLM's sampling, but the
    # kernel time is convolution and nothing is attention
    f = _synthetic_passes(1, 24, [*_cnn_pass(), (ARGMAX, 2_000)], read_back="pass")
    s = find_structure(f["kernels"], f["api"], f["memcpy"], capture_range="cudaProfilerApi")
    assert s.kind == "iterations" and s.count("iteration") == 24, (s.kind, s.to_dict()["steps"])
    kind = [e.detail for e in s.evidence if e.fact == "kind"]
    assert len(kind) == 1 and kind[0].startswith("not an LLM: convolutions take 65% of the passes' GPU time"), kind
    assert "once-per-pass sampling/embedding kernels reduce_kernel" in kind[0], kind  # the signal it overrode


EMBEDDING_BAG = "void at::native::<unnamed>::EmbeddingBag_updateOutputKernel_sum_mean<float, long>"
FP32_GEMM = "sm80_xmma_gemm_f32f32_f32f32_f32_tn_n_tilesize64x64x8_stage3_warpsize1x4x1_ffma_aligna4_alignc4"
RELU = "void at::native::vectorized_elementwise_kernel<4, at::native::relu_kernel_cuda>"
FLASH = "fmha_cutlassF_f32_aligned_64x64_rf_sm80"
GEMV = "void gemv2T_kernel_val<int, int, float, float, float, float, 128, 16, 4, 4, false, false>"


def test_passes_that_each_copy_a_fresh_input_without_attention_are_not_an_llm():
    # a recommender served one batch a request: 8 embedding-bag lookups, an MLP and an argmax, each pass after a
    # 2.3 MiB host-to-device copy of its features and ids; the embedding lookups and the argmax look like an LLM's
    ranker = [(EMBEDDING_BAG, 3_000)] * 8 + [(FP32_GEMM, 10_000), (RELU, 1_000)] * 3 + [(ARGMAX, 2_000)]
    f = _synthetic_passes(20, 1, ranker)
    s = find_structure(f["kernels"], f["api"], f["memcpy"])
    assert s.kind == "iterations" and s.count("iteration", measured=False) == 20, (s.kind, s.to_dict()["steps"])
    kind = [e.detail for e in s.evidence if e.fact == "kind"]
    assert len(kind) == 1 and kind[0].startswith("not an LLM: 20 of 20 passes start by copying 64 KiB or more"), kind
    # a transformer classifier (attention, GEMMs over a batch of images' rows) fed its images pass by pass is none
    # either; but decode steps with attention that multiply by a token's GEMVs are an LLM's even when each copies
    # as much (one fed a large buffer every step: decode_pathologies' 1 MiB pageable copy)
    vit = [(EMBEDDING_BAG, 3_000)] + [(FP32_GEMM, 10_000), (FLASH, 5_000), (RELU, 1_000)] * 4 + [(ARGMAX, 2_000)]
    g = _synthetic_passes(20, 1, vit)
    t = find_structure(g["kernels"], g["api"], g["memcpy"])
    kind = [e.detail for e in t.evidence if e.fact == "kind"]
    assert t.kind == "iterations" and "GEMMs over the whole input" in kind[0], (t.kind, kind)
    # another process's copies are not the passes' inputs (a second program on the GPU, a data loader's)
    small = _synthetic_passes(20, 1, ranker, input_bytes=16)
    other = small["memcpy"].with_columns(pl.lit(2_408_448).alias("bytes"), pl.lit(77 << 24).alias("globalPid"))
    o = find_structure(small["kernels"], small["api"], pl.concat([small["memcpy"], other.cast(small["memcpy"].schema)]))
    assert not any("fresh input" in e.detail for e in o.evidence), [e.detail for e in o.evidence if e.fact == "kind"]
    decode = [(EMBEDDING_BAG, 3_000)] + [(GEMV, 10_000), (FLASH, 5_000), (RELU, 1_000)] * 4 + [(ARGMAX, 2_000)]
    h = _synthetic_passes(20, 1, decode)
    u = find_structure(h["kernels"], h["api"], h["memcpy"])
    assert u.kind.startswith("llm-"), (u.kind, [e.detail for e in u.evidence if e.fact == "kind"])


def test_passes_that_start_with_a_patch_embedding_convolution_are_not_an_llm():
    # a vision transformer benchmarked with its images on the GPU (no copy a pass), an argmax read back per pass:
    # attention, GEMMs and an argmax as an LLM's prompt passes have, but each pass starts with a convolution
    vit = [(STEM, 3_000)] + [(FP32_GEMM, 10_000), (FLASH, 5_000), (RELU, 1_000)] * 4 + [(ARGMAX, 2_000)]
    f = _synthetic_passes(20, 1, vit, input_bytes=16)
    s = find_structure(f["kernels"], f["api"], f["memcpy"])
    kind = [e.detail for e in s.evidence if e.fact == "kind"]
    assert s.kind == "iterations" and "start with a convolution" in kind[0], (s.kind, kind)
    # the same passes without the convolution are an LLM's prompts, as before
    g = _synthetic_passes(20, 1, vit[1:], input_bytes=16)
    t = find_structure(g["kernels"], g["api"], g["memcpy"])
    assert t.kind == "llm-prefill", (t.kind, [e.detail for e in t.evidence if e.fact == "kind"])


def test_passes_all_alike_without_attention_or_a_prompt_pass_are_not_an_llm():
    # the ranker fed a few bytes a pass (ids of a retrieval model's candidates): no pass leads a request, nothing is
    # attention, the whole run was captured: its embedding lookups and argmax make no LLM
    ranker = [(EMBEDDING_BAG, 3_000)] * 8 + [(FP32_GEMM, 10_000), (RELU, 1_000)] * 3 + [(ARGMAX, 2_000)]
    f = _synthetic_passes(20, 1, ranker, input_bytes=16)
    # the capture holds the program's start: 64 MiB of weights copied to the GPU before the first pass
    weights = f["memcpy"].head(1).with_columns(
        pl.lit(500_000).alias("start"), pl.lit(600_000).alias("end"), pl.lit(64 << 20).alias("bytes"),
        pl.lit(1).alias("copyKind"), pl.lit(10**6).alias("correlationId"),
    ).cast(f["memcpy"].schema)  # fmt: skip
    memcpy = pl.concat([weights, f["memcpy"]])
    s = find_structure(f["kernels"], f["api"], memcpy)
    kind = [e.detail for e in s.evidence if e.fact == "kind"]
    assert s.kind == "iterations" and kind[0].startswith("not an LLM: all 20 passes run alike"), (s.kind, kind)
    # in a capture range, or in a capture that starts later (no weights copied before the first pass: it may hold
    # an LLM's decode steps alone, whose eager attention has no attention kernel by name), they stay an LLM's
    for mc, rng in ((memcpy, "cudaProfilerApi"), (f["memcpy"], None)):
        c = find_structure(f["kernels"], f["api"], mc, capture_range=rng)
        assert c.kind == "llm-prefill", (rng, c.kind, [e.detail for e in c.evidence if e.fact == "kind"])
    # nor does a recurrent model's run become iterations (a recurrent language model's requests run alike too)
    lstm = list(ranker)
    lstm[9] = ("void elemWiseRNNcell<float, float, float, (cudnnRNNMode_t)2, (cudnnRNNBiasMode_t)2>", 1_000)
    g = _synthetic_passes(20, 1, lstm, input_bytes=16)
    r = find_structure(g["kernels"], g["api"], pl.concat([weights, g["memcpy"]]))
    assert r.kind.startswith("llm-"), (r.kind, [e.detail for e in r.evidence if e.fact == "kind"])


NORM = "void at::native::batch_norm_transform_input_channels_last_kernel<c10::Half, float, float, int, true>"
POINTWISE = "nvjet_sm90_hsh_64x8_64x16_4x1_v_bz_bias_TNT"  # a 1x1 convolution run as a GEMM
HARDSWISH = "void at::native::vectorized_elementwise_kernel<4, at::native::hardswish_kernel_cuda>"


def _mobilenet_pass(blocks: int = 11) -> list[tuple[str, int]]:
    """A MobileNet-like pass: cheap depthwise convolutions (13% of the GPU time), heavier norms, 1x1 convolutions
    as GEMMs, activations; then the classifier."""
    out = [(STEM, 2_000), (NORM, 3_000), (HARDSWISH, 2_000)]
    for _ in range(blocks):
        out += [(POINTWISE, 2_000), (NORM, 3_000), (HARDSWISH, 2_000), (CONV, 1_500), (NORM, 3_000)]
    return [*out, (MEAN, 3_000), (POINTWISE, 5_000)]


def test_a_cnn_whose_norms_outweigh_its_convolutions_is_not_an_llm():
    # MobileNet served one pass per read back with an argmax: convolution is not the top family (norms are, and the
    # 1x1 convolutions count as GEMMs), yet it is a CNN: no attention, convolutions a sizeable share
    f = _synthetic_passes(1, 20, [*_mobilenet_pass(), (ARGMAX, 2_000)], read_back="pass")
    s = find_structure(f["kernels"], f["api"], f["memcpy"], capture_range="cudaProfilerApi")
    assert s.kind == "iterations" and s.count("iteration") == 20, (s.kind, s.to_dict()["steps"])
    kind = [e.detail for e in s.evidence if e.fact == "kind"]
    assert len(kind) == 1 and kind[0].startswith("not an LLM: convolutions take 13% of the passes' GPU time"), kind


def _detector_pass(seed: int) -> list[tuple[str, int]]:
    """A detector's pass (Faster R-CNN-like): a backbone whose every convolution is its own kernel, proposals, NMS and
    ROI heads; no name repeats at a regular finer period and nothing runs once per pass like sampling. ``seed``
    varies nothing: every pass is the same."""
    del seed
    out: list[tuple[str, int]] = []
    for i in range(24):
        out += [(f"{CONV}_{i}", 8_000), (f"elementwise_kernel_frozen_bn_{i}", 2_000)]
    out += [("nms_kernel_impl", 40_000), ("roi_align_forward_kernel", 20_000), ("gather_keep_from_mask", 3_000)]
    return out


def test_a_long_convolutional_unit_is_a_forward_pass():
    # no layers found, no sampling kernel, no graph launch: a 51-kernel unit that is 63% convolution is still a
    # CNN's forward pass (an HPC time step runs no cuDNN convolutions)
    f = _synthetic_passes(1, 11, _detector_pass(0), read_back="pass")
    s = find_structure(f["kernels"], f["api"], f["memcpy"], capture_range="cudaProfilerApi")
    assert s.kind == "iterations" and s.count("iteration") == 11, (s.kind, s.notes)
    passes = [e.detail for e in s.evidence if e.fact == "passes" and e.source == "kernel-mix"]
    assert passes and passes[0].startswith("convolutions take 63% of the GPU time of a 51-kernel repeating unit")
    # the same unit with its convolutions renamed to plain kernels is a loop, not a forward pass
    plain = [(n.replace(CONV, "stencil_update"), d) for n, d in _detector_pass(0)]
    g = _synthetic_passes(1, 11, plain, read_back="pass")
    t = find_structure(g["kernels"], g["api"], g["memcpy"], capture_range="cudaProfilerApi")
    assert t.kind == "unstructured" and any("not a forward pass" in n for n in t.notes), (t.kind, t.notes)


def test_leading_passes_that_load_modules_are_warm_up_in_a_one_request_run():
    # a CNN warmed up in the loop that measures it: 22 passes, each ending with a read back, no pause between them;
    # modules load (lazy loading) inside the first two: those two are a warm-up request, the 20 after it measured
    unit = [*_mobilenet_pass(), (ARGMAX, 2_000)]
    f = _synthetic_passes(1, 22, unit, read_back="pass")
    k = f["kernels"]
    loads = [int(k["start"][i * len(unit) + 3]) - 300 for i in (0, 1)]
    api = pl.concat(
        [
            f["api"],
            pl.DataFrame(
                {
                    "start": loads,
                    "end": [t + 200 for t in loads],
                    "pid": [42, 42],
                    "tid": [1, 1],
                    "correlationId": [10**6, 10**6 + 1],
                    "name": ["cuLibraryLoadData", "cuModuleLoadData"],
                }
            ),
        ],
        how="vertical_relaxed",
    ).sort("start")
    s = find_structure(k, api, f["memcpy"])
    assert s.kind == "iterations" and s.count("iteration") == 20, (s.kind, s.to_dict()["steps"], s.notes)
    assert [r.warmup for r in s.requests] == [True, False]
    assert s.requests[0].iterations == 2 and s.requests[1].iterations == 20
    assert any(e.detail.startswith("the first 2 pass(es) of a request load modules") for e in s.evidence)
    # a load in a later pass too: no clean passes after the loads but that one, so the run stays one request
    late = int(k["start"][20 * len(unit) + 3]) - 300
    api2 = pl.concat(
        [
            api,
            api.filter(pl.col("name") == "cuModuleLoadData").with_columns(
                pl.lit(late, pl.Int64).alias("start"), pl.lit(late + 200, pl.Int64).alias("end")
            ),
        ]
    ).sort("start")
    t = find_structure(k, api2, f["memcpy"])
    assert len(t.requests) == 1, [(r.index, r.iterations, r.warmup) for r in t.requests]


def test_a_request_ends_after_its_last_sync():
    # beam search: the request's token read (a stream sync), then its closing kernels (the beams' final reordering),
    # then the caller's device sync; the next request starts after that one, not after the first sync
    closing = [("void at::native::index_select_kernel<float>", 3_000)] * 4
    f = _synthetic_passes(3, 12, _llm_pass(layers=4, per_layer=10), closing=closing)
    s = find_structure(f["kernels"], f["api"], f["memcpy"])
    assert len(s.requests) == 3, s.requests
    k = f["kernels"].filter(pl.col("name").cast(pl.String).str.contains("index_select"))
    for r, nxt in itertools.pairwise(s.requests):
        mine = k.filter((pl.col("start") > r.start) & (pl.col("start") < nxt.start)).height
        assert mine == len(closing), (r, nxt, mine)
        assert r.gpu_end >= int(k.filter(pl.col("start") < nxt.start)["end"].max())  # type: ignore[arg-type]


def test_passes_that_run_backward_kernels_are_training_steps_not_an_llm():
    # a language model's training step: its forward has the LM head and its argmax-like kernels, but autograd's
    # backward kernels run too; inference never runs them
    step = [*_llm_pass(layers=4, per_layer=10), ("void at::native::embedding_backward_feature_kernel<float>", 3_000)]
    f = _synthetic_passes(2, 24, step, read_back="pass")
    s = find_structure(f["kernels"], f["api"], f["memcpy"], capture_range="cudaProfilerApi")
    assert s.kind == "iterations", (s.kind, [e.detail for e in s.evidence if e.fact == "kind"])
    kind = [e.detail for e in s.evidence if e.fact == "kind" and e.source == "kernel-mix"]
    assert len(kind) == 1 and kind[0].startswith("not an LLM: backward kernels run in the passes"), kind
    # training steps without a known optimizer kernel: no gradient accumulation is claimed
    assert s.training and s.micro_batches is None
    names = [e.detail for e in s.evidence if e.fact == "kind" and e.source == "kernel-names"]
    assert names == [
        "backward kernels run in the passes (embedding_backward_feature_kernel): training steps; no optimizer kernel "
        "known by name"
    ]
    # the same passes without the backward kernel: an LLM
    g = _synthetic_passes(2, 24, step[:-1], read_back="pass")
    assert find_structure(g["kernels"], g["api"], g["memcpy"], capture_range="cudaProfilerApi").kind == "llm-decode"


def test_ranges_around_a_block_of_a_pass_are_never_steps():
    # one training step's forward annotated by hand: a "forward pass" range around 12 "transformer block forward"
    # ranges (a data-parallel script's annotations); no kernel repeats with a period. The blocks are parts of the
    # pass, not 12 steps
    f = _synthetic_passes(1, 1, [(f"kernel_{i}", 5_000) for i in range(240)])
    k = f["kernels"]
    t0, t1 = int(k["start"].min()), int(k["end"].max())
    starts = k["start"].to_list()
    blocks = [(starts[20 * i] - 100, starts[20 * i + 19] + 5_000) for i in range(12)]
    rows = [(t0 - 1_000, t1 + 1_000, "forward pass"), *((a, b, "transformer block forward") for a, b in blocks)]
    nvtx = pl.DataFrame(
        {
            "start": [r[0] for r in rows],
            "end": [r[1] for r in rows],
            "text": [r[2] for r in rows],
            "globalTid": [(42 << 24) + 1] * len(rows),
            "domain": [None] * len(rows),
        },
        schema_overrides={"domain": pl.Utf8},
    )
    s = find_structure(k, f["api"], f["memcpy"], nvtx=nvtx)
    assert len(s.steps) == 1, (len(s.steps), [e.detail for e in s.evidence if e.fact == "passes"])
    assert any("'forward pass'" in e.detail for e in s.evidence if e.fact == "passes")


def test_the_only_training_step_goes_on_through_its_optimizer():
    # one training step, captured whole: the forward and backward (found around the once-run embedding and argmax),
    # then 60 optimizer kernels with no name repeated; the step holds them all, so the window does not end before them
    step = [*_llm_pass(layers=12, per_layer=10), ("void at::native::embedding_backward_feature_kernel<float>", 3_000)]
    optimizer = [(f"void at::native::vectorized_elementwise_kernel<4, adam_step_{i}>", 2_000) for i in range(60)]
    f = _synthetic_passes(1, 1, [*step, *optimizer])
    s = find_structure(f["kernels"], f["api"], f["memcpy"])
    assert s.kind == "iterations" and len(s.steps) == 1, (s.kind, s.notes)
    assert s.steps[0].kernels == f["kernels"].height == len(step) + 60
    assert s.steps[0].gpu_end == int(f["kernels"]["end"].max())  # type: ignore[arg-type]
    assert any(n.startswith("the only pass goes on to the end of the work: 60 more kernels") for n in s.notes)


def test_a_stride_signal_splits_where_modules_load_too():
    # the input copy before every 10th pass; lazy module loading (the first request's last kernel) also falls in the
    # gap before pass 10: that boundary is on the stride, so it splits there like the others
    f = _synthetic_iterations(signal_at=range(0, 50, 10))
    copy_at = f["api"].filter(pl.col("name").cast(pl.String).str.starts_with("cudaMemcpy"))["start"].sort().to_list()[1]
    load = pl.DataFrame(
        {"start": [copy_at - 15_000], "end": [copy_at - 11_000], "pid": [42], "tid": [1], "correlationId": [10**6]},
        schema_overrides={"start": pl.Int64, "end": pl.Int64, "correlationId": pl.Int64},
    ).with_columns(pl.lit("cuLibraryLoadData").alias("name"))
    api = pl.concat([f["api"], load.select(f["api"].columns).cast(f["api"].schema)])  # type: ignore[arg-type]
    s = _iteration_requests({**f, "api": api})
    assert [r.iterations for r in s.requests] == [10] * 5
    assert any(e.source == "copies" and "every 10 steps" in e.detail for e in s.evidence)


def test_nvtx_request_ranges_that_hold_every_step_are_the_requests() -> None:
    """tests/data/backtrace_decode.sqlite: 2 measured requests of 24 decode steps, each in an NVTX `request_N` range
    (the warm-up request ran before the capture range); a 2 ms allocation gap inside request 1 is not a boundary."""
    from nsys_doctor.session import TraceSession

    with TraceSession.open(DATA / "backtrace_decode.sqlite") as t:
        s = t.structure
    assert s.kind == "llm-decode"
    assert [(r.warmup, r.decode_steps) for r in s.requests] == [(False, 24), (False, 24)]
    assert all(e.source == "nvtx" for e in s.evidence if e.fact == "requests")


def _with_grids(f: dict[str, pl.DataFrame], grid_x: Sequence[int]) -> dict[str, pl.DataFrame]:
    """``f`` with its kernels' gridX set to ``grid_x`` (one value per kernel, in launch order)."""
    return {**f, "kernels": f["kernels"].with_columns(pl.Series("gridX", list(grid_x)))}


def test_a_prompts_pass_is_told_apart_by_its_grids_when_its_kernels_are_a_tokens():
    # a hand-written engine runs the same kernels for a prompt and for a token (no GEMM/GEMV names to tell them
    # apart), each pass ending with a token read; the prompt's pass launches its kernels over 8x the thread blocks.
    # 3 requests of 1 prompt pass + 10 token passes, each request starting with its input copy
    one = _llm_pass(layers=4, per_layer=10)
    f = _synthetic_passes(3, 11, one, read_back="pass")
    n = len(one)
    grids = [8 if (i // n) % 11 == 0 else 1 for i in range(f["kernels"].height)]
    s = find_structure(**_with_grids(f, grids), capture_range="cudaProfilerApi")  # type: ignore[arg-type]
    assert s.kind == "llm-decode", [e.detail for e in s.evidence]
    assert [(r.prefill_steps, r.decode_steps) for r in s.requests] == [(1, 10)] * 3, s.requests
    # one kernel of a pass given a bigger grid now and then (every 4th token, 64x the work) is no prompt
    odd = [64 if (i // n) % 4 == 3 and i % n == 5 else 1 for i in range(f["kernels"].height)]
    t = find_structure(**_with_grids(f, odd), capture_range="cudaProfilerApi")  # type: ignore[arg-type]
    assert t.count("prefill", measured=False) == 0, [(r.prefill_steps, r.decode_steps) for r in t.requests]


def _after_setup(f: dict[str, pl.DataFrame], setup: list[str], repeats: int) -> dict[str, pl.DataFrame]:
    """``f`` preceded by a setup: ``repeats`` rounds of the ``setup`` kernels (5 us each, launched 1 us apart), a
    module load before each round, 5 ms before ``f`` starts."""
    k, api = f["kernels"], f["api"]
    t0 = int(k["start"].min()) - 5_000_000 - repeats * (len(setup) * 6_000 + 20_000)
    names, starts, loads = [], [], []
    t = t0
    for _ in range(repeats):
        loads.append(t)
        t += 10_000
        for name in setup:
            names.append(name)
            starts.append(t)
            t += 6_000
        t += 10_000
    n = len(names)
    cid0 = int(api["correlationId"].max()) + 1
    kern = pl.DataFrame(
        {
            "start": starts,
            "end": [s + 5_000 for s in starts],
            "dur": [5_000] * n,
            "deviceId": [0] * n,
            "streamId": [7] * n,
            "correlationId": list(range(cid0, cid0 + n)),
            "pid": [42] * n,
            "name": names,
            "short": names,
            "gridX": [1] * n,
            "gridY": [1] * n,
            "gridZ": [1] * n,
        },
        schema=k.schema,
    )
    calls = pl.DataFrame(
        {
            "start": [s - 500 for s in starts] + loads,
            "end": [s - 100 for s in starts] + [a + 5_000 for a in loads],
            "pid": [42] * (n + len(loads)),
            "tid": [1] * (n + len(loads)),
            "correlationId": list(range(cid0, cid0 + n)) + list(range(cid0 + n, cid0 + n + len(loads))),
            "name": ["cudaLaunchKernel_v7000"] * n + ["cuModuleLoadData"] * len(loads),
        },
        schema=api.schema,
    )
    return {**f, "kernels": pl.concat([kern, k]), "api": pl.concat([calls, api])}


XLA_CONV = "sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize64x128x64_execute_kernel__5x_cudnn"


def test_the_passes_after_a_compilers_autotuning_are_the_run():
    # an XLA CNN: 25 fused kernels a pass (8 convolutions of their own tiles), 12 passes, no host round trip per
    # pass; before them XLA autotuned its convolutions, 2000 rounds of a redzone check, a candidate, a comparison
    # and a delay, loading a module each: a loop of its own, far more frequent, that hides the passes. The
    # candidates are no pass; the 12 passes after the setup are
    one = [(XLA_CONV.replace("64x128", f"{96 + i}x128"), 20_000) for i in range(8)]
    one += [(f"loop_add_fusion_{i}", 2_000) for i in range(8)] + [(f"loop_relu_fusion_{i}", 1_000) for i in range(8)]
    one.append(("gemm_fusion_dot", 5_000))
    f = _synthetic_passes(1, 12, one)
    setup = ["RedzoneAllocatorKernelImpl", XLA_CONV, "xla_fp_comparison", "DelayKernel"]
    s = find_structure(**_after_setup(f, setup, 2000))  # type: ignore[arg-type]
    assert s.kind == "iterations", (s.kind, s.notes)
    assert s.count("iteration", measured=False) == 12 and s.period == len(one), (s.to_dict()["steps"], s.period)
    assert [p.kind for p in s.phases][:2] == ["loading", "autotuning"], s.phases
    assert any("no repeating forward pass in the whole run" in e.detail for e in s.evidence), s.evidence


def test_the_passes_after_the_last_setup_signal_are_the_run():
    # a compiled model's first call: six stretches of benchmarking (an L2 flush before each of 200 candidates, 400
    # kernels each, after a module load each), then a last module load and 12 passes of 25 kernels. The stretches
    # after the first signals are the longest and hold no pass of their own; the kernels after the last signal do
    one = [(XLA_CONV.replace("64x128", f"{96 + i}x128"), 20_000) for i in range(8)]
    one += [(f"loop_add_fusion_{i}", 2_000) for i in range(8)] + [(f"loop_relu_fusion_{i}", 1_000) for i in range(8)]
    one.append(("gemm_fusion_dot", 5_000))
    f = _synthetic_passes(1, 12, one)
    k, api = f["kernels"], f["api"]
    t = int(k["start"].min()) - 1_000_000
    load = api.head(1).with_columns(
        pl.lit(t).alias("start"),
        pl.lit(t + 5_000).alias("end"),
        pl.lit(int(api["correlationId"].max()) + 1).alias("correlationId"),
        pl.lit("cuModuleLoadData").alias("name"),
    )
    g = {**f, "api": pl.concat([api, load.cast(api.schema)])}
    rng = random.Random(0)
    for _ in range(6):
        setup = []
        for _ in range(200):
            setup += ["vectorized_elementwise_kernel_fill", f"triton_candidate_{rng.randrange(40)}"]
        g = _after_setup(g, setup, 1)
    s = find_structure(**g)  # type: ignore[arg-type]
    assert s.kind == "iterations" and s.count("iteration", measured=False) == 12 and s.period == 25, s.to_dict()
    assert any("the 300 kernels after its setup" in e.detail for e in s.evidence), s.evidence


def test_a_first_pass_far_slower_on_the_host_is_warm_up():
    # 12 CNN passes in one loop (one request); the first one's launches took 10x the host time of the others (a JIT
    # dispatch cache or an allocator warming up): it is warm-up, the 11 after it are measured
    one = _cnn_pass()
    f = _synthetic_passes(1, 12, one, read_back="pass")
    k, api = f["kernels"], f["api"]
    n = len(one)
    shift = pl.when(pl.int_range(pl.len()) < n).then(pl.int_range(pl.len()) * 40_000).otherwise(n * 40_000)
    k = k.with_columns(pl.col("start") + shift, pl.col("end") + shift)
    later = pl.col("start") >= int(api.filter(pl.col("correlationId") == n + 1)["start"][0])
    api = (
        api.sort("start")
        .with_columns(
            pl.when(pl.col("correlationId") <= n)
            .then(pl.col("start") + (pl.col("correlationId") - 1) * 40_000)
            .when(later)
            .then(pl.col("start") + n * 40_000)
            .otherwise(pl.col("start"))
            .alias("start"),
        )
        .with_columns(pl.col("start").alias("_s"))
    )
    api = api.with_columns(
        pl.when(pl.col("correlationId") <= n)
        .then(pl.col("end") + (pl.col("correlationId") - 1) * 40_000)
        .when(later)
        .then(pl.col("end") + n * 40_000)
        .otherwise(pl.col("end"))
        .alias("end")
    ).drop("_s")
    s = find_structure(k, api, f["memcpy"])
    assert s.kind == "iterations", s.notes
    assert [(r.warmup, r.iterations) for r in s.requests] == [(True, 1), (False, 11)], s.requests
    assert "over 3x the host time" in s.requests[0].reason


def test_a_piece_of_a_pass_before_the_first_whole_one_is_no_request():
    # a lone kernel (the end of a setup's last pass: the classifier's GEMM), then 5 ms later 10 whole passes
    one = _cnn_pass()
    f = _synthetic_passes(1, 10, one, read_back="pass")
    k, api = f["kernels"], f["api"]
    t = int(k["start"].min()) - 5_000_000
    lone = (
        k.slice(len(one) - 1, 1)
        .with_columns(  # the pass's last kernel (the classifier's GEMM)
            pl.lit(t).alias("start"), pl.lit(t + 3_000).alias("end"), pl.lit(10_000).alias("correlationId")
        )
        .cast(k.schema)
    )  # type: ignore[arg-type]
    call = (
        api.slice(len(one) - 1, 1)
        .with_columns(
            pl.lit(t - 500).alias("start"), pl.lit(t - 100).alias("end"), pl.lit(10_000).alias("correlationId")
        )
        .cast(api.schema)
    )  # type: ignore[arg-type]
    s = find_structure(pl.concat([lone, k]), pl.concat([call, api]), f["memcpy"])
    assert s.kind == "iterations" and len(s.measured_requests) == 1, s.requests
    assert s.requests[0].warmup and s.requests[0].reason.startswith("a fragment"), s.requests[0]
    assert s.count("iteration") == 10


def test_gradient_accumulation_from_where_the_optimizer_runs():
    # training steps of 3 micro-batches: forward and backward 3 times, then the optimizer's kernels once, before the
    # step's loss is read back
    fwd_bwd = [*_llm_pass(layers=4, per_layer=10), ("void at::native::embedding_backward_feature_kernel<float>", 3_000)]
    optimizer = [("void at::native::multi_tensor_apply_kernel<TensorListMetadata<4>>", 40_000)] * 2
    f = _synthetic_passes(4, 3, fwd_bwd, request_tail=optimizer)
    s = find_structure(f["kernels"], f["api"], f["memcpy"], capture_range="cudaProfilerApi")
    assert s.kind == "iterations" and s.training
    assert [r.iterations for r in s.requests] == [3, 3, 3, 3]
    assert s.micro_batches == 3 and s.words() == ("optimizer step", "micro-batch")
    # the optimizer in every pass: each pass is an optimizer step
    g = _synthetic_passes(4, 3, [*fwd_bwd, *optimizer])
    t = find_structure(g["kernels"], g["api"], g["memcpy"], capture_range="cudaProfilerApi")
    assert t.training and t.micro_batches is None and t.words() == ("request", "training step")
    # one pass per request: nothing is accumulated
    h = _synthetic_passes(6, 1, fwd_bwd, request_tail=optimizer)
    u = find_structure(h["kernels"], h["api"], h["memcpy"], capture_range="cudaProfilerApi")
    assert u.training and u.micro_batches is None
    # a capture that stops inside the last optimizer step (after 2 of its 3 micro-batches): still 3 per step
    last = f["kernels"].filter(pl.col("name").str.contains("lm_head")).sort("start")["start"][-2]
    cut_at = int(last) + 1
    short = {name: (frame.filter(pl.col("start") < cut_at) if "start" in frame.columns else frame)
             for name, frame in f.items()}  # fmt: skip
    y = find_structure(short["kernels"], short["api"], short["memcpy"], capture_range="cudaProfilerApi")
    assert [r.iterations for r in y.requests] == [3, 3, 3, 2] and y.micro_batches == 3
    # a loss read after every micro-batch (a sync at every pass boundary): the optimizer still cuts the steps
    w = _synthetic_passes(4, 3, fwd_bwd, request_tail=optimizer, read_back="pass")
    x = find_structure(w["kernels"], w["api"], w["memcpy"], capture_range="cudaProfilerApi")
    assert x.micro_batches == 3 and [r.iterations for r in x.requests] == [3, 3, 3, 3]
    # inference passes with the same optimizer-like tail are no training
    i = _synthetic_passes(4, 3, fwd_bwd[:-1], request_tail=optimizer)
    v = find_structure(i["kernels"], i["api"], i["memcpy"], capture_range="cudaProfilerApi")
    assert not v.training and v.micro_batches is None


def _loop(unit: list[str], repeats: int, syncs_every: int = 0) -> RunStructure:
    """A synthetic run repeating ``unit`` (kernels of 5 us, 1 us apart), with a host sync after every
    ``syncs_every``-th repeat (none for 0)."""
    names: list[str] = []
    starts: list[int] = []
    syncs: list[int] = []
    t = 1_000_000
    for i in range(repeats):
        for n in unit:
            names.append(n)
            starts.append(t)
            t += 6_000
        if syncs_every and (i + 1) % syncs_every == 0:
            syncs.append(t)
            t += 30_000
    k = kernel_frame(names, starts, [5_000] * len(names))
    return find_structure(k, launches_and_syncs(starts, syncs))


def test_a_solvers_backward_sweep_is_no_training_step():
    # an HPC loop whose kernels say "backward" (an FFT's inverse, a tridiagonal solver's back substitution) runs no
    # optimizer: no training step, and no forward pass either (no layers, sampling or graph launches)
    fft = ["stencil_kernel", "fft_forward_kernel", "spectral_multiply", "fft_backward_kernel", "residual_reduce"]
    s = _loop(fft, 100, syncs_every=10)
    assert s.kind == "unstructured" and not s.training
    # the same unit with an optimizer's update in it (autograd's backward kernels and an Adam step): training steps
    train = ["linear_fwd", "gelu_kernel", "GeluBackwardCUDAKernelImpl", "linear_bwd", "multi_tensor_apply_kernel"]
    t = _loop([*train, *train], 12, syncs_every=1)
    assert t.kind == "iterations" and t.training
    assert any("backward kernels in the units" in e.detail for e in t.evidence if e.fact == "passes")


# ------------------------------------------------------------------------------------------ launch times, once
def _launch_sequences(path: Path) -> tuple[Seq, Seq]:
    """The analyzed process's kernel sequence with its launch times found from the API rows, and from the launch
    columns ``launched_kernels`` found for the whole report."""
    f, _ = frames(path)
    k = f.kernels
    pids = k.group_by("pid").len().sort(["len", "pid"], descending=[True, False])
    pid = int(pids["pid"][0])
    api = Api(f.api, pid)
    return kernel_sequence(k, api, pid), kernel_sequence(k, api, pid, launched_kernels(k, f.api))


def _same_sequence(a: Seq, b: Seq) -> None:
    assert a.names == b.names and a.shorts == b.shorts
    for field in ("code", "t", "t_end", "start", "end", "graph", "blocks", "pos_order"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


@pytest.mark.parametrize(
    ("name", "graphed"),
    [("graph_decode_whole", True), ("cublas_graph_decode_whole", True), ("hf_llama_generate_whole", False)],
)
def test_launch_times_of_the_report_lookup_are_those_of_the_api_rows(name, graphed):
    # the structure reuses the report's launch lookup (keyed by process and correlationId) rather than matching
    # the kernels to the API rows again: the same launch times, ends and graph-launched kernels
    a, b = _launch_sequences(RUNS / f"{name}.sqlite")
    _same_sequence(a, b)
    assert bool(a.graph.any()) is graphed
    assert (a.t != a.start).mean() > 0.9  # nearly every kernel has its launch call's time, not its GPU start


def test_a_launch_lookup_of_the_kernels_in_another_order_is_not_used():
    # the lookup is reused only for the same rows in the same order; else the launches are matched again
    f, _ = frames(RUNS / "hf_llama_generate_whole.sqlite")
    k = f.kernels
    pid = int(k["pid"][0])
    api = Api(f.api, pid)
    reordered = launched_kernels(k.sort("dur"), f.api)
    assert reordered.height == k.height
    _same_sequence(kernel_sequence(k, api, pid), kernel_sequence(k, api, pid, reordered))


@needs_shared
def test_launch_times_of_two_processes():
    # two processes whose correlation ids overlap: the analyzed process's kernels get their own launches
    a, b = _launch_sequences(MULTI / "tp2_allranks.sqlite")
    _same_sequence(a, b)
    assert (a.t != a.start).mean() > 0.9


def _cover(pos: list[int]) -> tuple[float, float]:
    """(plain coverage, coverage with one recurring break) of a token sampler at ``pos``."""
    from nsys_doctor.analysis.structure.sequence import broken_cover, regularity

    p = np.array(pos, dtype=np.int64)
    med, reg, cov, _, _ = regularity(p)
    return cov, broken_cover(p, med, reg, cov)


def _runs(lengths: list[int], step: int, breaks: list[int]) -> list[int]:
    """Positions of ``lengths[i]`` samplers ``step`` apart, the runs ``breaks[i]`` apart."""
    pos, at = [], 0
    for i, n in enumerate(lengths):
        pos += [at + step * j for j in range(n)]
        at = pos[-1] + (breaks[i] if i < len(breaks) else 0)
    return pos


def test_a_recurring_break_between_runs_of_tokens_is_covered() -> None:
    # 4 requests of 32 tokens 9 kernels apart, a prompt's loop of 271 kernels between them (the LSTM language model)
    cov, broken = _cover(_runs([32] * 4, 9, [271] * 3))
    assert cov < 0.6 and broken == 1.0
    # breaks of different lengths are parts of the run the sampler leaves: not covered
    cov, broken = _cover(_runs([32] * 4, 9, [271, 900, 40]))
    assert broken == cov < 0.6
    # one break recurs nowhere
    cov, broken = _cover(_runs([64, 64], 9, [2000]))
    assert broken == cov < 0.6
    # runs of 3 tokens (an encoder-decoder's short outputs): fewer than 90% of the distances regular
    cov, broken = _cover(_runs([3] * 10, 9, [271] * 9))
    assert broken == cov


def test_a_host_stall_at_another_place_in_a_few_passes_does_not_cut_them() -> None:
    """A 3-layer GRU language model (rnn_generate.py --cell gru --warmup 1 --iters 4 --new-tokens 20): every token's
    pass is 12 kernels (3 layers of 2 GEMMs and a cell, the head's GEMM, its argmax and one more). In 7 of its 99
    passes the longest launch gap lay before the head's GEMM, not after the pass's last kernel: those boundaries cut
    a pass 9 kernels late (a pass of 21, then one of 3), and the requests holding them were taken for warm-up (2
    measured + 3 warm-up). A boundary at an offset that few boundaries have (a tenth) moves to the usual one."""
    s = structure(RUNS / "gru_generate_whole.sqlite")
    assert (s.kind, len(s.measured_requests), sum(r.warmup for r in s.requests)) == ("llm-decode", 4, 1)
    measured = [st for st in s.steps if not s.requests[st.request].warmup]
    assert sum(st.kind == "prefill" for st in measured) == 4
    assert [st.kernels for st in measured if st.kind == "decode"] == [12] * 4 * 19


def test_a_stall_of_a_third_of_a_pass_is_no_pause_between_requests() -> None:
    """A double-buffered inference loop (stream_pipeline.py --arch resnet50 --batch 8 --warmup 1 --iters 15): 16
    passes of 6-20 ms back to back, the GPU idle 0.2-0.6 ms between them but 2.66 ms once, before pass 11. That gap
    (9x the typical one) was taken for a pause between requests: 11 passes (the first loading modules, so all
    warm-up) and 5 measured. A request gap must also be half a typical pass (``REQUEST_GAP_SPAN_SHARE``)."""
    s = structure(RUNS / "stream_pipeline_r50_whole.sqlite")
    assert s.kind == "iterations"
    assert sum(st.kind == "iteration" and not s.requests[st.request].warmup for st in s.steps) == 15


def test_a_recurrent_lm_prompt_loop_is_its_requests_prefill() -> None:
    s = structure(RUNS / "rnn_generate_whole.sqlite")
    # rnn_generate.py --warmup 1 --iters 3 --new-tokens 32: a prompt pass and 31 decode steps a request
    assert (s.kind, len(s.measured_requests), s.period) == ("llm-decode", 3, 9)
    measured = [st for st in s.steps if not s.requests[st.request].warmup]
    assert sum(st.kind == "prefill" for st in measured) == 3
    assert sum(st.kind == "decode" for st in measured) == 93
