"""A diffusion-style denoising loop in plain PyTorch (no diffusers): a small UNet with random fp16 weights.

UNet on 4 x 64 x 64 latents: conv_in, 3 down levels (64 / 128 / 256 channels at 64x64 / 32x32 / 16x16, each 2
residual blocks [GroupNorm, SiLU, conv 3x3, + timestep-embedding projection, GroupNorm, SiLU, conv 3x3, skip];
the first two levels end with a stride-2 conv), a middle block [resblock, one self-attention block over the
16x16 = 256 positions (GroupNorm, qkv 1x1 conv, F.scaled_dot_product_attention with 4 heads, out 1x1 conv),
resblock], 3 up levels (nearest upsample + conv, concatenated skips, 2 resblocks each), GroupNorm, SiLU, conv_out.
Timestep embedding: sinusoidal (on the GPU) + 2-layer MLP. Classifier-free guidance is folded into the batch:
each UNet forward runs on --batch x 2 latents (cond + uncond), then the two halves are mixed (guidance 7.5).

An "image" = --steps denoising steps, each exactly ONE UNet forward + a DDIM-like update of the latents on the
GPU (timesteps and alphas precomputed on the device: no host round trip inside the loop), then one
torch.cuda.synchronize() per image. --warmup images, then --iters measured images, back to back in one loop,
inference_mode, no NVTX, the whole process captured. Forward passes are counted with a forward pre-hook (CPU).

    python3 scripts/workloads/diffusion_unet.py --warmup 2 --iters 3 --steps 20
"""

import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from _common import result, setup, sync

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=1)
p.add_argument("--size", type=int, default=64)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=3)
a = p.parse_args()


def gn(c):
    return nn.GroupNorm(32, c)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim):
        super().__init__()
        self.n1, self.c1 = gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(tdim, cout)
        self.n2, self.c2 = gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.t(F.silu(temb))[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


class Attn(nn.Module):
    def __init__(self, c, heads=4):
        super().__init__()
        self.n, self.qkv, self.out, self.h = gn(c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1), heads

    def forward(self, x):
        b, c, hh, ww = x.shape
        q, k, v = self.qkv(self.n(x)).reshape(b, 3, self.h, c // self.h, hh * ww).unbind(1)
        o = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(o.transpose(-1, -2).reshape(b, c, hh, ww))


class UNet(nn.Module):
    def __init__(self, ch=(64, 128, 256), tdim=256):
        super().__init__()
        self.tdim = tdim
        self.temb = nn.Sequential(nn.Linear(ch[0], tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.conv_in = nn.Conv2d(4, ch[0], 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        cin = ch[0]
        skips = [ch[0]]
        for i, c in enumerate(ch):
            blocks = nn.ModuleList([ResBlock(cin, c, tdim), ResBlock(c, c, tdim)])
            cin = c
            skips += [c, c]
            self.down.append(blocks)
            if i < len(ch) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1, self.mid_attn, self.mid2 = ResBlock(cin, cin, tdim), Attn(cin), ResBlock(cin, cin, tdim)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, c in reversed(list(enumerate(ch))):
            blocks = nn.ModuleList()
            for _ in range(3):
                blocks.append(ResBlock(cin + skips.pop(), c, tdim))
                cin = c
            self.up.append(blocks)
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.n_out, self.conv_out = gn(cin), nn.Conv2d(cin, 4, 3, padding=1)

    def forward(self, x, t):
        half = self.temb[0].in_features // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
        e = t.float()[:, None] * freqs[None]
        temb = self.temb(torch.cat([e.sin(), e.cos()], -1).to(x.dtype))
        h = self.conv_in(x)
        hs = [h]
        for i, blocks in enumerate(self.down):
            for blk in blocks:
                h = blk(h, temb)
                hs.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for i, blocks in enumerate(self.up):
            for blk in blocks:
                h = blk(torch.cat([h, hs.pop()], 1), temb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.n_out(h)))


dev = setup()
dtype = torch.float16 if dev.type == "cuda" else torch.float32
unet = UNet().to(dev, dtype).eval()
n_fwd = [0]
unet.register_forward_pre_hook(lambda m, args: n_fwd.__setitem__(0, n_fwd[0] + 1))

# DDIM-like schedule, precomputed on the device
T = 1000
betas = torch.linspace(0.00085**0.5, 0.012**0.5, T, dtype=torch.float64) ** 2
alphas = torch.cumprod(1 - betas, 0)
ts = torch.linspace(T - 1, 0, a.steps).round().long()
a_t = alphas[ts]
a_prev = torch.cat([alphas[ts[1:]], torch.ones(1, dtype=torch.float64)])
ts_d, a_t_d, a_prev_d = ts.to(dev), a_t.float().to(dev), a_prev.float().to(dev)
guidance = 7.5


def denoise(seed):
    g = torch.Generator(device=dev).manual_seed(seed)
    x = torch.randn(a.batch, 4, a.size, a.size, generator=g, device=dev, dtype=dtype)
    for i in range(a.steps):
        xin = torch.cat([x, x])
        t = ts_d[i].expand(2 * a.batch)
        eps_c, eps_u = unet(xin, t).chunk(2)
        eps = eps_u + guidance * (eps_c - eps_u)
        at, ap = a_t_d[i], a_prev_d[i]
        x0 = (x.float() - (1 - at).sqrt() * eps.float()) / at.sqrt()
        x = (ap.sqrt() * x0 + (1 - ap).sqrt() * eps.float()).to(dtype)
    return x


times, fwd = [], []
with torch.inference_mode():
    sync()
    for i in range(a.warmup + a.iters):
        n0 = n_fwd[0]
        t0 = time.perf_counter()
        x = denoise(i)
        sync()  # one synchronize per image
        times.append((time.perf_counter() - t0) * 1e3)
        fwd.append(n_fwd[0] - n0)
        print(
            f"image {i} ({'warmup' if i < a.warmup else 'measured'}): {times[-1]:.2f} ms, {fwd[-1]} UNet forwards",
            flush=True,
        )
meas = times[a.warmup :]
result(
    workload="diffusion_unet",
    warmup=a.warmup,
    iters=a.iters,
    steps=a.steps,
    unet_forwards_per_image=fwd,
    image_ms=times,
    ms_per_image_measured=sum(meas) / len(meas),
    ms_per_step_measured=sum(meas) / len(meas) / a.steps,
    params_m=sum(p.numel() for p in unet.parameters()) / 1e6,
    checksum=float(x.float().abs().mean()),
)
