"""torch.compile of a small decoder's decode step (static KV cache), whole process captured, compile included.

A Llama-like decoder (RMSNorm, fused QKV, RoPE, SDPA over a static KV cache, SiLU MLP, LM head, greedy argmax)
written with plain torch ops; only its one-token decode step is compiled with
torch.compile(mode=--mode, fullgraph=True). With mode "reduce-overhead" inductor records the step into a CUDA
graph (cudagraph trees: the first call(s) run eagerly for warm-up and recording, then every step is one
cudaGraphLaunch); with mode "default" every step launches inductor's Triton kernels one by one.

Each request: reset the position, then --steps decode steps (token in -> token out, the tokens stay on the GPU
and are copied into an output buffer by an eager copy, which is fed back as the next input; the position is
advanced by an eager add_); the host reads the tokens once at the end of the request (one sync per request, none
per step).
--warmup requests first (they include compilation), then --iters measured requests.

    python3 scripts/workloads/compile_decode.py --mode reduce-overhead --warmup 1 --warmup-steps 16 --iters 3 --steps 40
"""

import argparse

import torch
import torch.nn.functional as F
from _common import Timer, result, setup
from torch import nn

p = argparse.ArgumentParser()
p.add_argument("--mode", default="reduce-overhead")
p.add_argument("--layers", type=int, default=4)
p.add_argument("--hidden", type=int, default=1024)
p.add_argument("--heads", type=int, default=16)
p.add_argument("--kv-heads", type=int, default=4)
p.add_argument("--intermediate", type=int, default=2816)
p.add_argument("--vocab", type=int, default=32000)
p.add_argument("--batch", type=int, default=2)
p.add_argument("--max-len", type=int, default=256)
p.add_argument("--steps", type=int, default=48)
p.add_argument("--warmup-steps", type=int, default=16)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=3)
a = p.parse_args()
dev = setup()
dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
D = a.hidden // a.heads


def rms(x, w):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * w


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        H, KV, L = a.heads, a.kv_heads, a.layers
        s = 0.02
        self.embed = nn.Parameter(torch.randn(a.vocab, a.hidden) * s)
        self.ln1 = nn.Parameter(torch.ones(L, a.hidden))
        self.ln2 = nn.Parameter(torch.ones(L, a.hidden))
        self.wqkv = nn.Parameter(torch.randn(L, (H + 2 * KV) * D, a.hidden) * s)
        self.wo = nn.Parameter(torch.randn(L, a.hidden, H * D) * s)
        self.wgu = nn.Parameter(torch.randn(L, 2 * a.intermediate, a.hidden) * s)
        self.wd = nn.Parameter(torch.randn(L, a.hidden, a.intermediate) * s)
        self.lnf = nn.Parameter(torch.ones(a.hidden))
        self.lm_head = nn.Parameter(torch.randn(a.vocab, a.hidden) * s)
        inv = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))
        ang = torch.outer(torch.arange(a.max_len).float(), inv)
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())
        self.register_buffer("k_cache", torch.zeros(L, a.batch, KV, a.max_len, D))
        self.register_buffer("v_cache", torch.zeros(L, a.batch, KV, a.max_len, D))

    def rope(self, x, pos):  # x [B, h, 1, D]
        c = self.cos.index_select(0, pos).to(x.dtype)[None, None]
        s = self.sin.index_select(0, pos).to(x.dtype)[None, None]
        x1, x2 = x[..., : D // 2], x[..., D // 2 :]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)

    def step(self, tok, pos):  # tok [B] int64, pos [1] int64 (GPU tensors)
        H, KV = a.heads, a.kv_heads
        x = F.embedding(tok, self.embed)[:, None, :]  # [B, 1, hidden]
        valid = (torch.arange(a.max_len, device=tok.device) <= pos)[None, None, None, :]
        for li in range(a.layers):
            h = rms(x, self.ln1[li])
            q, k, v = F.linear(h, self.wqkv[li]).split([H * D, KV * D, KV * D], -1)
            q = self.rope(q.view(a.batch, 1, H, D).transpose(1, 2), pos)
            k = self.rope(k.view(a.batch, 1, KV, D).transpose(1, 2), pos)
            v = v.view(a.batch, 1, KV, D).transpose(1, 2)
            self.k_cache[li].index_copy_(2, pos, k)
            self.v_cache[li].index_copy_(2, pos, v)
            o = F.scaled_dot_product_attention(q, self.k_cache[li], self.v_cache[li], attn_mask=valid, enable_gqa=True)
            x = x + F.linear(o.transpose(1, 2).reshape(a.batch, 1, H * D), self.wo[li])
            g, u = F.linear(rms(x, self.ln2[li]), self.wgu[li]).chunk(2, -1)
            x = x + F.linear(F.silu(g) * u, self.wd[li])
        logits = F.linear(rms(x, self.lnf), self.lm_head)[:, 0]
        return logits.argmax(-1)


model = Decoder().to(dev, dt).eval()
for b in (model.k_cache, model.v_cache):
    torch._dynamo.mark_static_address(b)
step = torch.compile(model.step, mode=None if a.mode == "default" else a.mode, fullgraph=True)

tok0 = torch.randint(0, a.vocab, (a.batch,), device=dev)
pos = torch.zeros(1, dtype=torch.long, device=dev)
req_ms, step_ms = [], []
with torch.inference_mode():
    for r in range(a.warmup + a.iters):
        n = a.warmup_steps if r < a.warmup else a.steps
        out = torch.empty(
            n, a.batch, dtype=torch.long, device=dev
        )  # out[i] is contiguous like tok0: one compiled graph
        tok = tok0
        with Timer() as t:
            pos.zero_()
            for i in range(n):
                out[i].copy_(step(tok, pos))
                tok = out[i]  # feed the copy back, never the graph's own output buffer
                pos.add_(1)
            toks = out.t().tolist()
        req_ms.append(t.ms)
        if r >= a.warmup:
            step_ms.append(t.ms / n)
        print(
            f"request {r} ({'warmup' if r < a.warmup else 'measured'}): {n} steps {t.ms:.1f} ms "
            f"({t.ms / n:.3f} ms/step) first tokens {toks[0][:4]}",
            flush=True,
        )
try:
    from torch._dynamo.utils import counters

    cg = {k: dict(v) for k, v in counters.items() if k in ("inductor", "stats") or "cudagraph" in k}
except Exception:
    cg = {}
result(
    workload="compile_decode",
    mode=a.mode,
    request_ms=req_ms,
    ms_per_step_measured=sum(step_ms) / len(step_ms),
    counters={k: {kk: vv for kk, vv in v.items() if "cudagraph" in kk or "skip" in kk} for k, v in cg.items()},
)
