"""A two-tower retrieval model served as requests (no LLM): a user tower (the user's id and the mean of their
--history last items' embeddings, `nn.EmbeddingBag(mode="mean")`, then an MLP) and an item tower (each candidate's
id and category embeddings, then an MLP), written with torch.nn modules (random fp32 weights). Each request scores
--candidates items for one user: the host draws the user's history and the candidate ids (small: --candidates x 2
int64 ids), copies them to the GPU, runs both towers, takes the dot products and reads the top --top items back
(`torch.topk(...).indices.cpu()`). Eager, no NVTX, whole process captured. Truth: --warmup + --iters requests of
one pass each.

    python3 scripts/workloads/two_tower_requests.py --candidates 2048 --history 50 --top 100 --warmup 2 --iters 20
"""

import argparse
import time

import torch
from _common import result, setup, sync

p = argparse.ArgumentParser()
p.add_argument("--users", type=int, default=100000)
p.add_argument("--items", type=int, default=500000)
p.add_argument("--categories", type=int, default=1000)
p.add_argument("--dim", type=int, default=128)
p.add_argument("--candidates", type=int, default=2048)
p.add_argument("--history", type=int, default=50)
p.add_argument("--top", type=int, default=100)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=20)
a = p.parse_args()

dev = setup()


def mlp(n_in: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(n_in, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, a.dim),
    )  # fmt: skip


class TwoTower(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.user = torch.nn.Embedding(a.users, a.dim)
        self.history = torch.nn.EmbeddingBag(a.items, a.dim, mode="mean")
        self.item = torch.nn.Embedding(a.items, a.dim)
        self.category = torch.nn.Embedding(a.categories, a.dim)
        self.user_mlp = mlp(2 * a.dim)
        self.item_mlp = mlp(2 * a.dim)

    def forward(
        self, user: torch.Tensor, history: torch.Tensor, items: torch.Tensor, cats: torch.Tensor
    ) -> torch.Tensor:
        u = self.user_mlp(torch.cat([self.user(user), self.history(history[None])], dim=1))
        v = self.item_mlp(torch.cat([self.item(items), self.category(cats)], dim=1))
        return torch.topk((v @ u[0]), a.top).indices


model = TwoTower().to(dev).eval()
g = torch.Generator().manual_seed(0)
times = []
with torch.inference_mode():
    for _ in range(a.warmup + a.iters):
        user = torch.randint(0, a.users, (1,), generator=g)
        history = torch.randint(0, a.items, (a.history,), generator=g)
        items = torch.randint(0, a.items, (a.candidates,), generator=g)
        cats = torch.randint(0, a.categories, (a.candidates,), generator=g)
        sync()
        t0 = time.perf_counter()
        top = model(user.to(dev), history.to(dev), items.to(dev), cats.to(dev)).cpu()
        times.append((time.perf_counter() - t0) * 1e3)
result(
    workload="two_tower_requests",
    requests=a.warmup + a.iters,
    warmup_requests=a.warmup,
    passes_per_request=1,
    input_bytes_per_request=8 * (1 + a.history + 2 * a.candidates),
    request_ms=[round(t, 3) for t in times],
    checksum=int(top.sum()),
)
