"""Training steps in JAX (no Flax, no Optax): a 4-layer MLP classifier (--width hidden units, GELU), softmax
cross-entropy on random data, gradients from jax.value_and_grad and SGD with momentum written by hand; the whole
step (forward, backward, update) is one jax.jit. The loss is read with float() after every step (one host sync per
step, the usual logging line).

--warmup steps (the first one compiles: XLA autotuning runs its own kernels then), then --iters measured steps;
no NVTX, whole process captured. The truth (the RESULT line): --warmup + --iters optimizer steps.

    python3 scripts/workloads/jax_train.py --batch 256 --width 2048 --warmup 2 --iters 8
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=256)
p.add_argument("--width", type=int, default=2048)
p.add_argument("--inputs", type=int, default=512)
p.add_argument("--classes", type=int, default=1000)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=8)
a = p.parse_args()

key = jax.random.PRNGKey(0)
sizes = [a.inputs, a.width, a.width, a.width, a.classes]
params = []
for i in range(4):
    key, k1 = jax.random.split(key)
    w = jax.random.normal(k1, (sizes[i], sizes[i + 1])) * (2.0 / sizes[i]) ** 0.5
    params.append((w, jnp.zeros((sizes[i + 1],))))
key, k1, k2 = jax.random.split(key, 3)
x = jax.random.normal(k1, (a.batch, a.inputs))
y = jax.random.randint(k2, (a.batch,), 0, a.classes)
momentum = jax.tree_util.tree_map(jnp.zeros_like, params)


def loss_fn(params, x, y):
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = jax.nn.gelu(h)
    logp = jax.nn.log_softmax(h)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


@jax.jit
def train_step(params, momentum, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    momentum = jax.tree_util.tree_map(lambda m, g: 0.9 * m + g, momentum, grads)
    params = jax.tree_util.tree_map(lambda p, m: p - 0.01 * m, params, momentum)
    return params, momentum, loss


times, losses = [], []
for i in range(a.warmup + a.iters):
    t0 = time.perf_counter()
    params, momentum, loss = train_step(params, momentum, x, y)
    losses.append(float(loss))  # the host waits for the step here
    times.append((time.perf_counter() - t0) * 1e3)
    phase = "warmup" if i < a.warmup else "measured"
    print(f"step {i} ({phase}): {times[-1]:.2f} ms loss {losses[-1]:.4f}", flush=True)
meas = times[a.warmup :]
print(
    "RESULT "
    + json.dumps(
        dict(
            workload="jax_train",
            warmup_steps=a.warmup,
            measured_steps=a.iters,
            step_ms=times,
            ms_per_step_measured=sum(meas) / len(meas),
            jax=jax.__version__,
            devices=[str(d) for d in jax.devices()],
        )
    ),
    flush=True,
)
