"""transformers `generate` with beam search: GPT-2 (random fp16 weights from a GPT2Config), 4 beams, batch 1.

Every request decodes exactly --new-tokens tokens (min_new_tokens = max_new_tokens): 1 prefill forward pass +
(new_tokens - 1) decode forward passes over the 4 beams, with the beams' reordering of the cache every step and
their final selection after the last one. After each request: torch.cuda.synchronize(), then a 50 ms pause
(time.sleep). --warmup warm-up requests, then --iters measured ones; no NVTX, whole process captured.

    python3 scripts/workloads/hf_beam_generate.py --layers 4 --prompt-len 48 --new-tokens 16 --warmup 1 --iters 2
"""

import argparse
import time

import torch
from _common import Timer, result, setup
from transformers import GPT2Config, GPT2LMHeadModel

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=4)
p.add_argument("--beams", type=int, default=4)
p.add_argument("--prompt-len", type=int, default=48)
p.add_argument("--new-tokens", type=int, default=16)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=2)
a = p.parse_args()

dev = setup()
model = GPT2LMHeadModel(GPT2Config(n_layer=a.layers, n_embd=768, n_head=12)).half().to(dev).eval()
prompt = torch.randint(0, 50000, (1, a.prompt_len), device=dev)
gen = dict(max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, num_beams=a.beams, do_sample=False)
times = []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        with Timer() as t:
            out = model.generate(prompt, attention_mask=torch.ones_like(prompt), pad_token_id=0, **gen)
        times.append(t.ms)
        print(f"request {i}: {t.ms:.1f} ms, {out.shape[1] - a.prompt_len} new tokens", flush=True)
        time.sleep(0.05)
meas = times[a.warmup :]
result(workload="hf_beam_generate", request_ms=times, ms_per_token_measured=sum(meas) / len(meas) / a.new_tokens)
