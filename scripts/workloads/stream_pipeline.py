"""Double-buffered inference pipeline on two CUDA streams: while the GPU runs batch i on the compute stream, the
copy stream brings batch i + 1 in (pinned host memory, non_blocking) and takes batch i - 1's predictions out.
torchvision classifier (weights=None, random init), fp16, eager; the host waits only for the predictions of the
batch before last (an event), so copies overlap compute and the host stays ahead.

--warmup batches, then --iters measured ones, in one loop (no pause, no NVTX, whole process captured). Truth:
warmup + iters batches, each one forward pass (one request = one batch), one H2D and one D2H copy per batch.

    python3 scripts/workloads/stream_pipeline.py --arch resnet18 --batch 16 --warmup 3 --iters 20
"""

import argparse

import torch
import torchvision
from _common import Timer, result, setup

p = argparse.ArgumentParser()
p.add_argument("--arch", default="resnet18")
p.add_argument("--batch", type=int, default=16)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--iters", type=int, default=20)
a = p.parse_args()

dev = setup()
model = getattr(torchvision.models, a.arch)(weights=None).eval().to(dev, torch.float16)
n = a.warmup + a.iters
host_in = [torch.randn(a.batch, 3, 224, 224).to(torch.float16).pin_memory() for _ in range(2)]
host_out = [torch.empty(a.batch, dtype=torch.int64).pin_memory() for _ in range(2)]
dev_in = [torch.empty(a.batch, 3, 224, 224, device=dev, dtype=torch.float16) for _ in range(2)]
copy, compute = torch.cuda.Stream(), torch.cuda.Stream()
loaded = [torch.cuda.Event() for _ in range(2)]
done = [torch.cuda.Event() for _ in range(2)]
read = [torch.cuda.Event() for _ in range(2)]
preds = [None, None]
with torch.inference_mode(), Timer() as total:
    with torch.cuda.stream(copy):
        dev_in[0].copy_(host_in[0], non_blocking=True)
        loaded[0].record(copy)
    for i in range(n):
        s = i % 2
        if i + 1 < n:  # bring the next batch in while this one computes
            with torch.cuda.stream(copy):
                if i >= 1:
                    copy.wait_event(done[1 - s])  # that buffer's last reader (batch i - 1) is done
                dev_in[1 - s].copy_(host_in[1 - s], non_blocking=True)
                loaded[1 - s].record(copy)
        with torch.cuda.stream(compute):
            compute.wait_event(loaded[s])
            preds[s] = model(dev_in[s]).argmax(1)
            done[s].record(compute)
        with torch.cuda.stream(copy):
            copy.wait_event(done[s])
            host_out[s].copy_(preds[s], non_blocking=True)
            read[s].record(copy)
        if i >= 1:
            read[1 - s].synchronize()  # the batch before this one is out: the host is one batch ahead
    torch.cuda.synchronize()
result(workload="stream_pipeline", arch=a.arch, batch=a.batch, warmup=a.warmup, iters=a.iters, batches=n,
       passes_per_batch=1, total_ms=total.ms)  # fmt: skip
