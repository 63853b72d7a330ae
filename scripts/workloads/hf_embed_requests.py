"""An embedding service: a BERT encoder (transformers `BertModel`, random bf16 weights) answers requests of
--batch texts whose length changes from request to request (the --seq-lens list cycles): each request copies its
token ids to the GPU, runs one forward pass, mean-pools the last hidden state and reads the embeddings back with
`.cpu()`. Eager, no NVTX, whole process captured. Truth: --warmup + --iters requests of one forward pass each, with
a different sequence length (so different kernel shapes) from one request to the next.

    python3 scripts/workloads/hf_embed_requests.py --layers 6 --batch 4 --seq-lens 37,128,64,200,15,96,150,48
"""

import argparse

import torch
from _common import Timer, result, setup
from transformers import BertConfig, BertModel

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=6)
p.add_argument("--hidden", type=int, default=768)
p.add_argument("--batch", type=int, default=4)
p.add_argument("--seq-lens", default="37,128,64,200,15,96,150,48")
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=6)
a = p.parse_args()
lens = [int(x) for x in a.seq_lens.split(",")]

dev = setup()
cfg = BertConfig(hidden_size=a.hidden, num_hidden_layers=a.layers, num_attention_heads=a.hidden // 64,
                 intermediate_size=4 * a.hidden, vocab_size=30522)  # fmt: skip
with dev:
    model = BertModel(cfg).to(torch.bfloat16).eval()
times, plan = [], []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        n = lens[i % len(lens)]
        ids_cpu = torch.randint(1000, 30000, (a.batch, n))
        with Timer() as t:
            ids = ids_cpu.to(dev)
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            emb = hidden.float().mean(dim=1).cpu()
        times.append(t.ms)
        plan.append({"seq_len": n, "warmup": i < a.warmup})
        phase = "warmup" if i < a.warmup else "measured"
        print(f"request {i} ({phase}): seq {n}, {t.ms:.2f} ms {tuple(emb.shape)}", flush=True)
result(workload="hf_embed_requests", requests=plan, request_ms=times)
