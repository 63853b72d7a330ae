"""Encoder inference: transformers BertModel (bert-base shape from a default BertConfig, random fp16 weights).

Batch 8 x seq 128, SDPA attention, eager PyTorch, whole process captured. Every iteration is one forward pass
wrapped in an NVTX range: warm-up iterations are named "warmup_N", measured ones "iteration_N"
(torch.cuda.nvtx.range_push/pop, default domain); each iteration ends with torch.cuda.synchronize() inside its range.

    python3 scripts/workloads/bert_encoder_nvtx.py --batch 8 --seq 128 --warmup 3 --iters 10
"""

import argparse

import torch
from _common import Timer, result, setup, sync
from transformers import BertConfig, BertModel

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=12)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--seq", type=int, default=128)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--iters", type=int, default=10)
a = p.parse_args()

dev = setup()
cfg = BertConfig(num_hidden_layers=a.layers)
with dev:
    model = BertModel(cfg, add_pooling_layer=True).to(torch.float16).eval()
ids = torch.randint(1000, cfg.vocab_size, (a.batch, a.seq), device=dev)
mask = torch.ones_like(ids)
nvtx = torch.cuda.nvtx

times = []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        name = f"warmup_{i}" if i < a.warmup else f"iteration_{i - a.warmup}"
        with Timer() as t:
            nvtx.range_push(name)
            out = model(input_ids=ids, attention_mask=mask)
            sync()
            nvtx.range_pop()
        times.append(t.ms)
        print(f"{name}: {t.ms:.2f} ms {tuple(out.last_hidden_state.shape)}", flush=True)
meas = times[a.warmup :]
result(workload="bert_encoder_nvtx", iter_ms=times, ms_per_iter_measured=sum(meas) / len(meas))
