"""The report against the truth, trace by trace: run kind, measured structure, target, first finding and no false
critical. Each row is one row of docs/validation.md; the truth comes from how each trace was captured (the READMEs
of ../shared/traces, ../shared/traces/engines, ../shared/traces/public and tests/data/runs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nsys_doctor.cli.report import diagnose_trace
from nsys_doctor.loaders import load_rules

from .conftest import DATA, TRACES, open_trace

RUNS = DATA / "runs"


@dataclass(frozen=True)
class Truth:
    path: Path
    kind: str
    prefill: int | None = None  # measured prefill steps (None: not checked)
    decode: int | None = None  # measured decode steps, within one
    iterations: int | None = None
    requests: int | None = None  # measured requests
    warmup: int | None = None  # warm-up requests left out
    target: str | None = None  # the target family (None: a recapture)
    first: tuple[str, ...] = ()  # allowed first findings (empty: not checked)
    critical_ok: frozenset[str] = field(default_factory=frozenset)  # findings allowed to be critical
    words: bool = True  # LLM words (decode step, TPOT) allowed
    no_cache: bool = False  # LLM decode without a KV cache: the no-kv-cache finding (and on no other run)
    known: str = ""  # a known miss (why): the row is a strict xfail until the report gets it right


T, E, P = TRACES, TRACES / "engines", TRACES / "public"
CASES = [
    Truth(T / "decode_graph_node.sqlite", "llm-decode", 1, 127, 0, 1, 0, "gemv"),
    Truth(T / "decode_graph_stop.sqlite", "llm-decode", 1, 127, 0, 1, 0, "gemv"),
    Truth(T / "decode_graph_extras.sqlite", "llm-decode", 1, 63, 0, 1, 0, "gemv"),
    Truth(T / "ctx_long_graph_node.sqlite", "llm-decode", 1, 127, 0, 1, 0, "gemv"),
    Truth(T / "repeat.1.sqlite", "llm-decode", 1, 15, 0, 1, 0, "gemv"),
    Truth(T / "decode_graph_graph.sqlite", "llm-decode", None, None, 0, 1, 0, None, ("graph-trace-not-node",),
          frozenset({"graph-trace-not-node"})),
    Truth(T / "decode_eager.sqlite", "llm-decode", 1, 127, 0, 1, 0, "gemv", ("launch-bound",),
          frozenset({"launch-bound"})),
    Truth(T / "decode_pathologies.sqlite", "llm-decode", 3, 285, 0, 3, 1, "gemv", ("launch-bound",),
          frozenset({"launch-bound", "gpu-idle-gap"})),
    Truth(T / "prefill_2048.sqlite", "llm-prefill", 1, 0, 0, 1, 0, "gemm", (),
          frozenset({"low-gpu-utilization"})),
    # other engines on an H200
    # decode attention over 24 thread blocks (one per head) on 132 SMs, a fused norm over one block: the grids
    Truth(E / "cpp_llama3b_graph.sqlite", "llm-decode", 1, 47, 0, 1, 0, "attention-decode", ("small-grid",),
          frozenset({"small-grid"})),
    Truth(E / "cpp_llama3b_eager_whole.sqlite", "llm-decode", 2, 94, 0, 2, 1, "attention-decode", ("small-grid",),
          frozenset({"small-grid"})),
    Truth(E / "hf_qwen2_generate.sqlite", "llm-decode", 2, 78, 0, 2, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    # the host reads every token: the GPU idles between the jitted decode steps (1.77 ms before each, 78%)
    Truth(E / "jax_decode_small.sqlite", "llm-decode", 1, 31, 0, 1, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    Truth(E / "vit_b16_infer.sqlite", "iterations", 0, 0, 30, None, None, "gemm", ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    # captures of transformers, torch.compile, torchvision (tests/data/runs)
    Truth(RUNS / "hf_llama_generate_whole.sqlite", "llm-decode", 2, 38, 0, 2, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    Truth(RUNS / "hf_moe_generate_sample_capture.sqlite", "llm-decode", 2, 22, 0, 2, 0, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    # eager prefill passes of 462 launches: the GPU works 1.8 ms of each 16 ms pass
    Truth(RUNS / "hf_qwen3_prefill_whole.sqlite", "llm-prefill", 5, 0, 0, 5, 1, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    Truth(RUNS / "compile_decode_graphs_whole.sqlite", "llm-decode", 0, 120, 0, 3, 1, "gemv"),
    # torch.compile's default mode launches each Triton kernel from Python (no CUDA graph): 66 launches a step, the
    # GPU idle 85% of it between them
    Truth(RUNS / "compile_decode_default_warmcache.sqlite", "llm-decode", 0, 64, 0, 2, 1, "gemv", ("launch-bound",),
          frozenset({"launch-bound"})),
    # graphed decode plus ~30 eager kernels of generate per token: the GPU is busy 14% of the window, idle inside
    # the steps (the eager kernels launched one by one) and between them (generate's own code from token to token)
    Truth(RUNS / "hf_mistral_static_compile_whole.sqlite", "llm-decode", 2, 38, 0, 2, 2, None, (),
          frozenset({"low-gpu-utilization", "launch-bound", "host-between-steps"})),
    Truth(RUNS / "bert_base_nvtx_whole.sqlite", "iterations", 0, 0, 10, None, None, "gemm", ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    Truth(RUNS / "resnet50_fp16_cl_whole.sqlite", "iterations", 0, 0, 10, 1, 1, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    # the second warm-up request of the resnet18 runs looks exactly like the measured ones (no load, sync, gap or
    # copy tells them apart): the report leaves out 1 warm-up request, not 2, so requests and iterations are
    # checked in tests/test_runs_more.py (strict xfails), not here
    Truth(RUNS / "resnet18_requests_whole.sqlite", "iterations", 0, 0, None, None, None, "conv", ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    Truth(RUNS / "resnet18_bench_nvtx_requests_whole.sqlite", "iterations", 0, 0, None, None, None, "conv",
          ("launch-bound",), frozenset({"launch-bound"}), words=False),
    Truth(RUNS / "hf_qwen2_sample_batch3_whole.sqlite", "llm-decode", 2, 30, 0, 2, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    # a detector, a CNN reading back every pass, beam search, an encoder-decoder (tests/data/runs/README.md, section 5)
    Truth(RUNS / "detector_frcnn_whole.sqlite", "iterations", 0, 0, 10, 1, 1, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    # its second warm-up pass runs exactly like the measured ones: 21 iterations, checked in tests/test_runs_more.py
    Truth(RUNS / "mobilenet_readback_whole.sqlite", "iterations", 0, 0, None, None, None, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    Truth(RUNS / "gpt2_beam_generate_whole.sqlite", "llm-decode", 2, 30, 0, 2, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    # per request the encoder pass and the first decoder pass (which fills the cross-attention cache) read the prompt
    Truth(RUNS / "t5_generate_whole.sqlite", "llm-decode", 4, 46, 0, 2, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    # code this project did not write, captured after the rules above were written (tests/data/runs README, part 6)
    # a hand-written CUDA engine: the same kernels for the prompt and the tokens, over 8x to 128x the thread blocks
    Truth(RUNS / "cuda_cpp_requests_whole.sqlite", "llm-decode", 4, 80, 0, 4, 1, "attention-decode", ("small-grid",),
          frozenset({"small-grid"})),
    # Whisper's encoder pass and first decoder pass per request; 50 ms sleeps between requests
    Truth(RUNS / "whisper_tiny_generate_whole.sqlite", "llm-decode", 4, 62, 0, 2, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    # XLA's compilation and autotuning (10 s, a 17-kernel candidate loop 232 times) before 12 jitted calls, each
    # followed by block_until_ready(): the GPU waits between the calls while the host waits, then dispatches the
    # next; inside a call XLA launches its 25 kernels one by one (no CUDA graph)
    Truth(RUNS / "jax_lax_cnn_whole.sqlite", "iterations", 0, 0, 11, 1, 1, "conv", ("host-between-steps",),
          frozenset({"host-between-steps", "launch-bound", "low-gpu-utilization"}), words=False),
    # torch.compile: Triton benchmarks its candidates inside the first call (7,791 kernels), then 11 calls
    Truth(RUNS / "compile_resnet18_default_whole.sqlite", "iterations", 0, 0, 11, 1, 1, "conv",
          ("launch-bound",), frozenset({"launch-bound"}), words=False),
    # a diffusion loop: 20 UNet forwards per image, a randn per image (part 7)
    Truth(RUNS / "diffusion_unet_whole.sqlite", "iterations", 0, 0, 80, 4, 1, "conv", ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    # a cuBLAS engine whose decode step is one CUDA graph: 1 eager prefill + 24 graph launches per request
    Truth(RUNS / "cublas_graph_decode_whole.sqlite", "llm-decode", 3, 72, 0, 3, 1, None, ("small-grid",),
          frozenset({"small-grid"})),
    # requests of different lengths, a Mamba, training, an embedding service (tests/data/runs/README.md, 9 and 10)
    # a module load before cuDNN's runtime-fused attention kernel in every decode step (a new KV length each step)
    Truth(RUNS / "hf_varlen_generate_whole.sqlite", "llm-decode", 3, 69, 0, 3, 1, None,
          ("module-loading-in-window",), frozenset({"module-loading-in-window"})),
    Truth(RUNS / "hf_mamba_generate_whole.sqlite", "llm-decode", 2, 30, 0, 2, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    # AdamW, 4 measured optimizer steps (the requests) of 4 micro-batches
    Truth(RUNS / "train_llama_accum_whole.sqlite", "iterations", 0, 0, 16, 4, 1, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    # BERT-base answering 10 requests of changing length, 2 of them warm-up; the host's own time between requests
    # (it makes each request's ids, then reads the embeddings back) leaves the GPU idle
    Truth(RUNS / "hf_embed_requests_b8_whole.sqlite", "iterations", 0, 0, 8, 8, 2, None, ("launch-bound",),
          frozenset({"launch-bound", "gpu-idle-gap"}), words=False,
          known="request 1, a warm-up by how the loop ran, runs like the measured requests (each loads modules for "
                "its own sequence length): 9 measured for 8"),
    # engines and models captured after the rules above (tests/data/runs/README.md, section 11): a decode step the
    # program captured in a CUDA graph itself; an LSTM classifier (a recurrent cell over each request's sequence:
    # its embedding gather and argmax run once per pass, as an LLM's would); fp16 training with a GradScaler; a
    # model of hand-written Triton kernels, compiled at their first call (no kernel runs once per pass)
    Truth(RUNS / "graph_decode_whole.sqlite", "llm-decode", 3, 93, 0, 3, 1, None, ("small-grid",),
          frozenset({"small-grid"})),
    Truth(RUNS / "rnn_requests_whole.sqlite", "iterations", 0, 0, 9, 1, 1, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    Truth(RUNS / "train_llama_fp16scaler_whole.sqlite", "iterations", 0, 0, 6, 1, 1, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    # captured after the LSTM rule was written: a 3-layer GRU over batches of 64 (its GEMMs, in runs of 8 time steps
    # between the next chunk's input projections, first failed a rule that wanted 16 in a row)
    Truth(RUNS / "gru_requests_whole.sqlite", "iterations", 0, 0, 9, 1, 1, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    # and a 1-layer LSTM at batch 1 over 200 tokens, captured after the rule was settled (it was "LLM prefill")
    Truth(RUNS / "lstm_small_requests_whole.sqlite", "iterations", 0, 0, 7, 1, 1, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    # the host makes each request's batch (torch.randn on the CPU, ~20 ms) while the GPU waits: a true idle gap
    Truth(RUNS / "resnet50_graph_requests_whole.sqlite", "iterations", 0, 0, None, None, 2, None, ("gpu-idle-gap",),
          frozenset({"gpu-idle-gap"}), words=False),
    # a generation loop written by hand around a transformers Llama: the tokens stay on the GPU (argmax), read back
    # once per request, so only the request has a host round trip; its tokens' passes each end in an argmax
    Truth(RUNS / "hf_manual_decode_whole.sqlite", "llm-decode", 3, 69, 0, 3, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    # an LSTM language model: each request's prompt loops cuDNN's cells over 64 tokens (262 kernels), then 31 decode
    # steps of 9 kernels; the host spends about 600 us a step around 55 us of kernels, and pauses between requests
    Truth(RUNS / "rnn_generate_whole.sqlite", "llm-decode", 3, 93, 0, 3, 1, None,
          ("gpu-idle-gap", "launch-bound"), frozenset({"low-gpu-utilization", "launch-bound", "gpu-idle-gap"})),
    # the hand-written C++ engine sampling on the host (logits copied back, the token copied in, per pass) and
    # keeping its tokens on the GPU (one read back per request)
    Truth(RUNS / "cuda_cpp_host_sample_whole.sqlite", "llm-decode", 4, 80, 0, 4, 1, "attention-decode",
          ("small-grid",), frozenset({"small-grid"})),
    Truth(RUNS / "cuda_cpp_gpu_tokens_whole.sqlite", "llm-decode", 3, 90, 0, 3, 1, "attention-decode",
          ("small-grid",), frozenset({"small-grid"})),
    # decode without a KV cache: each pass runs over the whole sequence so far. A hand-written GPT-2 loop (its
    # requests were cut where cuBLAS changed GEMMs with the length: 5 requests, 2 warm-up) and transformers'
    # generate(use_cache=False) (8 "prefill steps" a request); at these sizes the growth costs little GPU time
    Truth(RUNS / "gpt2_manual_nocache_whole.sqlite", "llm-decode", 3, 117, 0, 3, 1, None,
          ("launch-bound",), frozenset({"launch-bound"}), no_cache=True),
    Truth(RUNS / "hf_llama_nocache_generate_whole.sqlite", "llm-decode", 2, 62, 0, 2, 1, None, ("launch-bound",),
          frozenset({"launch-bound"}), no_cache=True),
    # captured after the rule: sampling generate(use_cache=False) on Qwen2, whose sampler's kernels keep their size
    Truth(RUNS / "qwen2_sample_nocache_whole.sqlite", "llm-decode", 2, 30, 0, 2, 1, None, ("launch-bound",),
          frozenset({"launch-bound"}), no_cache=True),
    # transformers' continuous batching (generate_batch): 8 prompts of 16-90 tokens served together, each job 1 pass
    # over all prompts (444 tokens) and 15 decode passes of 8 tokens; a kernel runs 3 more times in the prompt's
    # pass, which was cut into 4 "steps" (2 prefill, 2 decode)
    Truth(RUNS / "hf_continuous_batching_whole.sqlite", "llm-decode", 2, 30, 0, 2, 1, None,
          ("module-loading-in-window",), frozenset({"module-loading-in-window"})),
    # GPT-2 training without accumulation (AdamW, .item() per step), captured to check the backward-kernel rule
    # once written: it was unstructured
    Truth(RUNS / "train_gpt2_whole.sqlite", "iterations", 0, 0, 6, 1, 1, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    # models that are no LLM, two models per request, far-apart lengths (tests/data/runs/README.md, section 14):
    # captured before the rules they drove. A recommender and a GNN serving one batch or graph a request (their
    # argmax or embedding lookups looked like an LLM's); their second (and third) warm-up requests run like the
    # measured ones, so the request counts are not checked here (tests/test_structure.py checks the passes)
    # (the recommender draws each request's candidates and ids on the host, between its passes: the GPU waits)
    Truth(RUNS / "recsys_requests_whole.sqlite", "iterations", 0, 0,
          critical_ok=frozenset({"low-gpu-utilization", "host-between-steps"}), words=False),
    Truth(RUNS / "gnn_requests_whole.sqlite", "iterations", 0, 0, critical_ok=frozenset({"gpu-idle-gap"}),
          words=False),
    # a VLM (LLaVA) and retrieval then generation: the vision tower's and the encoder's pass count as a prefill step
    Truth(RUNS / "vlm_generate_whole.sqlite", "llm-decode", 4, 46, 0, 2, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    # decode steps at context lengths no request ran before are 8x slower with the same GPU work (slow-steps)
    Truth(RUNS / "rag_requests_whole.sqlite", "llm-decode", 6, 57, 0, 3, 1, None, ("module-loading-in-window",),
          frozenset({"module-loading-in-window"})),
    Truth(RUNS / "hf_varlen_extreme_whole.sqlite", "llm-decode", 4, 80, 0, 4, 1, None,
          ("module-loading-in-window",), frozenset({"module-loading-in-window", "gpu-idle-gap"})),
    # captured after those rules, to check them: Qwen2 requests of new lengths (1 + 4, 29/5/19/9 decode steps; 53 of
    # its 62 decode steps run at new lengths, too many to tell the typical step: no slow-steps finding), a
    # two-tower retrieval model (small inputs, a top-k), a GNN whose mean aggregation is a cuSPARSE product
    Truth(RUNS / "hf_qwen2_varlen_whole.sqlite", "llm-decode", 4, 62, 0, 4, 1, None,
          ("module-loading-in-window",), frozenset({"module-loading-in-window"})),
    Truth(RUNS / "two_tower_requests_whole.sqlite", "iterations", 0, 0,
          critical_ok=frozenset({"low-gpu-utilization", "launch-bound"}), words=False),
    Truth(RUNS / "gnn_spmm_requests_whole.sqlite", "iterations", 0, 0, 12, 12, 2,
          critical_ok=frozenset({"gpu-idle-gap"}), words=False,
          known="each of the 3 layers (cuSPARSE syncs in every one) is taken for a pass: 13 requests of 3 iterations "
                "for 12 of 1"),
    # and one made to break them: transformers' offloaded KV cache copies 17.5 MB to the GPU before every decode step
    # (batch 16): an LLM's decode still (attention, its linear layers a token's GEMVs)
    Truth(RUNS / "hf_llama_offloaded_b16_whole.sqlite", "llm-decode", 2, 46, 0, 2, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    # captured after the rules above, configurations not analyzed before (part 15): encoder-decoders of short outputs
    # (T5, 8 tokens; Whisper, 10, with 50 ms sleeps between requests), as few decoder passes a request as a round of
    # speculative decoding has drafts (both were taken for it: 1 request), and a speculative run beside them
    Truth(RUNS / "t5_short_out_whole.sqlite", "llm-decode", 10, 35, 0, 5, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    Truth(RUNS / "whisper_short_out_whole.sqlite", "llm-decode", 10, 45, 0, 5, 1, None,
          critical_ok=frozenset({"low-gpu-utilization", "launch-bound", "gpu-idle-gap"})),
    Truth(RUNS / "hf_assisted_d2_long_whole.sqlite", "llm-decode", 4, 40, 0, 4, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    # and after that rule, BART at batch 4 with 10 output tokens, requests back to back (no pause between them)
    # README section 16: a host stall inside a pass (EfficientNet-B0 at batch 1, 8 requests of 3 passes)
    Truth(RUNS / "effnet_b1_requests_whole.sqlite", "iterations", 0, 0, None, None, None, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    Truth(RUNS / "bart_b4_short_whole.sqlite", "llm-decode", 8, 36, 0, 4, 2, None, ("launch-bound",),
          frozenset({"launch-bound"}),
          known="the second warm-up request (no module loads, the kernels of the measured ones) is taken for a "
                "measured one: 5 measured + 1 warm-up"),
    # Whisper with 6 tokens back to back: each request's last decoder pass is taken into the next request's first
    # step (the encoder's), 4 decode steps a request found of 5
    Truth(RUNS / "whisper_nopause_whole.sqlite", "llm-decode", 12, 30, 0, 6, 1, None,
          critical_ok=frozenset({"launch-bound", "low-gpu-utilization", "gpu-idle-gap"}),
          known="each request's first decoder pass (2 kernels more than a token's pass, 1.2x its GPU time) is "
                "counted as a decode step: 1 prefill + 6 decode steps a request, 36 in all"),
    # T5 at batch 8, 3 tokens a request: no pass found; launch-bound judged over the window (tests/test_runs_more.py)
    Truth(RUNS / "t5_b8_3tok_whole.sqlite", "llm-decode", 16, 16, 0, 8, 2, None, ("launch-bound",),
          frozenset({"launch-bound"}),
          known="with 3 decoder passes a request the once-per-pass names are spaced unevenly and the one level "
                "found (4 repeats a request) has no layers nor sampling: the run is taken for unstructured"),
    Truth(RUNS / "bart_b8_3tok_whole.sqlite", "llm-decode", 16, 16, 0, 8, 2, None, ("launch-bound",),
          frozenset({"launch-bound"}),
          known="as T5's above: with 3 decoder passes a request no pass is found (no longer taken for speculative "
                "decoding: tests/test_runs_more.py)"),
    # README section 18: captured before any rule was tried on them (held out), on an H100. transformers' OPT and
    # GPT-NeoX (batch 2) decoders and a 3-layer GRU language model (its passes were cut at a host stall that recurred
    # in 7 of 99 passes: 2 measured + 3 warm-up requests, now right) ...
    Truth(RUNS / "opt_generate_whole.sqlite", "llm-decode", 3, 69, 0, 3, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    Truth(RUNS / "neox_generate_b2_whole.sqlite", "llm-decode", 3, 45, 0, 3, 1, None, ("launch-bound",),
          frozenset({"launch-bound"})),
    Truth(RUNS / "gru_generate_whole.sqlite", "llm-decode", 4, 76, 0, 4, 1, None, ("gpu-idle-gap", "launch-bound"),
          frozenset({"gpu-idle-gap", "launch-bound"})),
    # ... and three runs with 2 warm-up requests whose second runs as the measured ones do (no module loads, the
    # same kernels, timings among theirs: 94 ms against 79-84 ms for Phi-2's, 23.6 against 20.8-24.7 for the LSTM's)
    Truth(RUNS / "phi_generate_whole.sqlite", "llm-decode", 3, 57, 0, 3, 2, None, ("launch-bound",),
          frozenset({"launch-bound"}),
          known="the second warm-up request is taken for a measured one: 4 measured + 1 warm-up"),
    Truth(RUNS / "lstm_generate_b1_whole.sqlite", "llm-decode", 3, 141, 0, 3, 2, None,
          ("gpu-idle-gap", "launch-bound"), frozenset({"gpu-idle-gap", "launch-bound"}),
          known="the second warm-up request is taken for a measured one: 4 measured + 1 warm-up"),
    Truth(RUNS / "convnext_requests_whole.sqlite", "iterations", 0, 0, 12, 4, 2, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False,
          known="the second warm-up request is taken for a measured one: 5 measured + 1 warm-up, 15 iterations"),
    # README section 19, held out again: a double-buffered ResNet-50 pipeline on two streams, 1 warm-up + 15
    # batches (a 2.7 ms stall at batch 11 cut it into 11 warm-up + 5 measured passes) and CLIP requests back to back
    # (1 warm-up + 10 requests of one call each: the requests are not checked, the iterations are)
    Truth(RUNS / "stream_pipeline_r50_whole.sqlite", "iterations", 0, 0, 15, None, None, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    Truth(RUNS / "clip_small_whole.sqlite", "iterations", 0, 0, 10, None, None, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    # README section 20, held out a third time: a two-tower retriever, 1 warm-up + 15 requests of one pass back to
    # back (the passes are checked, not the requests)
    Truth(RUNS / "two_tower_small_whole.sqlite", "iterations", 0, 0, 15, None, None, None, ("launch-bound",),
          frozenset({"launch-bound"}), words=False),
    Truth(RUNS / "triton_mlp_whole.sqlite", "unstructured", first=("module-loading-in-window",),
          critical_ok=frozenset({"module-loading-in-window"}), words=False),
    # other people's public traces
    Truth(P / "sc23omp_report3.sqlite", "unstructured", target="memcpy", words=False),
    Truth(P / "gpu4_report2.sqlite", "unstructured", target="memcpy", critical_ok=frozenset({"alloc-churn"}),
          words=False),
    Truth(P / "llama3inf_demo.sqlite", "unstructured", target="gemm", critical_ok=frozenset({"gpu-idle-gap"})),
    Truth(P / "fuser_report1_8fa9ec2.sqlite", "unstructured", words=False),
    Truth(P / "rodinia_gaussian_report2.sqlite", "unstructured", words=False),
    Truth(P / "dlprof_nsys_profile_a.sqlite", "unstructured", words=False),
    Truth(P / "weatherbench2_report1.sqlite", "unstructured", first=("no-kernels",),
          critical_ok=frozenset({"no-kernels"}), words=False),
]  # fmt: skip


def _id(t: Truth) -> str:
    return t.path.stem


def _param(t: Truth) -> object:
    return pytest.param(t, marks=pytest.mark.xfail(strict=True, reason=t.known)) if t.known else t


@pytest.mark.parametrize("truth", [_param(t) for t in CASES], ids=_id)
def test_report_matches_the_truth(truth: Truth) -> None:
    if not truth.path.is_file():
        pytest.skip(f"{truth.path} is not present")
    d = diagnose_trace(open_trace(truth.path), load_rules())
    run = d.run
    assert run["kind"] == truth.kind, run
    for key, want in (("prefill_steps", truth.prefill), ("iterations", truth.iterations),
                      ("requests", truth.requests), ("warmup_requests", truth.warmup)):  # fmt: skip
        if want is not None:
            assert run[key] == want, (key, run[key], want)
    if truth.decode is not None:
        assert abs(int(run["decode_steps"]) - truth.decode) <= 1, (run["decode_steps"], truth.decode)
    if truth.target is not None:
        assert d.target.get("family") == truth.target, d.target
    if truth.first:
        assert d.findings and d.findings[0].id in truth.first, [f.id for f in d.findings]
    critical = {f.id for f in d.findings if f.severity == "critical"}
    assert critical <= truth.critical_ok, critical - truth.critical_ok
    assert ("no-kv-cache" in {f.id for f in d.findings}) == truth.no_cache, [f.id for f in d.findings]
    assert (run["growing_passes"] is not None) == truth.no_cache, run["growing_passes"]
    if not truth.words:
        text = " ".join([str(d.target.get("why", "")), *d.next_actions, *(f.summary for f in d.findings)])
        words = (
            ("decode step", "TPOT") if truth.kind.startswith("llm") else ("decode step", "TPOT", "prefill", "RMSNorm")
        )
        for word in words:
            assert word not in text, word
        assert "TPOT" not in str(d.step_summary.get("warning", ""))


def test_request_picks_another_request(capsys):
    import json

    from nsys_doctor.cli.main import main

    path = T / "decode_pathologies.sqlite"
    if not path.is_file():
        pytest.skip("../shared/traces is not present")
    assert main(["report", str(path), "--request", "0", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # request 0 is the warm-up request (1 prefill + 95 decode steps, like the measured ones), shown when asked for
    assert data["window"]["source"] == "user" and "warm-up" in data["window"]["reason"]
    assert (data["run"]["prefill_steps"], data["run"]["decode_steps"]) == (1, 95)
    assert main(["report", str(path), "--request", "4"]) == 2
    assert "numbered 0 to 3" in capsys.readouterr().err
    assert main(["report", str(path), "--request", "1", "--whole-trace"]) == 2
    assert "exclude each other" in capsys.readouterr().err
