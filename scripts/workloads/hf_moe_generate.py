"""transformers `generate` with a small MoE decoder (Qwen2-MoE: routed experts + shared expert, random bf16 weights).

Batch 4, sampling (do_sample=True, top_k, temperature), dynamic KV cache, eager PyTorch. --warmup requests run
first (not captured); the measured requests run between torch.cuda.profiler start/stop (cudaProfilerStart/Stop),
so `nsys profile -c cudaProfilerApi` captures only them. EOS is disabled: each request is
1 prefill forward pass + (new_tokens - 1) decode forward passes.

    python3 scripts/workloads/hf_moe_generate.py --warmup 2 --iters 2 --batch 4 --prompt-len 32 --new-tokens 12
"""

import argparse

import torch
from _common import Timer, profiler_start, profiler_stop, random_causal_lm, result, setup
from transformers import Qwen2MoeConfig

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=2)
p.add_argument("--hidden", type=int, default=768)
p.add_argument("--experts", type=int, default=8)
p.add_argument("--topk-experts", type=int, default=2)
p.add_argument("--moe-intermediate", type=int, default=512)
p.add_argument("--shared-intermediate", type=int, default=1536)
p.add_argument("--vocab", type=int, default=32000)
p.add_argument("--batch", type=int, default=4)
p.add_argument("--prompt-len", type=int, default=32)
p.add_argument("--new-tokens", type=int, default=12)
p.add_argument("--top-k", type=int, default=50)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=2)
a = p.parse_args()

dev = setup()
model = random_causal_lm(
    Qwen2MoeConfig,
    dev,
    a,
    num_attention_heads=12,
    num_key_value_heads=4,
    num_experts=a.experts,
    num_experts_per_tok=a.topk_experts,
    moe_intermediate_size=a.moe_intermediate,
    shared_expert_intermediate_size=a.shared_intermediate,
    intermediate_size=a.shared_intermediate,
    decoder_sparse_step=1,
    mlp_only_layers=[],
)
print("experts implementation:", getattr(model.config, "_experts_implementation", None), flush=True)
gen = dict(
    max_new_tokens=a.new_tokens,
    do_sample=True,
    top_k=a.top_k,
    temperature=0.8,
    top_p=None,
    eos_token_id=None,
    pad_token_id=0,
)
prompt = torch.randint(3, a.vocab, (a.batch, a.prompt_len), device=dev)
mask = torch.ones_like(prompt)

times = []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        if i == a.warmup:
            profiler_start()
        with Timer() as t:
            out = model.generate(input_ids=prompt, attention_mask=mask, **gen)
        assert out.shape[1] == a.prompt_len + a.new_tokens, out.shape
        times.append(t.ms)
        print(f"request {i} ({'warmup' if i < a.warmup else 'measured'}): {t.ms:.1f} ms", flush=True)
meas = times[a.warmup :]
result(workload="hf_moe_generate", request_ms=times, ms_per_token_measured=sum(meas) / len(meas) / a.new_tokens)
profiler_stop()  # under `nsys -c cudaProfilerApi` the process is ended here
