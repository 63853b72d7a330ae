"""A recurrent sequence classifier served as requests: embedding, a multi-layer LSTM or GRU (cuDNN, --cell) and a
linear head.

Random weights (torch.nn modules, fp16 on the GPU). --warmup warm-up requests, then --iters measured requests; each
request makes a fresh batch of token ids on the host (--batch sequences of --seq tokens), copies it to the GPU at
its start (one pageable host-to-device copy), runs one forward pass and reads the predicted classes back at its
end (``logits.argmax(1).cpu()``: one device-to-host copy and sync). No NVTX, whole process captured. The truth:
--warmup + --iters requests of one forward pass each (an iterations run, no LLM).

    python3 scripts/workloads/rnn_requests.py --layers 2 --hidden 512 --batch 16 --seq 100 --warmup 2 --iters 8
"""

import argparse
import time

import torch
from _common import result, setup, sync

p = argparse.ArgumentParser()
p.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
p.add_argument("--layers", type=int, default=2)
p.add_argument("--hidden", type=int, default=512)
p.add_argument("--vocab", type=int, default=20000)
p.add_argument("--classes", type=int, default=10)
p.add_argument("--batch", type=int, default=16)
p.add_argument("--seq", type=int, default=100)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=8)
a = p.parse_args()

dev = setup()


class Classifier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(a.vocab, a.hidden)
        cell = torch.nn.LSTM if a.cell == "lstm" else torch.nn.GRU
        self.rnn = cell(a.hidden, a.hidden, num_layers=a.layers, batch_first=True)
        self.head = torch.nn.Linear(a.hidden, a.classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(ids))
        return self.head(out[:, -1])


model = Classifier().to(dev, torch.float16).eval()
g = torch.Generator().manual_seed(0)
times = []
with torch.inference_mode():
    for _ in range(a.warmup + a.iters):
        ids = torch.randint(0, a.vocab, (a.batch, a.seq), generator=g)
        sync()
        t0 = time.perf_counter()
        pred = model(ids.to(dev)).argmax(1).cpu()
        times.append((time.perf_counter() - t0) * 1e3)
result(
    workload="rnn_requests",
    cell=a.cell,
    requests=a.warmup + a.iters,
    warmup_requests=a.warmup,
    passes_per_request=1,
    request_ms=[round(t, 3) for t in times],
    checksum=int(pred.sum()),
)
