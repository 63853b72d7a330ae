"""CNN inference: torchvision resnet50 (weights=None, random init), fp16, channels_last, batch 32 x 3 x 224 x 224.

Built on the CPU, then copied to the GPU (.cuda().half()); torch.backends.cudnn.benchmark=True, so the first
forward pass also tries cuDNN algorithms. --warmup forward passes, then --iters measured ones; the host
synchronizes only after the warm-up loop and after the measured loop (no per-iteration sync, no NVTX),
whole process captured.

    python3 scripts/workloads/resnet_cnn.py --arch resnet50 --batch 32 --warmup 2 --iters 10
"""

import argparse

import torch
import torchvision
from _common import Timer, result, setup

p = argparse.ArgumentParser()
p.add_argument("--arch", default="resnet50")
p.add_argument("--batch", type=int, default=32)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=10)
p.add_argument("--cudnn-benchmark", type=int, default=1)
a = p.parse_args()

dev = setup()
torch.backends.cudnn.benchmark = bool(a.cudnn_benchmark)
dt = torch.float16 if dev.type == "cuda" else torch.float32
model = getattr(torchvision.models, a.arch)(weights=None).eval().to(dev, dt).to(memory_format=torch.channels_last)
x = torch.randn(a.batch, 3, 224, 224).to(dev, dt).to(memory_format=torch.channels_last)

with torch.inference_mode():
    with Timer() as tw:
        for _ in range(a.warmup):
            y = model(x)
    with Timer() as tm:
        for _ in range(a.iters):
            y = model(x)
    top = y.argmax(-1)[:4].tolist()
print(f"warmup {a.warmup} passes {tw.ms:.1f} ms; measured {a.iters} passes {tm.ms:.1f} ms; top {top}", flush=True)
result(
    workload="resnet_cnn",
    arch=a.arch,
    torchvision=torchvision.__version__,
    warmup_ms=tw.ms,
    measured_ms=tm.ms,
    ms_per_iter_measured=tm.ms / a.iters,
)
