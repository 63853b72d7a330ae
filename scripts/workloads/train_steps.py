"""Training steps: a torchvision CNN or a small transformers Llama or GPT-2, random weights and random data.

Each optimizer step runs --accum micro-batches (forward, loss, backward; the loss divided by --accum), then
``optimizer.step()`` and ``optimizer.zero_grad(set_to_none=True)``; with --loss-item 1 the loss is read with
``.item()`` once per optimizer step (the usual logging line: one host sync per step). --warmup optimizer steps,
then --iters measured ones; the host synchronizes after the warm-up and after the measured loop, no NVTX, whole
process captured. The truth (the RESULT line): --warmup + --iters optimizer steps of --accum micro-batches each.

    python3 scripts/workloads/train_steps.py --model resnet18 --batch 32 --warmup 2 --iters 8
    python3 scripts/workloads/train_steps.py --model llama --layers 2 --batch 4 --seq 128 --warmup 2 --iters 6
    python3 scripts/workloads/train_steps.py --model llama --layers 2 --batch 4 --seq 128 --accum 4 --warmup 1 --iters 4
    python3 scripts/workloads/train_steps.py --model resnet18 --batch 32 --compile 1 --warmup 3 --iters 8

--compile 1 compiles the model with torch.compile (the first steps then compile forward and backward with inductor:
Triton kernels named after the fused ops). --fp16-scaler 1 autocasts to fp16 instead of bf16 and scales the loss
with ``torch.amp.GradScaler`` (the gradients are unscaled and checked for inf/NaN before each optimizer step, and the
scale is updated after it: the mixed-precision recipe of most fp16 training loops).
"""

import argparse

import torch
from _common import SIZE_ARGS, Timer, llama_size_options, result, setup

p = argparse.ArgumentParser()
p.add_argument("--model", choices=("resnet18", "resnet50", "llama", "gpt2"), default="resnet18")
p.add_argument("--batch", type=int, default=32)
p.add_argument("--seq", type=int, default=128)
p.add_argument("--accum", type=int, default=1)
p.add_argument("--optimizer", choices=("sgd", "adamw"), default="")
p.add_argument("--bf16", type=int, default=1, help="autocast the forward to bf16")
p.add_argument("--loss-item", type=int, default=1)
p.add_argument("--fp16-scaler", type=int, default=0, help="fp16 autocast with a GradScaler")
p.add_argument("--compile", type=int, default=0, help="torch.compile the model (inductor, default mode)")
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=8)
llama_size_options(p)
a = p.parse_args()

dev = setup()
if a.model in ("llama", "gpt2"):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if a.model == "llama":
        sizes = {field: getattr(a, name) for name, field in SIZE_ARGS.items()}
        model = LlamaForCausalLM(LlamaConfig(**sizes, max_position_embeddings=4096)).to(dev).train()
    else:  # GPT-2 (learned positions, LayerNorm, GELU, dropout 0.1): --layers, --hidden, --heads, --vocab
        cfg = GPT2Config(n_layer=a.layers, n_embd=a.hidden, n_head=a.heads, vocab_size=a.vocab, n_positions=1024)
        model = GPT2LMHeadModel(cfg).to(dev).train()

    def batch():
        ids = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)
        return {"input_ids": ids, "labels": ids}

    def loss_of(b):
        return model(**b).loss

    opt_name = a.optimizer or "adamw"
else:
    import torchvision

    model = getattr(torchvision.models, a.model)(weights=None).to(dev).train()
    model = model.to(memory_format=torch.channels_last)
    crit = torch.nn.CrossEntropyLoss()

    def batch():
        x = torch.randn(a.batch, 3, 224, 224, device=dev).to(memory_format=torch.channels_last)
        return {"x": x, "y": torch.randint(0, 1000, (a.batch,), device=dev)}

    def loss_of(b):
        return crit(model(b["x"]), b["y"])

    opt_name = a.optimizer or "sgd"
if a.compile:
    model = torch.compile(model)
opt = (
    torch.optim.AdamW(model.parameters(), lr=1e-4)
    if opt_name == "adamw"
    else torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
)
scaler = torch.amp.GradScaler(dev.type) if a.fp16_scaler else None
amp_dtype = torch.float16 if a.fp16_scaler else torch.bfloat16
data = [batch() for _ in range(a.accum)]  # made once: the loop runs no data loading
losses = []


def step():
    for b in data:
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=bool(a.bf16 or a.fp16_scaler)):
            loss = loss_of(b) / a.accum
        (loss if scaler is None else scaler.scale(loss)).backward()
    if scaler is None:
        opt.step()
    else:
        scaler.step(opt)
        scaler.update()
    opt.zero_grad(set_to_none=True)
    if a.loss_item:
        losses.append(loss.item() * a.accum)


with Timer() as tw:
    for _ in range(a.warmup):
        step()
with Timer() as tm:
    for _ in range(a.iters):
        step()
print(f"warmup {a.warmup} steps {tw.ms:.1f} ms; measured {a.iters} steps {tm.ms:.1f} ms; {losses[-1:]}", flush=True)
result(
    workload="train_steps",
    model=a.model,
    compile=a.compile,
    fp16_scaler=a.fp16_scaler,
    optimizer=opt_name,
    accum=a.accum,
    warmup_steps=a.warmup,
    measured_steps=a.iters,
    micro_batches=(a.warmup + a.iters) * a.accum,
    warmup_ms=tw.ms,
    measured_ms=tm.ms,
    ms_per_step_measured=tm.ms / a.iters,
)
