"""A small Llama-style decode loop in plain PyTorch that reads every token on the host, with a cache that only grows.

Each decode step runs the layers (RMSNorm, fused QKV, SDPA over a static KV cache, output projection, SiLU MLP),
the LM head and a greedy argmax, then reads the token with ``.item()`` (a device-to-host copy and a
cudaStreamSynchronize every step: the slow API calls whose host call stacks ``--cudabacktrace`` records). The
token stays on the GPU as the next input. Every step also keeps ``--keep-mb`` MiB on the GPU that is never freed
(a per-step cache that is never trimmed: the device-memory watermark grows step after step).

--warmup requests first (outside the capture range with --cuda-profiler-capture), then --iters measured requests
inside cudaProfilerStart/Stop. NVTX (--nvtx): ``request_N`` per request and ``step`` per decode step.
--print-steps prints ``STEP <i> <ms>`` for every measured step (i counts across measured requests): under ncu the
step holding the profiled kernel (replayed many times) is the slowest one.

    python3 scripts/workloads/sync_decode.py --layers 4 --warmup 1 --iters 2 --steps 24 --nvtx --cuda-profiler-capture
"""

import argparse
import time

import torch
import torch.nn.functional as F
from _common import profiler_start, profiler_stop, result, setup

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=4)
p.add_argument("--hidden", type=int, default=2048)
p.add_argument("--heads", type=int, default=16)
p.add_argument("--intermediate", type=int, default=8192)
p.add_argument("--vocab", type=int, default=32000)
p.add_argument("--max-len", type=int, default=256)
p.add_argument("--steps", type=int, default=24)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=2)
p.add_argument("--keep-mb", type=float, default=4.0)
p.add_argument("--nvtx", action="store_true")
p.add_argument("--cuda-profiler-capture", action="store_true")
p.add_argument("--print-steps", action="store_true")
a = p.parse_args()
dev = setup()
dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
H, D = a.hidden, a.hidden // a.heads


def w(*shape: int) -> torch.Tensor:
    return (torch.randn(*shape, device=dev, dtype=dt) * 0.02).contiguous()


layers = [
    {
        "n1": torch.ones(H, device=dev, dtype=dt),
        "qkv": w(3 * H, H),
        "o": w(H, H),
        "n2": torch.ones(H, device=dev, dtype=dt),
        "gu": w(2 * a.intermediate, H),
        "down": w(H, a.intermediate),
        "k": torch.zeros(1, a.heads, a.max_len, D, device=dev, dtype=dt),
        "v": torch.zeros(1, a.heads, a.max_len, D, device=dev, dtype=dt),
    }
    for _ in range(a.layers)
]
emb, norm, head = w(a.vocab, H), torch.ones(H, device=dev, dtype=dt), w(a.vocab, H)


def rms(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * weight


def step(tok: torch.Tensor, pos: int) -> torch.Tensor:
    x = emb[tok].view(1, 1, H)
    for L in layers:
        q, k, v = (rms(x, L["n1"]) @ L["qkv"].t()).view(1, 1, 3, a.heads, D).unbind(2)
        L["k"][:, :, pos] = k.transpose(1, 2)[:, :, 0]
        L["v"][:, :, pos] = v.transpose(1, 2)[:, :, 0]
        att = F.scaled_dot_product_attention(q.transpose(1, 2), L["k"][:, :, : pos + 1], L["v"][:, :, : pos + 1])
        x = x + att.transpose(1, 2).reshape(1, 1, H) @ L["o"].t()
        g, u = (rms(x, L["n2"]) @ L["gu"].t()).chunk(2, -1)
        x = x + (F.silu(g) * u) @ L["down"].t()
    return (rms(x, norm) @ head.t()).view(-1).argmax()


kept: list[torch.Tensor] = []  # the cache that is never trimmed
keep_elems = int(a.keep_mb * (1 << 20))
measured_step = 0


def request(i: int, measured: bool) -> float:
    global measured_step
    if a.nvtx:
        torch.cuda.nvtx.range_push(f"request_{i}")
    t0 = time.perf_counter()
    tok = torch.zeros((), dtype=torch.long, device=dev)
    for pos in range(a.steps):
        ts = time.perf_counter()
        if a.nvtx:
            torch.cuda.nvtx.range_push("step")
        tok = step(tok, pos)
        if keep_elems:
            kept.append(torch.empty(keep_elems, dtype=torch.uint8, device=dev).fill_(pos & 0xFF))
        host_token = tok.item()  # the host reads the token: a device-to-host copy and a stream synchronization
        if a.nvtx:
            torch.cuda.nvtx.range_pop()
        if measured:
            if a.print_steps:
                print(f"STEP {measured_step} {(time.perf_counter() - ts) * 1e3:.3f} token {host_token}", flush=True)
            measured_step += 1
    if a.nvtx:
        torch.cuda.nvtx.range_pop()
    return (time.perf_counter() - t0) * 1e3


warm = [request(i, False) for i in range(a.warmup)]
if a.cuda_profiler_capture:
    profiler_start()
times = [request(a.warmup + i, True) for i in range(a.iters)]
if a.cuda_profiler_capture:
    profiler_stop()
result(
    workload="sync_decode",
    warmup_ms=[round(t, 3) for t in warm],
    request_ms=[round(t, 3) for t in times],
    ms_per_token=round(sum(times) / max(1, a.iters * a.steps), 4),
    kept_mb=round(len(kept) * a.keep_mb, 1),
)
