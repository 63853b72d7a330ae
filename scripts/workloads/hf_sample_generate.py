"""transformers `generate` with sampling on a small dense decoder (Qwen2, random bf16 weights from a Qwen2Config).

Batch 3, do_sample=True with top_k=50 and top_p=0.9 (the sampler's top-k and sort run once per forward pass),
dynamic KV cache (transformers' default), eager PyTorch, no NVTX, no capture range: the whole process is meant
to be captured (model construction on the GPU, --warmup warm-up requests, then the measured requests). EOS is
disabled so every request produces exactly --new-tokens tokens: 1 prefill forward pass + (new_tokens - 1)
decode forward passes per request.

    python3 scripts/workloads/hf_sample_generate.py --layers 2 --batch 3 --prompt-len 40 --new-tokens 16 \
        --top-k 50 --top-p 0.9 --warmup 1 --iters 2
"""

import argparse

import torch
from _common import generate_requests, random_causal_lm, result, setup
from transformers import Qwen2Config

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=2)
p.add_argument("--hidden", type=int, default=896)
p.add_argument("--intermediate", type=int, default=4864)
p.add_argument("--heads", type=int, default=14)
p.add_argument("--kv-heads", type=int, default=2)
p.add_argument("--vocab", type=int, default=32000)
p.add_argument("--batch", type=int, default=3)
p.add_argument("--prompt-len", type=int, default=40)
p.add_argument("--new-tokens", type=int, default=16)
p.add_argument("--no-cache", type=int, default=0, help="use_cache=False: every pass over all tokens so far")
p.add_argument("--top-k", type=int, default=50)
p.add_argument("--top-p", type=float, default=0.9)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=2)
a = p.parse_args()

dev = setup()
model = random_causal_lm(
    Qwen2Config,
    dev,
    a,
    tie_word_embeddings=True,
)
gen = dict(
    max_new_tokens=a.new_tokens,
    min_new_tokens=None,
    do_sample=True,
    top_k=a.top_k,
    top_p=a.top_p,
    temperature=1.0,
    eos_token_id=None,
    pad_token_id=0,
)
if a.no_cache:
    gen["use_cache"] = False
prompt = torch.randint(3, a.vocab, (a.batch, a.prompt_len), device=dev)
mask = torch.ones_like(prompt)

times = generate_requests(model, prompt, mask, gen, a.warmup, a.iters)
meas = times[a.warmup :]
result(
    workload="hf_sample_generate",
    model=type(model).__name__,
    request_ms=times,
    ms_per_token_measured=sum(meas) / len(meas) / a.new_tokens,
)
