"""A graph neural network served as requests (no LLM, no dense sequence): a 3-layer GraphSAGE-style model (mean
aggregation with `index_add_`, written with torch ops; random fp32 weights). Each request is a sampled subgraph of
its own size (--nodes +- 50%, --degree edges per node on average): the host draws the node features and the edge
list, copies them to the GPU, runs one forward pass (per layer: gather the source rows, sum them into their
destination rows, divide by the degree, two linear maps, ReLU; --aggregate spmm: the mean over neighbours as a
sparse CSR matrix product, cuSPARSE) and reads the predicted classes back with `.cpu()`.
Eager, no NVTX, whole process captured. Truth: --warmup + --iters requests of one forward pass each.

    python3 scripts/workloads/gnn_requests.py --nodes 50000 --degree 10 --hidden 256 --warmup 2 --iters 15
"""

import argparse
import time

import torch
from _common import result, setup, sync

p = argparse.ArgumentParser()
p.add_argument("--nodes", type=int, default=50000)
p.add_argument("--degree", type=int, default=10)
p.add_argument("--features", type=int, default=128)
p.add_argument("--hidden", type=int, default=256)
p.add_argument("--classes", type=int, default=16)
p.add_argument("--layers", type=int, default=3)
p.add_argument("--aggregate", choices=("index-add", "spmm"), default="index-add")
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=15)
a = p.parse_args()

dev = setup()


class Sage(torch.nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.self_map = torch.nn.Linear(n_in, n_out)
        self.neigh_map = torch.nn.Linear(n_in, n_out, bias=False)

    def forward(self, h: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, inv_deg: torch.Tensor) -> torch.Tensor:
        if a.aggregate == "spmm":  # the mean over neighbours as a sparse (CSR) matrix product: cuSPARSE
            n = h.shape[0]
            adj = torch.sparse_coo_tensor(torch.stack([dst, src]), inv_deg[dst, 0], (n, n)).to_sparse_csr()
            agg = torch.sparse.mm(adj, h)
        else:
            agg = torch.zeros_like(h).index_add_(0, dst, h.index_select(0, src)) * inv_deg
        return self.self_map(h) + self.neigh_map(agg)


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        sizes = [a.features] + [a.hidden] * (a.layers - 1) + [a.classes]
        self.layers = torch.nn.ModuleList(Sage(sizes[i], sizes[i + 1]) for i in range(a.layers))

    def forward(self, x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        deg = torch.zeros(x.shape[0], device=x.device).index_add_(0, dst, torch.ones_like(dst, dtype=torch.float))
        inv_deg = (1.0 / deg.clamp(min=1)).unsqueeze(1)
        for i, layer in enumerate(self.layers):
            x = layer(x, src, dst, inv_deg)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


model = Net().to(dev).eval()
g = torch.Generator().manual_seed(0)
times, sizes = [], []
with torch.inference_mode():
    for _ in range(a.warmup + a.iters):
        n = int(a.nodes * (0.5 + torch.rand(1, generator=g).item()))
        e = n * a.degree
        x = torch.randn(n, a.features, generator=g)
        src = torch.randint(0, n, (e,), generator=g)
        dst = torch.randint(0, n, (e,), generator=g)
        sizes.append([n, e])
        sync()
        t0 = time.perf_counter()
        pred = model(x.to(dev), src.to(dev), dst.to(dev)).argmax(1).cpu()
        times.append((time.perf_counter() - t0) * 1e3)
result(
    workload="gnn_requests",
    requests=a.warmup + a.iters,
    warmup_requests=a.warmup,
    passes_per_request=1,
    nodes_edges=sizes,
    request_ms=[round(t, 3) for t in times],
    checksum=int(pred.sum()),
)
