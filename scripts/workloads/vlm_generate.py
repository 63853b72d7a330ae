"""A vision-language model answering requests: transformers' `LlavaForConditionalGeneration` built from a config
(random bf16 weights): a CLIP vision tower (--vision-layers, 224x224 images in 16x16 patches: 196 image features
per image), the multimodal projector and a small Llama (llama_size_options). Each request is one image and a text
prompt: the input ids hold 196 image tokens then --prompt-len random text tokens; `generate` (greedy, no EOS, dynamic
KV cache, eager) encodes the image inside the prompt's pass and then decodes. Batch --batch. No NVTX, whole process
captured. Truth: --warmup + --iters requests, each 1 prefill pass (vision tower + projector + the language model
over 196 + --prompt-len tokens) and --new-tokens - 1 decode passes.

    python3 scripts/workloads/vlm_generate.py --layers 4 --vision-layers 6 --prompt-len 32 --new-tokens 24
"""

import argparse

import torch
from _common import Timer, llama_size_options, result, setup
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

p = argparse.ArgumentParser()
llama_size_options(p, layers=4)
p.add_argument("--vision-layers", type=int, default=6)
p.add_argument("--vision-hidden", type=int, default=512)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--prompt-len", type=int, default=32)
p.add_argument("--new-tokens", type=int, default=24)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--iters", type=int, default=2)
a = p.parse_args()

dev = setup()
IMAGE, PATCH = 224, 16
N_IMAGE = (IMAGE // PATCH) ** 2
IMAGE_TOKEN = a.vocab  # one id past the text vocabulary
vision = CLIPVisionConfig(hidden_size=a.vision_hidden, intermediate_size=4 * a.vision_hidden,
                          num_hidden_layers=a.vision_layers, num_attention_heads=a.vision_hidden // 64,
                          image_size=IMAGE, patch_size=PATCH, projection_dim=a.vision_hidden)  # fmt: skip
text = LlamaConfig(hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
                   num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, vocab_size=a.vocab + 64,
                   max_position_embeddings=4096, bos_token_id=1, eos_token_id=None, pad_token_id=0)  # fmt: skip
cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN,
                  vision_feature_select_strategy="default", vision_feature_layer=-2,
                  image_seq_length=N_IMAGE)  # fmt: skip
for attr in ("image_token_id", "image_token_index"):
    setattr(cfg, attr, IMAGE_TOKEN)
with dev:
    model = LlavaForConditionalGeneration(cfg).to(torch.bfloat16).eval()
gc = model.generation_config
gc.eos_token_id, gc.pad_token_id, gc.bos_token_id = None, 0, 1

g = torch.Generator().manual_seed(0)
times = []
for _ in range(a.warmup + a.iters):
    text_ids = torch.randint(2, a.vocab, (a.batch, a.prompt_len), generator=g)
    image_ids = torch.full((a.batch, N_IMAGE), IMAGE_TOKEN)
    ids = torch.cat([torch.ones(a.batch, 1, dtype=torch.long), image_ids, text_ids], 1)
    pixels = torch.randn(a.batch, 3, IMAGE, IMAGE, generator=g)
    with Timer() as t, torch.inference_mode():
        out = model.generate(
            input_ids=ids.to(dev), attention_mask=torch.ones_like(ids).to(dev),
            pixel_values=pixels.to(dev, torch.bfloat16), max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens,
            do_sample=False,
        )  # fmt: skip
    times.append(t.ms)
new = out.shape[1] - ids.shape[1]
result(
    workload="vlm_generate",
    requests=a.warmup + a.iters,
    warmup_requests=a.warmup,
    prompt_tokens=int(ids.shape[1]),
    image_tokens=N_IMAGE,
    new_tokens=int(new),
    prefill_passes_per_request=1,
    decode_passes_per_request=int(new) - 1,
    request_ms=[round(t, 3) for t in times],
)
