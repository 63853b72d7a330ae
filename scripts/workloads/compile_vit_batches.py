"""A compiled image classifier served with requests of changing batch size: torchvision's ViT-B/16 (random bf16
weights) under `torch.compile` (default mode); the batch sizes cycle through --batches (a new size makes
torch.compile recompile, once per size, or once for a dynamic batch dimension). Each request copies its images
(uint8, 224x224) to the GPU, normalizes them, runs one forward pass and reads the predicted classes back with
`.cpu()`. No NVTX, whole process captured. Truth: --warmup + --iters requests of one forward pass each.

    python3 scripts/workloads/compile_vit_batches.py --batches 8,1,32,8,4 --warmup 1 --iters 9
"""

import argparse
import time

import torch
import torchvision
from _common import result, setup, sync

p = argparse.ArgumentParser()
p.add_argument("--batches", default="8,1,32,8,4")
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=9)
a = p.parse_args()
sizes = [int(x) for x in a.batches.split(",")]

dev = setup()
model = torchvision.models.vit_b_16().to(dev, torch.bfloat16).eval()
mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(1, 3, 1, 1)


@torch.compile
def classify(images: torch.Tensor) -> torch.Tensor:
    x = ((images.float() / 255.0 - mean) / std).to(torch.bfloat16)
    return model(x).argmax(1)


g = torch.Generator().manual_seed(0)
times, batches = [], []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        b = sizes[i % len(sizes)]
        images = torch.randint(0, 256, (b, 3, 224, 224), dtype=torch.uint8, generator=g)
        sync()
        t0 = time.perf_counter()
        pred = classify(images.to(dev)).cpu()
        times.append((time.perf_counter() - t0) * 1e3)
        batches.append(b)
result(
    workload="compile_vit_batches",
    requests=a.warmup + a.iters,
    warmup_requests=a.warmup,
    passes_per_request=1,
    batches=batches,
    request_ms=[round(t, 3) for t in times],
)
