"""transformers `generate` with a small dense Llama decoder (random bf16 weights from a LlamaConfig).

Greedy decoding, batch 1, dynamic KV cache (transformers' default), eager PyTorch, no NVTX, no capture range:
the whole process is meant to be captured (model construction on the GPU, 1 warm-up request, then the
measured requests). EOS is disabled so every request produces exactly --new-tokens tokens:
1 prefill forward pass + (new_tokens - 1) decode forward passes per request. With --no-cache 1 there is no KV
cache (``use_cache=False``): every decode pass runs the model over the whole sequence so far. ``--cache offloaded``
passes ``cache_implementation="offloaded"`` (the KV cache kept on the host, each layer's copied to the GPU and back
in every pass); ``--host-prompt 1`` copies the prompt's ids from the host at each request.

    python3 scripts/workloads/hf_llama_generate.py --layers 2 --prompt-len 48 --new-tokens 20 --warmup 1 --iters 2
"""

import argparse

import torch
from _common import Timer, random_causal_lm, result, setup
from transformers import LlamaConfig

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=2)
p.add_argument("--hidden", type=int, default=1024)
p.add_argument("--intermediate", type=int, default=2816)
p.add_argument("--heads", type=int, default=16)
p.add_argument("--kv-heads", type=int, default=4)
p.add_argument("--vocab", type=int, default=32000)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--prompt-len", type=int, default=48)
p.add_argument("--new-tokens", type=int, default=20)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=2)
p.add_argument("--no-cache", type=int, default=0)
p.add_argument("--cache", default="", help="a cache_implementation of generate (e.g. offloaded: KV on the host)")
p.add_argument("--host-prompt", type=int, default=0, help="1: each request's prompt ids are copied from the host")
a = p.parse_args()

dev = setup()
model = random_causal_lm(
    LlamaConfig,
    dev,
    a,
)
gen = dict(max_new_tokens=a.new_tokens, min_new_tokens=None, do_sample=False, eos_token_id=None, pad_token_id=0)
if a.no_cache:
    gen["use_cache"] = False
if a.cache:
    gen["cache_implementation"] = a.cache
host_prompt = torch.randint(3, a.vocab, (a.batch, a.prompt_len))
prompt = host_prompt.to(dev)
mask = torch.ones_like(prompt)

times = []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        with Timer() as t:
            if a.host_prompt:
                prompt = host_prompt.to(dev)
            out = model.generate(input_ids=prompt, attention_mask=mask, **gen)
        assert out.shape[1] == a.prompt_len + a.new_tokens, out.shape
        times.append(t.ms)
        print(
            f"request {i} ({'warmup' if i < a.warmup else 'measured'}): {t.ms:.1f} ms, "
            f"{out.shape[1] - a.prompt_len} new tokens",
            flush=True,
        )
meas = times[a.warmup :]
result(
    workload="hf_llama_generate",
    no_cache=a.no_cache,
    cache=a.cache or "dynamic",
    request_ms=times,
    ms_per_token_measured=sum(meas) / len(meas) / a.new_tokens,
)
