"""JAX greedy decoding with the WHOLE generation inside one jax.jit (no Flax): a toy 2-layer decoder-only
transformer (d_model 512, 8 heads, MLP 2048, vocab 8192, bf16, random weights) with a KV cache of --max-len.

generate(params, prompt) = 1 prefill pass over the --prompt-len prompt tokens (causal attention, writes the KV
cache with dynamic_update_slice, greedy argmax of the last row -> token 1), then lax.fori_loop over
--new-tokens - 1 decode steps (each: 1 token through both layers, attention over the cache masked to the
positions written so far, argmax -> the next token), all on the device: no host round trip per token.
--warmup calls (the first one compiles), then --iters measured calls, each followed by .block_until_ready()
(the only host synchronization of a request), no NVTX, whole process captured. XLA's defaults are kept.

    python3 scripts/workloads/jax_decode_scan.py --prompt-len 32 --new-tokens 32 --warmup 1 --iters 3
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
from jax import lax

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=2)
p.add_argument("--d", type=int, default=512)
p.add_argument("--heads", type=int, default=8)
p.add_argument("--ff", type=int, default=2048)
p.add_argument("--vocab", type=int, default=8192)
p.add_argument("--prompt-len", type=int, default=32)
p.add_argument("--new-tokens", type=int, default=32)
p.add_argument("--max-len", type=int, default=128)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=3)
a = p.parse_args()
assert a.prompt_len + a.new_tokens <= a.max_len
D, H, HD, dt = a.d, a.heads, a.d // a.heads, jnp.bfloat16

key = jax.random.PRNGKey(0)


def w(shape, scale):
    global key
    key, k = jax.random.split(key)
    return (jax.random.normal(k, shape) * scale).astype(dt)


params = dict(
    emb=w((a.vocab, D), 1.0),
    out=w((D, a.vocab), D**-0.5),
    layers=[
        dict(
            ln1=jnp.ones((D,), dt),
            wqkv=w((D, 3 * D), D**-0.5),
            wo=w((D, D), D**-0.5),
            ln2=jnp.ones((D,), dt),
            w1=w((D, a.ff), D**-0.5),
            w2=w((a.ff, D), a.ff**-0.5),
        )
        for _ in range(a.layers)
    ],
)


def rms(x, g):
    xf = x.astype(jnp.float32)
    return (xf * lax.rsqrt(jnp.mean(xf * xf, -1, keepdims=True) + 1e-6)).astype(dt) * g


def block(lp, x, kc, vc, pos):
    """x: [T, D] rows at positions pos..pos+T-1; kc/vc: [max_len, H, HD] of this layer. Returns x, kc, vc."""
    T = x.shape[0]
    q, k, v = jnp.split(rms(x, lp["ln1"]) @ lp["wqkv"], 3, -1)
    q, k, v = (t.reshape(T, H, HD) for t in (q, k, v))
    kc = lax.dynamic_update_slice(kc, k, (pos, 0, 0))
    vc = lax.dynamic_update_slice(vc, v, (pos, 0, 0))
    s = jnp.einsum("thd,shd->hts", q, kc).astype(jnp.float32) * HD**-0.5
    qpos = pos + jnp.arange(T)[:, None]
    s = jnp.where(jnp.arange(a.max_len)[None, :] <= qpos, s, -1e30)
    o = jnp.einsum("hts,shd->thd", jax.nn.softmax(s, -1).astype(dt), vc).reshape(T, D)
    x = x + o @ lp["wo"]
    x = x + jax.nn.gelu(rms(x, lp["ln2"]) @ lp["w1"]) @ lp["w2"]
    return x, kc, vc


def forward(params, toks, cache, pos):
    x = params["emb"][toks]
    new = []
    for lp, (kc, vc) in zip(params["layers"], cache, strict=True):
        x, kc, vc = block(lp, x, kc, vc, pos)
        new.append((kc, vc))
    logits = x[-1] @ params["out"]
    return jnp.argmax(logits).astype(jnp.int32), new


@jax.jit
def generate(params, prompt):
    cache = [(jnp.zeros((a.max_len, H, HD), dt), jnp.zeros((a.max_len, H, HD), dt)) for _ in range(a.layers)]
    tok, cache = forward(params, prompt, cache, 0)  # prefill
    out = jnp.zeros((a.new_tokens,), jnp.int32).at[0].set(tok)

    def step(i, carry):  # one decode step: token i-1 in, token i out
        out, cache = carry
        tok, cache = forward(params, out[i - 1][None], cache, a.prompt_len + i - 1)
        return out.at[i].set(tok), cache

    out, _ = lax.fori_loop(1, a.new_tokens, step, (out, cache))
    return out


prompt = jax.random.randint(jax.random.PRNGKey(1), (a.prompt_len,), 3, a.vocab, dtype=jnp.int32)
times = []
for i in range(a.warmup + a.iters):
    t0 = time.perf_counter()
    toks = generate(params, prompt).block_until_ready()
    times.append((time.perf_counter() - t0) * 1e3)
    print(f"request {i} ({'warmup' if i < a.warmup else 'measured'}): {times[-1]:.2f} ms", flush=True)
meas = times[a.warmup :]
hlo = generate.lower(params, prompt).compile().as_text()  # the executable already compiled (cached, no GPU work)
print(
    "RESULT "
    + json.dumps(
        dict(
            workload="jax_decode_scan",
            warmup=a.warmup,
            iters=a.iters,
            prompt_len=a.prompt_len,
            new_tokens=a.new_tokens,
            prefill_passes_per_request=1,
            decode_steps_per_request=a.new_tokens - 1,
            request_ms=times,
            ms_per_request_measured=sum(meas) / len(meas),
            ms_per_token_measured=sum(meas) / len(meas) / a.new_tokens,
            jax=jax.__version__,
            devices=[str(d) for d in jax.devices()],
            tokens=[int(t) for t in toks[:8]],
            compiled_hlo_while_loops=hlo.count(" while("),
        )
    ),
    flush=True,
)
