"""Prefill-only: forward passes of a small Qwen3 decoder (random bf16 weights) over a whole prompt, no decode.

Batch 2 x 512 tokens, use_cache=False, eager PyTorch (SDPA attention). After each pass the host reads the
next token of each row (argmax of the last position, `.tolist()`: one device-to-host copy + sync).
--warmup passes first, then --iters measured passes; no NVTX, no capture range (whole process).

    python3 scripts/workloads/hf_prefill.py --layers 8 --batch 2 --prompt-len 512 --warmup 1 --iters 5
"""

import argparse

import torch
from _common import Timer, random_causal_lm, result, setup
from transformers import Qwen3Config

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=8)
p.add_argument("--hidden", type=int, default=1024)
p.add_argument("--intermediate", type=int, default=3072)
p.add_argument("--vocab", type=int, default=32000)
p.add_argument("--batch", type=int, default=2)
p.add_argument("--prompt-len", type=int, default=512)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=5)
a = p.parse_args()

dev = setup()
model = random_causal_lm(
    Qwen3Config,
    dev,
    a,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=64,
    eos_token_id=2,
)
prompt = torch.randint(3, a.vocab, (a.batch, a.prompt_len), device=dev)

times = []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        with Timer() as t:
            logits = model(input_ids=prompt, use_cache=False).logits
            nxt = logits[:, -1].argmax(-1).tolist()
        times.append(t.ms)
        print(f"pass {i} ({'warmup' if i < a.warmup else 'measured'}): {t.ms:.2f} ms next={nxt}", flush=True)
meas = times[a.warmup :]
result(workload="hf_prefill", pass_ms=times, ms_per_pass_measured=sum(meas) / len(meas))
