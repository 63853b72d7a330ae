"""torch.compile (mode "default", Inductor) of torchvision resnet18 (weights=None, random init) for inference:
fp16, channels_last, batch --batch x 3 x 224 x 224, eval mode, under torch.inference_mode().

--warmup calls (the first one compiles: Dynamo + Inductor, Triton kernels built then), then --iters measured
calls, each followed by torch.cuda.synchronize(); no NVTX, whole process captured. Convolutions stay cuDNN calls
(Inductor's default), the batch norms, ReLUs, adds and pools become Triton kernels.

    python3 scripts/workloads/compile_resnet.py --arch resnet18 --batch 16 --warmup 2 --iters 10
"""

import argparse
import time

import torch
import torchvision
from _common import result, setup, sync

p = argparse.ArgumentParser()
p.add_argument("--arch", default="resnet18")
p.add_argument("--batch", type=int, default=16)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=10)
p.add_argument("--mode", default="default")
a = p.parse_args()

dev = setup()
dt = torch.float16 if dev.type == "cuda" else torch.float32
model = getattr(torchvision.models, a.arch)(weights=None).eval().to(dev, dt).to(memory_format=torch.channels_last)
x = torch.randn(a.batch, 3, 224, 224).to(dev, dt).to(memory_format=torch.channels_last)
cmodel = torch.compile(model, mode=a.mode)

times = []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        sync()
        t0 = time.perf_counter()
        y = cmodel(x)
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
        print(f"call {i} ({'warmup' if i < a.warmup else 'measured'}): {times[-1]:.2f} ms", flush=True)
    top = y.argmax(-1)[:4].tolist()
meas = times[a.warmup :]
result(
    workload="compile_resnet",
    arch=a.arch,
    mode=a.mode,
    torchvision=torchvision.__version__,
    call_ms=times,
    ms_per_iter_measured=sum(meas) / len(meas),
    top=top,
)
