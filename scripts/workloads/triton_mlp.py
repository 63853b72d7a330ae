"""A model made of hand-written Triton kernels (no cuBLAS, no PyTorch operator in the step): a stack of --layers
gated-MLP blocks (RMS norm, up/gate matrix products, SiLU-and-multiply, down matrix product, residual add), fp16,
random weights, as a custom engine would write them. The kernels carry the names of their Python functions
(``rmsnorm_kernel``, ``matmul_kernel``, ``silu_mul_kernel``, ``add_kernel``), names no library uses.

One step = one forward pass over a --tokens x --hidden activation; --warmup steps (the first compiles every kernel
with Triton's JIT), then --iters measured steps, launched back to back; the host synchronizes only after the
warm-up and after the measured loop. No NVTX, whole process captured. The truth: --warmup + --iters forward
passes (an iterations run), 6 kernels per layer per pass (3 of them ``matmul_kernel``).

    python3 scripts/workloads/triton_mlp.py --layers 4 --tokens 256 --hidden 1024 --warmup 3 --iters 20
"""

import argparse

import torch
import triton
import triton.language as tl
from _common import Timer, result, setup

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=4)
p.add_argument("--tokens", type=int, default=256)
p.add_argument("--hidden", type=int, default=1024)
p.add_argument("--inter", type=int, default=2816)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--iters", type=int, default=20)
a = p.parse_args()


@triton.jit
def rmsnorm_kernel(x_ptr, w_ptr, y_ptr, n_cols, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    rms = tl.rsqrt(tl.sum(x * x, axis=0) / n_cols + eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * n_cols + cols, (x * rms * w).to(tl.float16), mask=mask)


@triton.jit
def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, K, BK):
        am = (rm[:, None] < M) & (rk[None, :] + k < K)
        bm = (rk[:, None] + k < K) & (rn[None, :] < N)
        x = tl.load(a_ptr + rm[:, None] * K + (rk[None, :] + k), mask=am, other=0.0)
        y = tl.load(b_ptr + (rk[:, None] + k) * N + rn[None, :], mask=bm, other=0.0)
        acc += tl.dot(x, y)
    cm = (rm[:, None] < M) & (rn[None, :] < N)
    tl.store(c_ptr + rm[:, None] * N + rn[None, :], acc.to(tl.float16), mask=cm)


@triton.jit
def silu_mul_kernel(g_ptr, u_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + offs, (g / (1.0 + tl.exp(-g)) * u).to(tl.float16), mask=mask)


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) + tl.load(y_ptr + offs, mask=mask), mask=mask)


def matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    m, k = x.shape
    n = w.shape[1]
    out = torch.empty((m, n), device=x.device, dtype=torch.float16)
    matmul_kernel[(triton.cdiv(m, 64), triton.cdiv(n, 64))](x, w, out, m, n, k, BM=64, BN=64, BK=32)
    return out


def block(x: torch.Tensor, norm_w: torch.Tensor, wg: torch.Tensor, wu: torch.Tensor, wd: torch.Tensor) -> torch.Tensor:
    rows, cols = x.shape
    h = torch.empty_like(x)
    rmsnorm_kernel[(rows,)](x, norm_w, h, cols, 1e-6, BLOCK=triton.next_power_of_2(cols))
    gate, up = matmul(h, wg), matmul(h, wu)
    act = torch.empty_like(gate)
    n = gate.numel()
    silu_mul_kernel[(triton.cdiv(n, 1024),)](gate, up, act, n, BLOCK=1024)
    down = matmul(act, wd)
    out = torch.empty_like(x)
    add_kernel[(triton.cdiv(x.numel(), 1024),)](x, down, out, x.numel(), BLOCK=1024)
    return out


dev = setup()
scale = a.hidden**-0.5
layers = [
    (
        torch.ones(a.hidden, device=dev, dtype=torch.float16),
        (torch.randn(a.hidden, a.inter, device=dev) * scale).half(),
        (torch.randn(a.hidden, a.inter, device=dev) * scale).half(),
        (torch.randn(a.inter, a.hidden, device=dev) * a.inter**-0.5).half(),
    )
    for _ in range(a.layers)
]
x0 = torch.randn(a.tokens, a.hidden, device=dev).half()


def step() -> torch.Tensor:
    x = x0
    for weights in layers:
        x = block(x, *weights)
    return x


with Timer() as warm:
    for _ in range(a.warmup):
        y = step()
with Timer() as t:
    for _ in range(a.iters):
        y = step()
result(
    workload="triton_mlp",
    passes=a.warmup + a.iters,
    warmup_passes=a.warmup,
    kernels_per_pass=6 * a.layers,
    warmup_ms=round(warm.ms, 3),
    step_ms=round(t.ms / a.iters, 4),
    checksum=float(y.float().abs().sum()),
)
