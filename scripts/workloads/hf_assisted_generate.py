"""transformers assisted generation (speculative decoding, greedy): a small Llama target and a 1-layer assistant.

Target: LlamaConfig with --layers layers (hidden 1024, 16 heads, 4 KV heads, MLP 2816, vocab 32000, random
bf16 weights). Assistant: the same config with 1 layer, same vocab. So that the assistant's drafts are often right
(with independent random weights they never are), the assistant SHARES the target's token embedding, final norm and
LM head, and the residual contributions of every layer of both models (attention o_proj and MLP down_proj weights)
are scaled by --layer-scale: the next token is then mostly decided by the shared embedding -> LM head path, and the
layers' differences make some drafts wrong (partial acceptance, like a real draft model).

`model.generate(..., assistant_model=assistant)`, greedy, batch 1, --prompt-len prompt, exactly --new-tokens new
tokens (no EOS). The assistant drafts up to --draft tokens per round (num_assistant_tokens, schedule --schedule:
"constant" by default, so with confidence threshold 0 = off it always drafts the full number unless near the end;
"heuristic", transformers' default, adds 2 after a round whose drafts were all accepted and takes 1 away otherwise),
then the target verifies them all in ONE forward pass over (the tokens it has not seen + the drafts); the accepted
drafts + 1 target token are appended. --warmup warm-up requests then --iters measured ones, each followed by
torch.cuda.synchronize() and a pause of --pause-ms (50 ms). Eager PyTorch, no NVTX, whole process captured. Forward
passes of both models are counted on the CPU (forward pre-hooks on the two LlamaForCausalLM modules, recording the
number of input tokens of each pass) and the accepted drafts per round through
AssistedCandidateGenerator.update_candidate_strategy (num_matches).

--sample: speculative sampling (do_sample, top-k 50; the target accepts drafts by rejection sampling). --prompt-lookup
N: no assistant at all (prompt lookup decoding: drafts are copied from the prompt, the target verifies them).

    python3 scripts/workloads/hf_assisted_generate.py --layers 4 --new-tokens 32 --warmup 1 --iters 2
"""

import argparse
import time

import torch
from _common import Timer, random_causal_lm, result, setup
from transformers import LlamaConfig
from transformers.generation import candidate_generator as cg

p = argparse.ArgumentParser()
p.add_argument("--layers", type=int, default=4)
p.add_argument("--assistant-layers", type=int, default=1)
p.add_argument("--hidden", type=int, default=1024)
p.add_argument("--intermediate", type=int, default=2816)
p.add_argument("--heads", type=int, default=16)
p.add_argument("--kv-heads", type=int, default=4)
p.add_argument("--vocab", type=int, default=32000)
p.add_argument("--prompt-len", type=int, default=48)
p.add_argument("--new-tokens", type=int, default=32)
p.add_argument("--draft", type=int, default=5)
p.add_argument("--schedule", default="constant", help="num_assistant_tokens_schedule (transformers: heuristic)")
p.add_argument("--layer-scale", type=float, default=0.005)
p.add_argument("--sample", action="store_true", help="do_sample=True, top_k 50 (speculative sampling)")
p.add_argument("--prompt-lookup", type=int, default=0, help="no assistant: prompt lookup decoding with N tokens")
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=2)
p.add_argument("--pause-ms", type=float, default=50.0)
a = p.parse_args()

dev = setup()
target = random_causal_lm(LlamaConfig, dev, a)
assistant = random_causal_lm(LlamaConfig, dev, a, num_hidden_layers=a.assistant_layers)
with torch.no_grad():
    assistant.model.embed_tokens.weight.copy_(target.model.embed_tokens.weight)
    assistant.model.norm.weight.copy_(target.model.norm.weight)
    assistant.lm_head.weight.copy_(target.lm_head.weight)
    for m in (target, assistant):
        for layer in m.model.layers:
            layer.self_attn.o_proj.weight.mul_(a.layer_scale)
            layer.mlp.down_proj.weight.mul_(a.layer_scale)
agc = assistant.generation_config
agc.num_assistant_tokens = a.draft
agc.num_assistant_tokens_schedule = a.schedule
agc.assistant_confidence_threshold = 0.0

passes = {"target": [], "assistant": []}


def counter(name):
    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        passes[name].append(int(ids.shape[1]) if ids is not None else -1)

    return hook


target.register_forward_pre_hook(counter("target"), with_kwargs=True)
assistant.register_forward_pre_hook(counter("assistant"), with_kwargs=True)
matches = []
_orig_update = cg.AssistedCandidateGenerator.update_candidate_strategy


def _update(self, input_ids, scores, num_matches):
    matches.append(int(num_matches))
    return _orig_update(self, input_ids, scores, num_matches)


cg.AssistedCandidateGenerator.update_candidate_strategy = _update

gen = dict(max_new_tokens=a.new_tokens, min_new_tokens=None, do_sample=a.sample, eos_token_id=None, pad_token_id=0)
if a.sample:
    gen.update(top_k=50, temperature=1.0)
helper = dict(prompt_lookup_num_tokens=a.prompt_lookup) if a.prompt_lookup else dict(assistant_model=assistant)
prompt = torch.randint(3, a.vocab, (1, a.prompt_len), device=dev)
mask = torch.ones_like(prompt)

times, per_request = [], []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        for v in passes.values():
            v.clear()
        matches.clear()
        with Timer() as t:
            out = target.generate(input_ids=prompt, attention_mask=mask, **helper, **gen)
        assert out.shape[1] == a.prompt_len + a.new_tokens, out.shape
        times.append(t.ms)
        rec = dict(
            target_passes=len(passes["target"]),
            target_tokens_per_pass=list(passes["target"]),
            assistant_passes=len(passes["assistant"]),
            assistant_tokens_per_pass=list(passes["assistant"]),
            accepted_drafts_per_round=list(matches),
        )
        per_request.append(rec)
        print(
            f"request {i} ({'warmup' if i < a.warmup else 'measured'}): {t.ms:.1f} ms, "
            f"{out.shape[1] - a.prompt_len} new tokens, {rec}",
            flush=True,
        )
        time.sleep(a.pause_ms / 1000)
meas = times[a.warmup :]
result(
    workload="hf_assisted_generate",
    warmup=a.warmup,
    iters=a.iters,
    new_tokens=a.new_tokens,
    draft=a.draft,
    request_ms=times,
    ms_per_request_measured=sum(meas) / len(meas),
    ms_per_token_measured=sum(meas) / len(meas) / a.new_tokens,
    per_request=per_request,
)
