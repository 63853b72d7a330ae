"""A JAX CNN written with jax.lax alone (no Flax): NHWC bf16 input --batch x 128 x 128 x 3, then
4 stages of [conv 3x3 + bias + relu, conv 3x3 + bias + relu, 2x2 max pool] with 32/64/128/256 channels,
global average pool and a dense layer to 1000 logits; random weights. The whole forward pass is one jax.jit.

--warmup calls (the first one compiles: XLA autotuning runs its own kernels then), then --iters measured calls,
each followed by .block_until_ready(); no NVTX, whole process captured. XLA's defaults are kept (so it may
launch its work through CUDA graphs: command buffers).

    python3 scripts/workloads/jax_cnn.py --batch 32 --warmup 2 --iters 10
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
from jax import lax

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=32)
p.add_argument("--size", type=int, default=128)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=10)
a = p.parse_args()

key = jax.random.PRNGKey(0)
chans = [3, 32, 64, 128, 256]
params = []
for i in range(4):
    for j in range(2):
        cin = chans[i] if j == 0 else chans[i + 1]
        key, k1 = jax.random.split(key)
        w = (jax.random.normal(k1, (3, 3, cin, chans[i + 1])) * (2.0 / (9 * cin)) ** 0.5).astype(jnp.bfloat16)
        params.append((w, jnp.zeros((chans[i + 1],), jnp.bfloat16)))
key, k1, k2 = jax.random.split(key, 3)
wd = (jax.random.normal(k1, (256, 1000)) * 0.05).astype(jnp.bfloat16)
x = jax.random.normal(k2, (a.batch, a.size, a.size, 3)).astype(jnp.bfloat16)


def forward(params, wd, x):
    h = x
    for i in range(4):
        for j in range(2):
            w, b = params[2 * i + j]
            h = lax.conv_general_dilated(h, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            h = jax.nn.relu(h + b)
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    h = jnp.mean(h.astype(jnp.float32), axis=(1, 2)).astype(jnp.bfloat16)
    return h @ wd


f = jax.jit(forward)
times = []
for i in range(a.warmup + a.iters):
    t0 = time.perf_counter()
    y = f(params, wd, x).block_until_ready()
    times.append((time.perf_counter() - t0) * 1e3)
    print(f"call {i} ({'warmup' if i < a.warmup else 'measured'}): {times[-1]:.2f} ms", flush=True)
meas = times[a.warmup :]
print(
    "RESULT "
    + json.dumps(
        dict(
            workload="jax_cnn",
            call_ms=times,
            ms_per_iter_measured=sum(meas) / len(meas),
            jax=jax.__version__,
            devices=[str(d) for d in jax.devices()],
            top=[int(t) for t in jnp.argmax(y, -1)[:4]],
        )
    ),
    flush=True,
)
