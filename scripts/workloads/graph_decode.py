"""A hand-written decoder whose decode step is a CUDA graph captured and replayed by the program itself
(``torch.cuda.CUDAGraph``, as small serving engines do without torch.compile).

A Llama-like decoder in plain torch operations (--layers layers, hidden --hidden, --heads query heads and --kv-heads
key/value heads of 64, a gated MLP of --inter, vocab --vocab, bf16, random weights, RMS norm, no rotary embedding),
with a static key/value cache of --max-len positions per layer written with ``index_copy_``, attention through
``scaled_dot_product_attention`` with a mask over the cache. The prefill runs eagerly; each decode step (one token
per sequence, --batch sequences) is one replay of a graph captured once before the first request (after three
warm-up runs on a side stream), plus two small eager kernels outside it (the next token and position are copied
into the graph's input buffers). The generated tokens stay on the GPU and are read back at the end of each request
(``.cpu()``: one device-to-host copy and sync). --warmup warm-up requests, then --iters measured ones. No NVTX,
whole process captured. The truth: --warmup + --iters requests of 1 prefill step and --new-tokens - 1 decode steps.

    python3 scripts/workloads/graph_decode.py --layers 4 --batch 2 --prompt-len 64 --new-tokens 32 --warmup 1 --iters 3
"""

import argparse
import time

import torch
import torch.nn.functional as F
from _common import result, setup, sync

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=4)
p.add_argument("--hidden", type=int, default=1024)
p.add_argument("--heads", type=int, default=16)
p.add_argument("--kv-heads", type=int, default=4)
p.add_argument("--inter", type=int, default=2816)
p.add_argument("--vocab", type=int, default=32000)
p.add_argument("--batch", type=int, default=2)
p.add_argument("--max-len", type=int, default=256)
p.add_argument("--prompt-len", type=int, default=64)
p.add_argument("--new-tokens", type=int, default=32)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=3)
a = p.parse_args()

dev = setup()
dt = torch.bfloat16
HD = 64
nq, nkv = a.heads, a.kv_heads


def w(*shape: int) -> torch.Tensor:
    return (torch.randn(*shape, device=dev) * shape[0] ** -0.5).to(dt)


embed = w(a.vocab, a.hidden)
lm_head = w(a.hidden, a.vocab)
layers = [
    {
        "qkv": w(a.hidden, (nq + 2 * nkv) * HD),
        "o": w(nq * HD, a.hidden),
        "gate_up": w(a.hidden, 2 * a.inter),
        "down": w(a.inter, a.hidden),
        "n1": torch.ones(a.hidden, device=dev, dtype=dt),
        "n2": torch.ones(a.hidden, device=dev, dtype=dt),
    }
    for _ in range(a.layers)
]
k_cache = torch.zeros(a.layers, a.batch, nkv, a.max_len, HD, device=dev, dtype=dt)
v_cache = torch.zeros_like(k_cache)
positions = torch.arange(a.max_len, device=dev)


def rmsnorm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(dt) * weight


def forward(tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Logits of the last position; ``pos``: the cache positions of the ``tokens`` (one per column)."""
    b, t = tokens.shape
    x = embed[tokens]
    mask = positions[None, :] <= pos[:, None]  # (t, max_len): each token sees the cache up to itself
    for i, lw in enumerate(layers):
        h = rmsnorm(x, lw["n1"]) @ lw["qkv"]
        q, k, v = h.split([nq * HD, nkv * HD, nkv * HD], dim=-1)
        q = q.view(b, t, nq, HD).transpose(1, 2)
        k_cache[i].index_copy_(2, pos, k.view(b, t, nkv, HD).transpose(1, 2))
        v_cache[i].index_copy_(2, pos, v.view(b, t, nkv, HD).transpose(1, 2))
        att = F.scaled_dot_product_attention(q, k_cache[i], v_cache[i], attn_mask=mask, enable_gqa=True)
        x = x + att.transpose(1, 2).reshape(b, t, nq * HD) @ lw["o"]
        gate, up = (rmsnorm(x, lw["n2"]) @ lw["gate_up"]).chunk(2, dim=-1)
        x = x + (F.silu(gate) * up) @ lw["down"]
    return x[:, -1] @ lm_head


tok_buf = torch.zeros(a.batch, 1, dtype=torch.long, device=dev)
pos_buf = torch.zeros(1, dtype=torch.long, device=dev)
with torch.inference_mode():
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            forward(tok_buf, pos_buf)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        next_tok = forward(tok_buf, pos_buf).argmax(-1, keepdim=True)
    sync()

    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(a.warmup + a.iters):
        prompt = torch.randint(3, a.vocab, (a.batch, a.prompt_len), generator=g)
        sync()
        t0 = time.perf_counter()
        ids = prompt.to(dev)
        out = torch.empty(a.batch, a.new_tokens, dtype=torch.long, device=dev)
        out[:, :1] = forward(ids, positions[: a.prompt_len]).argmax(-1, keepdim=True)
        for i in range(1, a.new_tokens):
            tok_buf.copy_(out[:, i - 1 : i])
            pos_buf.fill_(a.prompt_len + i - 1)
            graph.replay()
            out[:, i : i + 1] = next_tok
        tokens = out.cpu()
        times.append((time.perf_counter() - t0) * 1e3)
result(
    workload="graph_decode",
    requests=a.warmup + a.iters,
    warmup_requests=a.warmup,
    prefill_steps_per_request=1,
    decode_steps_per_request=a.new_tokens - 1,
    graph_replays=(a.warmup + a.iters) * (a.new_tokens - 1),
    request_ms=[round(t, 3) for t in times],
    checksum=int(tokens.sum()),
)
