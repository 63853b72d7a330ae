"""transformers `generate` with a static KV cache, which makes transformers compile the decode forward itself.

A small Mistral decoder (random bf16 weights from a MistralConfig), greedy, batch 1, cache_implementation="static".
On CUDA, generate() then auto-compiles the model's forward for the decode steps with its default CompileConfig
(torch.compile mode "reduce-overhead", fullgraph False): the prefill forward runs eagerly, the decode forwards run
as CUDA graphs (cudagraph trees: first decode calls warm up and record, then one cudaGraphLaunch per token);
generate's own per-token work (logits processing, stopping criteria, token append) stays eager.
No NVTX, no capture range (whole process: construction, compilation, warm-up requests, measured requests).
EOS is disabled: each request is 1 prefill + (new_tokens - 1) decode forward passes.

    python3 scripts/workloads/hf_static_compile_generate.py --layers 2 --prompt-len 40 --new-tokens 20 \
        --warmup 2 --iters 2
"""

import argparse

import torch
from _common import Timer, random_causal_lm, result, setup
from transformers import MistralConfig

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=2)
p.add_argument("--hidden", type=int, default=1024)
p.add_argument("--intermediate", type=int, default=3584)
p.add_argument("--vocab", type=int, default=32000)
p.add_argument("--prompt-len", type=int, default=40)
p.add_argument("--new-tokens", type=int, default=20)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=2)
a = p.parse_args()

dev = setup()
model = random_causal_lm(
    MistralConfig,
    dev,
    a,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=64,
    sliding_window=None,
)
gen = dict(
    max_new_tokens=a.new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0, cache_implementation="static"
)
prompt = torch.randint(3, a.vocab, (1, a.prompt_len), device=dev)
mask = torch.ones_like(prompt)

times = []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        with Timer() as t:
            out = model.generate(input_ids=prompt, attention_mask=mask, **gen)
        assert out.shape[1] == a.prompt_len + a.new_tokens, out.shape
        times.append(t.ms)
        print(
            f"request {i} ({'warmup' if i < a.warmup else 'measured'}): {t.ms:.1f} ms, tokens {out[0, -4:].tolist()}",
            flush=True,
        )
try:
    from torch._dynamo.utils import counters

    cnt = {k: dict(v) for k, v in counters.items() if k in ("inductor", "stats", "recompiles")}
except Exception:
    cnt = {}
meas = times[a.warmup :]
result(
    workload="hf_static_compile_generate",
    request_ms=times,
    ms_per_token_measured=sum(meas) / len(meas) / a.new_tokens,
    counters=cnt,
)
