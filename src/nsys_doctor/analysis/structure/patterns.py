"""Names and tolerances: the kernel, API and NVTX name patterns and the thresholds the detection uses."""

from __future__ import annotations

import re

from ..phases import NOT_ANNOTATION, SYNC_NAMES

# calls where the host waits for the GPU: the syncs (phases.SYNC_NAMES), stream queries and synchronous copies
HOST_WAIT_API = re.compile(
    rf"^({SYNC_NAMES}|cudaStreamQuery|cudaMemcpy(_v\d+)?$|cuMemcpyDtoH(_v\d+)?$|cuMemcpy(_v\d+)?$)"
)
LOAD_ONLY_API = re.compile(r"^(cuModuleLoad|cuLibraryLoad|cudaLibraryLoad|cuLinkComplete)")  # lazy loading, JIT
PROFILER_STOP_API = re.compile(r"^(cuProfilerStop|cudaProfilerStop)")
AUTOTUNE_KERNELS = re.compile(r"RedzoneAllocatorKernel|DelayKernel|xla_fp_comparison|(?i:autotun)")
INIT_KERNELS = re.compile(
    r"(?i)(init_?weights?|fill_kernel|distribution_elementwise|distribution_nullary|curand|philox|"
    r"normal_kernel|uniform_kernel|randperm)"
)
TOKEN_ANCHORS = re.compile(r"(?i)(argmax|arg_max|ArgMaxOps|top_?k|top_?p|sampl|multinomial|embedding|lm_?head|logits)")
ANCHOR_FAMILIES = frozenset({"sampling", "embedding"})
PASS_END = re.compile(r"(?i)(argmax|arg_max|ArgMaxOps|multinomial)")  # a token's sampling: the end of a forward pass
UP_DOWN_SAMPLING = re.compile(r"(?i)(up|down|re)_?sampl")  # image resizing, not sampling from logits
SOFTMAX = re.compile(r"(?i)soft_?max")
PREFILL_NAMES = re.compile(r"(?i)(prefill|prompt|context|extend|encode)")
DECODE_NAMES = re.compile(r"(?i)(decode|token|generat|step)")
STEP_NAMES = re.compile(r"(?i)" + NOT_ANNOTATION + r"(decode|prefill|step|forward|fwd|token|extend|iter|batch)")
"""A step's name (phases.NOT_ANNOTATION: per-op markers such as DLProf's are never steps)."""
REQUEST_NAMES = re.compile(
    r"(?i)^(iter|iteration|request|req|generate|generation|inference|e2e|serve|run|sample)(_N)?$"
)
MIN_SEGMENTS = 3  # a level must repeat at least this often
# a unit shorter than this share of the period is a piece of a pass, not a pass: a continuous-batching prefill over 8
# prompts runs a once-per-pass kernel 3 more times, 0.49 of a period apart; T5's encoder pass is 0.72 of one
FRAGMENT_RATIO = 0.6
REGULAR_TOL = 0.1  # occurrences one period (within 10%) apart are regular
MAX_ROUND_TRIPS_PER_PASS = 4.0
GAP_FACTOR = 8.0  # an idle gap this many times the typical gap between steps separates requests
MIN_REQUEST_GAP_NS = 2_000_000
REQUEST_GAP_SPAN_SHARE = 0.5  # and at least this share of a typical pass's GPU span
ONE_PASS_TAIL_SHARE = 0.1  # kernels after a run's only pass, at least this share of all, belong to it
WIDE_FACTOR = 3.0  # a kernel launched over this many times its name's usual thread blocks (a prompt's rows)
# LLM decode without a KV cache: each pass runs the model over the whole sequence so far, so pass after pass most of
# its kernels (elementwise, norms, GEMMs over the sequence's rows) launch over more thread blocks than the same
# kernel of the pass before; with a cache only the cache's own copies and attention grow (0-6% of a pass's kernels
# on 53 cached runs, 10% on a tensor-parallel one; 28-57% on 5 runs without a cache: less where a sampler's or an
# encoder's cross-attention kernels keep their size). Counted on pairs of passes whose kernels mostly match by position.
GROWING_SHARE = 0.17  # the median share of a pass's kernels grown since the pass before, for passes that grow
GROWING_MATCH = 0.8  # a pair of passes is compared when this share of their kernels match by name and position
GROWING_PAIRS = 4  # pairs of passes compared, at least
# the grown kernels' thread blocks over those of the pass before, at most (the median pass): a token's rows
GROWING_STEP = 1.25
GROWING_SAMPLE = 512  # pairs of passes the growth is decided on, spread over the run, at most
RESET_SHARE = 0.25  # in passes that grow, a pass with this share of its kernels shrunk starts a request (the prompt)
RESET_MATCH = 0.5  # ... when this share of its kernels match the pass before (cuBLAS picks other GEMMs by size)
HEAVY_FACTOR = 3.0  # a leading pass this many times heavier (GPU time) than the steady ones is a prefill pass
STRIDE_MIN_CUTS = 2  # a signal at a regular stride splits requests when it recurs at least this often
STRIDE_GAP_FACTOR = 3.0  # an idle gap this many times the typical one counts as a signal that may recur
MIN_STRIDE_GAP_NS = 50_000
GROUP_EXTRA_SHARE = 0.05  # a level is a group of passes when its extra kernels are at most this share of one pass
CONV_FAMILIES = frozenset({"conv", "convolution"})
PART_NAMES = re.compile(r"(?i)layer|block")  # ranges around a part of a pass ("transformer block forward") are no steps
BACKWARD_KERNELS = re.compile(r"(?i)backward")  # autograd's gradient kernels: never in inference
# JAX names the ops its reverse-mode differentiation makes transpose(jvp(...)) in their name stack, which XLA's
# NVTX ranges of the ops carry (``Thunk:#name=jit(train_step)/transpose(jvp())/...``): a backward pass
XLA_BACKWARD = "transpose(jvp("
# an optimizer's update: PyTorch's foreach/fused optimizers (multi_tensor_apply_kernel), fused Adam/SGD kernels of
# Apex, DeepSpeed and others ("lambda" must not match, nor an "adam" inside a longer word)
OPTIMIZER_KERNELS = re.compile(
    r"multi_tensor_apply|(?i:(?<![a-z])(?:fused_?)?adam(?:w)?(?![a-z])|fused_?sgd|optimi[sz]er)"
)
CNN_UNIT_KERNELS = 16  # a smaller repeating unit is no CNN pass (ResNet-18: 165 eager, 41 compiled; an XLA CNN: 25)
SLOW_WARMUP_FACTOR = 3  # leading passes this many times slower on the host than the typical one are warm-up
# a pass's long head is a pass of its own when at least this share of its kernels are names a typical pass does not
# run (an eager prefill before compiled decode: 0.66; Whisper's encoder: 0.79); a Mamba prefill's scan over its
# prompt, before its first once-per-pass kernel, runs the decode pass's own kernels (0.28 of others)
HEAD_OWN_SHARE = 0.5
FRAGMENT_SHARE = 0.5  # a first request of fewer kernels than this share of a pass is a fragment, not a request
SETUP_TAIL_KERNELS = 50  # kernels after a run's setup (compilation, autotuning) worth analysing alone
SETUP_TAIL_TRIES = 4  # setup signals (the last before the longest stretches of kernels) tried as the setup's end
CNN_CONV_SHARE = 0.1  # convolutions' least share of a CNN pass's GPU time (Faster R-CNN: 19%)
SPEC_MIN_ROUNDS = 4  # a speculative run verifies at least this often
SPEC_MAX_DRAFTS = 16  # a speculative round's draft passes (the median), at most: a decoder after an encoder runs more
ATTENTION_FAMILIES = frozenset({"attention", "attention-prefill", "attention-decode"})
MATRIX_FAMILIES = frozenset({"gemm", "gemv"})
# a recurrent cell over a sequence (cuDNN's LSTM and GRU: a GEMV or GEMM and elemWiseRNNcell per time step and
# layer, an input projection every 8 or 16 steps) is a cycle of at most RECURRENT_PERIOD kernels, at least
# RECURRENT_STEPS times a pass in runs of at least RECURRENT_RUN; a transformer layer runs more kernels than that
# (norms, projections, attention, MLP), a recurrent model's decode step one cell per layer
RECURRENT_PERIOD = 4
RECURRENT_STEPS = 16
RECURRENT_RUN = 4
RECURRENT_ANCHORS = 4  # sampling/embedding kernels a sequence's pass runs at most (an embedding gather, an argmax)
# a pass that starts by copying at least FRESH_INPUT_BYTES from the host takes a fresh input (a batch of features,
# a graph, an image): a decode step's input is the token sampled before it (none copied, or its ids: bytes to a few
# KiB at a large batch; 4-16 KiB a step under continuous batching), an LLM's prompt pass copies the prompt's ids
FRESH_INPUT_BYTES = 64 * 1024
FRESH_INPUT_SHARE = 0.75  # the least share of the passes that do
FRESH_INPUT_GEMM_SHARE = 0.9  # with attention: the least share of GEMM-led passes (a whole input's rows)
RNN_KERNELS = re.compile(r"(?i)(RNN|LSTM|GRU)")  # cuDNN's and PyTorch's recurrent cells (elemWiseRNNcell, ...)
MIN_ALIKE_PASSES = 8  # passes that all run alike, with no attention and no prompt's pass: a model's iterations
