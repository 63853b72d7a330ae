"""Object detection: torchvision Faster R-CNN (fasterrcnn_resnet50_fpn, weights=None, random init), fp32, eager.

Built on the CPU, then copied to the GPU. Each iteration runs the detector on a list of --images random
640 x 640 images (resize and normalisation inside the model, proposals, NMS and ROI heads: many host syncs of
its own) and ends with torch.cuda.synchronize(). --warmup iterations, then --iters measured ones, back to
back in one loop: no pause, no NVTX, whole process captured.

    python3 scripts/workloads/detector.py --images 2 --warmup 1 --iters 10
"""

import argparse
import time

import torch
import torchvision
from _common import result, setup, sync

p = argparse.ArgumentParser()
p.add_argument("--images", type=int, default=2)
p.add_argument("--size", type=int, default=640)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=10)
a = p.parse_args()

dev = setup()
model = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval().to(dev)
images = [torch.rand(3, a.size, a.size, device=dev) for _ in range(a.images)]
times = []
with torch.inference_mode():
    for _ in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        out = model(images)
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
print(f"iterations {[round(t, 1) for t in times]} ms; boxes {[o['boxes'].shape[0] for o in out]}", flush=True)
meas = times[a.warmup :]
result(
    workload="detector", torchvision=torchvision.__version__, iter_ms=times, ms_per_iter_measured=sum(meas) / len(meas)
)
