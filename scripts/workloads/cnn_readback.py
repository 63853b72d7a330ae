"""CNN inference with a read back per pass: torchvision classifier (default mobilenet_v3_large, weights=None),
fp16, channels_last, batch 8 x 3 x 224 x 224, eager, cudnn.benchmark off.

Each forward pass ends with `logits.argmax(-1).cpu()` (one device-to-host copy and sync), like a service that
answers every batch. --warmup passes, then --iters measured ones in the same loop, no pause, no NVTX, whole
process captured. MobileNet's depthwise convolutions are cheap and its 1x1 convolutions run as GEMMs: its norms
take more GPU time than its convolutions.

    python3 scripts/workloads/cnn_readback.py --arch mobilenet_v3_large --warmup 2 --iters 20
"""

import argparse
import time

import torch
import torchvision
from _common import result, setup

p = argparse.ArgumentParser()
p.add_argument("--arch", default="mobilenet_v3_large")
p.add_argument("--batch", type=int, default=8)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=20)
a = p.parse_args()

dev = setup()
model = getattr(torchvision.models, a.arch)(weights=None).eval().to(dev, torch.float16)
model = model.to(memory_format=torch.channels_last)
x = torch.rand(a.batch, 3, 224, 224, device=dev).half().to(memory_format=torch.channels_last)
times = []
with torch.inference_mode():
    for _ in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        top = model(x).argmax(-1).cpu()
        times.append((time.perf_counter() - t0) * 1e3)
meas = times[a.warmup :]
print(f"passes {[round(t, 2) for t in times]} ms; top {top[:4].tolist()}", flush=True)
result(workload="cnn_readback", arch=a.arch, pass_ms=times, ms_per_pass_measured=sum(meas) / len(meas))
