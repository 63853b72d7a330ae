"""A recommendation model served as requests (no LLM): a DLRM-style ranker written with torch.nn modules (random
fp32 weights): --tables EmbeddingBag tables (sum pooling) of --rows rows, a bottom MLP over --dense dense
features, the pairwise dot products of the pooled vectors (a batched matmul and a triangular gather) and a top MLP
ending in a sigmoid. Each request scores --batch candidates: the host draws the dense features and, per table, a
bag of 1 to --max-bag ids per candidate (so the number of looked-up ids changes from request to request), copies
them to the GPU (pageable copies), runs one forward pass and reads the scores back with `.cpu()`. Eager, no NVTX,
whole process captured. Truth: --warmup + --iters requests of one forward pass each.

    python3 scripts/workloads/recsys_requests.py --tables 8 --rows 200000 --dim 64 --batch 2048 --warmup 3 --iters 20
"""

import argparse
import time

import torch
from _common import result, setup, sync

p = argparse.ArgumentParser()
p.add_argument("--tables", type=int, default=8)
p.add_argument("--rows", type=int, default=200000)
p.add_argument("--dim", type=int, default=64)
p.add_argument("--dense", type=int, default=13)
p.add_argument("--max-bag", type=int, default=20)
p.add_argument("--batch", type=int, default=2048)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--iters", type=int, default=20)
a = p.parse_args()

dev = setup()


def mlp(sizes: list[int], last: torch.nn.Module | None = None) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        layers.append(torch.nn.ReLU() if i < len(sizes) - 2 else (last or torch.nn.Identity()))
    return torch.nn.Sequential(*layers)


class Ranker(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.ModuleList(torch.nn.EmbeddingBag(a.rows, a.dim, mode="sum") for _ in range(a.tables))
        self.bottom = mlp([a.dense, 512, 256, a.dim])
        f = a.tables + 1
        self.register_buffer("li", torch.triu_indices(f, f, offset=1)[0], persistent=False)
        self.register_buffer("lj", torch.triu_indices(f, f, offset=1)[1], persistent=False)
        self.top = mlp([a.dim + f * (f - 1) // 2, 512, 256, 1], torch.nn.Sigmoid())

    def forward(self, dense: torch.Tensor, ids: list[torch.Tensor], offsets: list[torch.Tensor]) -> torch.Tensor:
        x = self.bottom(dense)
        pooled = [e(i, o) for e, i, o in zip(self.emb, ids, offsets, strict=True)]
        t = torch.stack([x, *pooled], dim=1)
        z = torch.bmm(t, t.transpose(1, 2))[:, self.li, self.lj]
        return self.top(torch.cat([x, z], dim=1)).squeeze(1)


model = Ranker().to(dev).eval()
g = torch.Generator().manual_seed(0)
times, looked_up = [], []
with torch.inference_mode():
    for _ in range(a.warmup + a.iters):
        dense = torch.randn(a.batch, a.dense, generator=g)
        bags = [torch.randint(1, a.max_bag + 1, (a.batch,), generator=g) for _ in range(a.tables)]
        ids = [torch.randint(0, a.rows, (int(b.sum()),), generator=g) for b in bags]
        offsets = [torch.cat([torch.zeros(1, dtype=torch.long), b.cumsum(0)[:-1]]) for b in bags]
        looked_up.append(sum(int(b.sum()) for b in bags))
        sync()
        t0 = time.perf_counter()
        scores = model(dense.to(dev), [i.to(dev) for i in ids], [o.to(dev) for o in offsets]).cpu()
        times.append((time.perf_counter() - t0) * 1e3)
result(
    workload="recsys_requests",
    requests=a.warmup + a.iters,
    warmup_requests=a.warmup,
    passes_per_request=1,
    ids_per_request=looked_up,
    request_ms=[round(t, 3) for t in times],
    checksum=round(float(scores.sum()), 3),
)
