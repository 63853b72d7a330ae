"""transformers' continuous batching (`generate_batch`): many prompts of different lengths served together.

A small Llama (LlamaConfig with --layers layers, hidden 1024, 16 heads, 4 KV heads, MLP 2816, vocab 32000, random
bf16 weights, attention --attn, "paged|sdpa" by default, else "paged|eager"). Each "batch job" is one
`model.generate_batch` call over --prompts prompts of lengths spread between --min-len and --max-len
(deterministic), each asking for exactly --new-tokens tokens (no EOS); the scheduler mixes the prompts' prefill
chunks and the running requests' decode tokens in each forward pass, as serving engines do. --warmup jobs then
--iters measured ones, each followed by torch.cuda.synchronize() and a 50 ms sleep; whole process captured, no NVTX.
The model's forward passes are counted on the CPU with a forward pre-hook that records the number of tokens of each
pass (the truth of the steps).

    python3 scripts/workloads/hf_continuous_batching.py --layers 2 --prompts 8 --new-tokens 16 --warmup 1 --iters 2
"""

import argparse
import time

import torch
from _common import Timer, llama_size_options, random_causal_lm, result, setup
from transformers import LlamaConfig
from transformers.generation import GenerationConfig

p = argparse.ArgumentParser()
llama_size_options(p)
p.add_argument("--prompts", type=int, default=8)
p.add_argument("--min-len", type=int, default=16)
p.add_argument("--max-len", type=int, default=96)
p.add_argument("--new-tokens", type=int, default=16)
p.add_argument("--attn", default="paged|sdpa")
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=2)
a = p.parse_args()

dev = setup()
try:
    model = random_causal_lm(LlamaConfig, dev, a, attn_implementation=a.attn)
except ValueError as exc:  # an attention this transformers does not have: its paged eager attention
    print(f"attention {a.attn!r} refused ({str(exc)[:200]}); using 'paged|eager'", flush=True)
    model = random_causal_lm(LlamaConfig, dev, a, attn_implementation="paged|eager")
passes: list[int] = []


def hook(module, args, kwargs):
    ids = kwargs.get("input_ids", args[0] if args else None)
    passes.append(int(ids.numel()) if ids is not None else -1)


model.register_forward_pre_hook(hook, with_kwargs=True)
g = torch.Generator().manual_seed(0)
span = max(a.max_len - a.min_len, 1)
lengths = [a.min_len + (i * 37) % span for i in range(a.prompts)]
prompts = [torch.randint(3, a.vocab, (n,), generator=g).tolist() for n in lengths]
config = GenerationConfig(max_new_tokens=a.new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)

times, jobs = [], []
with torch.no_grad():  # not inference_mode: the batching manager's thread updates tensors made here
    for i in range(a.warmup + a.iters):
        passes.clear()
        with Timer() as t:
            out = model.generate_batch(inputs=prompts, generation_config=config, progress_bar=False)
        times.append(t.ms)
        generated = sorted(len(getattr(v, "generated_tokens", []) or []) for v in out.values())
        jobs.append(dict(forward_passes=len(passes), tokens_per_pass=list(passes), generated=generated))
        print(
            f"job {i} ({'warmup' if i < a.warmup else 'measured'}): {t.ms:.1f} ms, {len(out)} outputs, "
            f"{len(passes)} forward passes, tokens per pass {passes}, generated per prompt {generated}",
            flush=True,
        )
        time.sleep(0.05)
meas = times[a.warmup :]
result(
    workload="hf_continuous_batching",
    prompts=a.prompts,
    prompt_lengths=lengths,
    new_tokens=a.new_tokens,
    warmup=a.warmup,
    iters=a.iters,
    job_ms=times,
    ms_per_job_measured=sum(meas) / len(meas),
    jobs=jobs,
)
