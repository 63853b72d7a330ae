"""A text classifier served as requests (no LLM): transformers' `BertForSequenceClassification` built from a config
(random bf16 weights, --layers, --labels classes). Each request classifies --batch texts of --seq token ids drawn on
the host: the ids and attention mask are copied to the GPU, one forward pass runs, and the predicted labels are read
back (`logits.argmax(-1).cpu()`). Eager, no NVTX, whole process captured. Truth: --warmup + --iters requests of one
forward pass each, all of one shape.

    python3 scripts/workloads/bert_classify_requests.py --layers 6 --batch 32 --seq 128 --warmup 2 --iters 15
"""

import argparse
import time

import torch
from _common import result, setup, sync
from transformers import BertConfig, BertForSequenceClassification

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=6)
p.add_argument("--hidden", type=int, default=768)
p.add_argument("--labels", type=int, default=4)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--seq", type=int, default=128)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=15)
a = p.parse_args()

dev = setup()
cfg = BertConfig(hidden_size=a.hidden, num_hidden_layers=a.layers, num_attention_heads=a.hidden // 64,
                 intermediate_size=4 * a.hidden, vocab_size=30522, num_labels=a.labels)  # fmt: skip
with dev:
    model = BertForSequenceClassification(cfg).to(torch.bfloat16).eval()
g = torch.Generator().manual_seed(0)
times = []
with torch.inference_mode():
    for _ in range(a.warmup + a.iters):
        ids = torch.randint(0, 30522, (a.batch, a.seq), generator=g)
        mask = torch.ones_like(ids)
        sync()
        t0 = time.perf_counter()
        labels = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits.argmax(-1).cpu()
        times.append((time.perf_counter() - t0) * 1e3)
result(
    workload="bert_classify_requests",
    requests=a.warmup + a.iters,
    warmup_requests=a.warmup,
    passes_per_request=1,
    request_ms=[round(t, 3) for t in times],
    checksum=int(labels.sum()),
)
