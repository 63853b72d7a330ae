"""CNN inference served as requests: torchvision classifier (weights=None, random init), eager, batch 8 x 3 x 224 x 224.

Built on the CPU, then copied to the GPU (.to(cuda, dtype)). --warmup warm-up requests, then --iters measured
requests; each request makes a fresh input batch on the host, copies it to the GPU at its start
(`x_cpu.cuda()`, one pageable host-to-device copy), runs --passes forward passes on it and reads the predictions
back at its end (`logits.argmax(1).cpu()`, one device-to-host copy and sync). No other host sync per pass.
--nvtx-requests wraps each request (warm-up ones included, all named `request_N`) in one NVTX range, not each pass.
--cudnn-benchmark 1 turns on torch.backends.cudnn.benchmark (cuDNN autotuning in the first request).
--graph 1 captures one forward pass in a ``torch.cuda.CUDAGraph`` before the first request (after three warm-up
passes on a side stream, on a static input buffer) and replays it for each pass; each request copies its fresh batch
into the static buffer (one host-to-device copy) and reads the predictions back after its passes.

    python3 scripts/workloads/cnn_requests.py --arch resnet18 --dtype fp16 --batch 8 --warmup 2 --iters 4 --passes 5
"""

import argparse
import time

import torch
import torchvision
from _common import result, setup, sync

p = argparse.ArgumentParser()
p.add_argument("--arch", default="resnet18")
p.add_argument("--dtype", default="fp16", choices=["fp16", "fp32"])
p.add_argument("--batch", type=int, default=8)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=4)
p.add_argument("--passes", type=int, default=5)
p.add_argument("--cudnn-benchmark", type=int, default=0)
p.add_argument("--nvtx-requests", type=int, default=0)
p.add_argument("--graph", type=int, default=0, help="replay each pass from a captured CUDA graph")
a = p.parse_args()

dev = setup()
torch.backends.cudnn.benchmark = bool(a.cudnn_benchmark)
dt = torch.float16 if a.dtype == "fp16" and dev.type == "cuda" else torch.float32
model = getattr(torchvision.models, a.arch)(weights=None).eval().to(dev, dt)

times, preds = [], []
graph = None
with torch.inference_mode():
    if a.graph:
        static_x = torch.zeros(a.batch, 3, 224, 224, device=dev, dtype=dt)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                model(static_x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_logits = model(static_x)
    sync()
    for i in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        if a.nvtx_requests:
            torch.cuda.nvtx.range_push(f"request_{i}")
        x_cpu = torch.randn(a.batch, 3, 224, 224).to(dt)  # a fresh batch per request, on the host
        if graph is not None:
            static_x.copy_(x_cpu)  # host-to-device copy into the graph's input buffer
            for _ in range(a.passes):
                graph.replay()
            logits = static_logits
        else:
            x = x_cpu.cuda() if dev.type == "cuda" else x_cpu  # host-to-device copy at the request's start
            for _ in range(a.passes):
                logits = model(x)
        top = logits.argmax(1).cpu()  # device-to-host copy (and sync) at the request's end
        if a.nvtx_requests:
            torch.cuda.nvtx.range_pop()
        times.append((time.perf_counter() - t0) * 1e3)
        preds.append(top[:4].tolist())
        phase = "warmup" if i < a.warmup else "measured"
        print(f"request {i} ({phase}): {times[-1]:.2f} ms, top {preds[-1]}", flush=True)
meas = times[a.warmup :]
result(
    workload="cnn_requests",
    arch=a.arch,
    graph=a.graph,
    dtype=a.dtype,
    torchvision=torchvision.__version__,
    cudnn=torch.backends.cudnn.version(),
    request_ms=times,
    ms_per_pass_measured=sum(meas) / len(meas) / a.passes,
)
