"""The structure of a run, found in the data: what kind of run it is, its phases, requests and steps.

``find_structure`` is computed once per trace and answers, with the evidence for each answer:

- the **run kind**: ``"llm-decode"`` (token-by-token generation: a prefill pass, then one forward pass per token),
  ``"llm-prefill"`` (prompt processing only, no decode), ``"iterations"`` (repeated forward passes that are not
  token-by-token decode: CNN, ViT, encoders, training steps) or ``"unstructured"`` (tests, HPC codes, no repeat);
- whether **a run of iterations trains** (``training``: autograd's backward kernels run in its passes, or, for
  XLA, its NVTX ranges of ops that JAX's reverse-mode differentiation made, ``transpose(jvp(...))``) and, with
  gradient accumulation, the **micro-batches per optimizer step** (``micro_batches``: the optimizer's kernels run in
  exactly one pass, with the kernels after it, of each measured request of k >= 2 passes; a request is then one
  optimizer step);
- the **phases**: loading (module loads, weight copies, random initialisation), compilation and autotuning (XLA's
  ``RedzoneAllocatorKernelImpl``/``DelayKernel``/comparison kernels), warm-up and measured requests;
- the **requests** and which are warm-up (left out of ``measured_*`` and of ``to_dict()["steps"]``): any request
  with lazy module loading, JIT compilation or autotuning inside; requests outside NVTX request ranges when such
  ranges line up; in a whole-run capture the first of identical requests, and the requests before the steady ones
  (those with the steps and per-step kernel counts of the last request, when at least two share them), a first
  request of fewer kernels than half a pass (the end of a setup's last pass), and in a run of iterations that is
  one request, leading passes that load modules, autotune or take over 3x a typical pass's host time; inside each
  request its **steps**: prefill and decode steps for an LLM, iterations (forward passes) otherwise.

Method. The core signal is the repeating structure of the kernel-name sequence (kernels of the main process in
launch order). A kernel that runs once per forward pass (LM head, argmax/sampling, embedding, a classifier head)
occurs exactly P times and regularly, one period apart; kernels of every layer occur L x P times with a period L
times shorter; a once-per-request kernel occurs R times. Every count shared by kernels whose occurrences are evenly
spaced is a candidate level (most distances one period, and those distances cover most of the span between the first
and the last occurrence; a token's sampler whose other distances, two or more, are all one distance too covers its
span: a prompt's pass run by other kernels than a token's, as a recurrent model loops its cells over the prompt,
between the runs of decode steps of its requests); levels with the same period are one cluster (P, P - R decode-only
and P + R names). The forward-pass level is the cluster the other signals agree with: host round trips (token reads:
stream, event and device syncs, synchronous and device-to-host copies, graph launches) about one to four per period
and far fewer per layer; sampling/argmax or embedding kernels among its names; a finer level (layers) inside;
autograd's backward kernels in most of its units, in a run with an optimizer (a training step); then the coarser of
equal candidates. A level whose units each end in a token's sampling (an argmax or a draw) wins over a coarser one
that groups them even when only the coarser has host round trips (tokens kept on the GPU, read back once per
request). A level whose unit is k >= 2 repeats of a finer level plus a few extra kernels is a group of passes (a
request), not a pass, when those extra kernels are at most 5% of one finer unit in kernels and in GPU time (an
argmax over a request's outputs once per 5 CNN passes); the finer level is then the pass. Layers never qualify: a
pass adds to them an embedding, a final norm, an LM head and sampling, a sizeable share of one layer (the LM head
alone, in GPU time). A repeating unit with none of layers, sampling kernels, graph launches or backward kernels is
not a forward pass (an HPC time step, a test looping over one kernel): such runs are ``unstructured``. When the
repeating unit has no sampling kernels but sampling/embedding kernels run a few times around many of its repeats (a
prefill-only run), those kernels mark the passes and the unit is a layer.
A repeating unit with autotuning kernels in most of its repeats is a loop over candidates (XLA's autotuner), not a
forward pass; a CNN's pass has at least 16 kernels. When the whole sequence repeats no forward pass, the kernels
after the run's setup are analysed alone: the setup ends at a module load, an autotuning kernel or the end of the
compiler ranges, tried from the ones followed by the longest stretches of kernels (JIT compilation and
autotuning, Triton's benchmarking of candidates inside a compiled model's first call, can hide the passes after
them); the setup's phases are kept.
A cluster is cut at the level of most occurrences whose units are at least 0.3 of a period; when that level's
units go below 0.6 of one (a kernel that runs a few more times in a continuous-batching prefill over several
prompts) and a level of fewer occurrences samples a token, at that one.
The once-per-pass names keep one order inside a pass; a pass boundary lies between the last of them in one pass
and the first in the next, at the largest host launch gap there (where the host waited for the token).
Each pass is measured (kernels, GPU time, names that run in few passes, share of graph-launched kernels). A pass
whose kernel mix differs (names rare elsewhere, or far heavier with such names, or eager among graphed passes)
leads a request as its prefill (also once a request's start moved to its sync: the kernels before its first pass
are then that pass's own), and so does a pass most of whose kernels are launched over more than 3x the
thread blocks their name usually gets (a prompt's rows, where a hand-written engine runs the same kernels for a
prompt and a token); an eager prefill without the once-per-pass kernels of compiled or graphed decode
steps (kernels with matrix products and sampling/embedding kernels before a pass's once-per-pass kernels, or just
before the first pass, at least half of them names a typical pass does not run: not a recurrent model's scan over
its prompt) becomes a pass of its own; identical passes that run GEMMs rather than GEMVs are prefill
passes of a prefill-only run, one request each; decode passes of one request share one kernel mix up to kernels
whose shape grows with the context. Passes that grow (an LLM decoding without a KV cache, each pass over the whole
sequence so far: in the median pair of passes that match kernel by kernel, 17% or more of the kernels launch over
more thread blocks than in the pass before, by a token's rows (at most 1.25 times as many blocks), and hardly any
over fewer, in a run that samples a token in most passes) are told apart by their width instead: a request starts
where the kernels shrink back (a new prompt), only its first pass is its prefill, and the kernel mix (cuBLAS picks
other GEMMs as the sequence grows) cuts nothing. Requests also split at idle gaps far longer than the gaps between
passes, at a kind of host sync that occurs between a few passes only (end of request; the next request then starts
at that sync), at cudaProfilerStart calls, at NVTX request ranges, and where a signal that is no boundary by itself
(a host-to-device input copy, a read back, a kind of sync, an idle gap a few times the typical one) recurs at a
fixed stride: at every k-th pass boundary and no other, at least twice, so that it divides the passes into equal
requests of k passes (a boundary where modules load counts when the stride holds with it). Passes that no signal
separates stay one request (back-to-back requests of an eager loop without a sync, a copy or a gap between them
cannot be told apart). Gaps and syncs do not split requests where modules load between the passes (compilation, lazy
loading) nor, when requests are led by prefill passes, before a decode pass.
The run is an LLM (decode or prefill) on sampling/embedding kernels once per pass, NVTX prefill/decode ranges or
requests led by a pass of their own mix, unless its kernel time is led by convolution with no attention kernel at
all (a CNN whose argmax or classifier looks like sampling), backward kernels run in its passes (training), or most
passes run a recurrent cell over a sequence with no attention kernel (a cycle of two to four kernels with a matrix
product in it, at least 16 times a pass in runs of at least 4, and sampling/embedding kernels at most 4 times a
pass: an LSTM or GRU over its input's time steps, where a decode step would read one token): then it is iterations.
When requests led by a pass of their own mix are the only sign, the passes after those leading ones must keep the
shape of their matrix products (kernels and thread blocks) from one to the next inside a request, as decode steps
do at a given batch (attention's grows with the context now and then): when it changes between more than half of
them, they are forward passes of changing shape (an encoder serving requests of changing length): iterations, whose
requests are cut again with no pass told apart by its mix. In a run of iterations, a host-to-device copy before
every pass and inside none makes each pass a request when the passes' matrix products change shape (a fresh input
of its own size for each); a loop over batches of one shape stays one request.
NVTX ranges count only where they line up with this structure (one pass per range); library ranges (domains such
as XLA's ``TSL``, ``NCCL``, ``CCCL``), per-op annotations (DLProf dictionaries, ``aten::`` ops) never do; nested
levels are used one level at a time, per-layer ranges are never steps, and numbered names (``layer_3_token_7``)
are grouped as ``layer_N_token_N``. When the kernel sequence has no usable period, NVTX step ranges that are not
library ranges, then graph launches, give the steps, and the analysis window of such a run starts after model loading
and after first-call compilation (GPU idle gaps holding module loads among its first kernels, when the kernels
compiled there run again later: ``phases.choose_window``). ``memset`` is accepted for a uniform signature.

All work is columnar: numpy over the kernel sequence, Python loops only over distinct names, candidate levels and
passes. The result is deterministic.

Time base. ``Step.start``/``Step.end`` and ``Request.start``/``Request.end`` are host times in trace nanoseconds:
a step starts at the launch call (CUDA API start) of its first kernel and ends just before the next step of its
request starts (so the host round trip after a token belongs to the step that produced the token); the last step
of a request ends at the end of the launch call of its last kernel. A kernel belongs to the step whose
``[start, end]`` holds its launch time (kernels are joined to their launch calls by correlationId and pid, as
``phases.launched_kernels`` does; kernels without a launch call use their GPU start). ``gpu_start``/``gpu_end``
give the GPU execution span of the same kernels.

API::

    find_structure(kernels, api, memcpy=None, memset=None, nvtx=None, capture_range=None, ops=None,
                   graph_launches=None) -> RunStructure
    structure_of(frames, capture_range=None, ops=None) -> RunStructure  # frames: a TraceFrames

    RunStructure(kind, source, confidence, steps: tuple[Step], requests: tuple[Request], phases: tuple[Phase],
                 evidence: tuple[Evidence], notes: tuple[str], period: int | None, marker: str | None,
                 pid: int | None, draft_passes: int | None, draft_share: float | None, training: bool,
                 micro_batches: int | None)
      # draft_passes: speculative decoding's drafts before each verify pass (a step is one round); draft_share:
      # their share of a round (the median round, from its first kernel's start to its last one's end on the GPU)
      # training: backward kernels run in the steps; micro_batches: gradient accumulation's steps per optimizer step
      .words() -> (request word, iteration-step word): ("request", "iteration step"), ("request", "training
                  step"), or ("optimizer step", "micro-batch") with gradient accumulation
      .measured_requests / .warmup_requests  (tuples of Request)
      .measured_steps  (steps of measured requests)
      .count(kind, measured=True) -> int
      .window -> (start, end) of the measured requests, or None
      .steps_frame(measured=True) -> pl.DataFrame (idx, kind, start, end, gpu_start, gpu_end, kernels, gpu_time,
                                                   request)
      .to_dict() -> dict for JSON: kind, source, confidence, requests, warmup_requests, measured_requests,
                    iterations, steps {prefill, decode, iteration}, steps_all, period_kernels, marker, draft_passes,
                    draft_share, training, micro_batches, time_base,
                    request_list, phases, evidence, notes
    Step(index, request, kind, start, end, gpu_start, gpu_end, kernels, gpu_time)   # kind: prefill|decode|iteration
    Request(index, start, end, gpu_start, gpu_end, warmup, reason, prefill_steps, decode_steps, iterations)
    Phase(kind, start, end, detail)   # kind: loading | compilation | autotuning | warm-up | measured
    Evidence(fact, source, confidence, detail)   # confidence: high | medium | low

Modules: ``result`` (``RunStructure``), ``patterns``, ``sequence``, ``signals``, ``passes``, ``nvtx``, and the
builder: ``state``, ``pass_finding``, ``requests``, ``builder`` (``find_structure``, ``structure_of``).
"""

from .builder import find_structure, structure_of
from .result import STEP_KINDS, RunStructure

__all__ = [
    "STEP_KINDS",
    "RunStructure",
    "find_structure",
    "structure_of",
]
