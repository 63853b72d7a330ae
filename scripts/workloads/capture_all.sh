#!/bin/bash
# Captures the traces of tests/data/runs/ on the GPU machine (see tests/data/runs/README.md).
# From the repo root there, after `source .nsys-kit/env.sh`:  bash scripts/workloads/capture_all.sh NAME...
# NAME is one of the cases below; each is captured under nsys (with an empty torch.compile cache), then run once
# more without nsys (unprofiled timings; the compile cache is then warm). Cases with WARM=1 run unprofiled first
# (warming the compile cache) and are then captured with that warm cache. The scripts are run from a copy in /tmp/wl with cwd /tmp so that no checkout path enters the trace.
# Results land in $OUT (traces and logs packed as traces.tgz.part-*). DEADLINE_S bounds the whole run; NO_UNPROFILED=1
# skips the runs without nsys.
set -u
OUT=${OUT:-/tmp/out}; T=/tmp/traces; L=/tmp/wlogs; mkdir -p "$T" "$L" "$OUT" /tmp/wl
cp scripts/workloads/*.py scripts/workloads/*.cu /tmp/wl/
FLAGS="--trace=cuda,nvtx --sample=none --cpuctxsw=none --cuda-graph-trace=node --export=sqlite"
t_start=$(date +%s); DEADLINE_S=${DEADLINE_S:-540}
declare -A EXTRA ARGS WARM BUILD
EXTRA[hf_llama_generate_whole]="";                  ARGS[hf_llama_generate_whole]="hf_llama_generate.py --layers 2 --prompt-len 48 --new-tokens 20 --warmup 1 --iters 2"
EXTRA[hf_moe_generate_sample_capture]="-c cudaProfilerApi"; ARGS[hf_moe_generate_sample_capture]="hf_moe_generate.py --layers 2 --experts 8 --topk-experts 2 --batch 4 --prompt-len 32 --new-tokens 12 --top-k 50 --warmup 2 --iters 2"
EXTRA[hf_qwen3_prefill_whole]="";                   ARGS[hf_qwen3_prefill_whole]="hf_prefill.py --layers 8 --batch 2 --prompt-len 512 --warmup 1 --iters 5"
EXTRA[compile_decode_graphs_whole]="";              ARGS[compile_decode_graphs_whole]="compile_decode.py --mode reduce-overhead --layers 2 --batch 2 --warmup 1 --warmup-steps 16 --iters 3 --steps 40"
EXTRA[compile_decode_default_whole]="";             ARGS[compile_decode_default_whole]="compile_decode.py --mode default --layers 2 --batch 2 --warmup 1 --warmup-steps 16 --iters 2 --steps 32"
EXTRA[hf_mistral_static_compile_whole]="";       ARGS[hf_mistral_static_compile_whole]="hf_static_compile_generate.py --layers 2 --prompt-len 40 --new-tokens 20 --warmup 2 --iters 2"
EXTRA[compile_decode_default_warmcache]="";     ARGS[compile_decode_default_warmcache]="compile_decode.py --mode default --layers 4 --batch 2 --warmup 1 --warmup-steps 16 --iters 2 --steps 32"; WARM[compile_decode_default_warmcache]=1
EXTRA[bert_base_nvtx_whole]="";                     ARGS[bert_base_nvtx_whole]="bert_encoder_nvtx.py --layers 12 --batch 8 --seq 128 --warmup 3 --iters 10"
EXTRA[resnet50_fp16_cl_whole]="";                   ARGS[resnet50_fp16_cl_whole]="resnet_cnn.py --arch resnet50 --batch 32 --warmup 2 --iters 10"
EXTRA[resnet18_requests_whole]="";                ARGS[resnet18_requests_whole]="cnn_requests.py --arch resnet18 --dtype fp16 --batch 8 --warmup 2 --iters 4 --passes 5"
EXTRA[hf_qwen2_sample_batch3_whole]="";           ARGS[hf_qwen2_sample_batch3_whole]="hf_sample_generate.py --layers 2 --batch 3 --prompt-len 40 --new-tokens 16 --top-k 50 --top-p 0.9 --warmup 1 --iters 2"
EXTRA[resnet18_bench_nvtx_requests_whole]="";     ARGS[resnet18_bench_nvtx_requests_whole]="cnn_requests.py --arch resnet18 --dtype fp16 --batch 8 --warmup 2 --iters 4 --passes 5 --cudnn-benchmark 1 --nvtx-requests 1"
EXTRA[detector_frcnn_whole]="";                    ARGS[detector_frcnn_whole]="detector.py --images 2 --warmup 1 --iters 10"
EXTRA[mobilenet_readback_whole]="";                ARGS[mobilenet_readback_whole]="cnn_readback.py --arch mobilenet_v3_large --batch 8 --warmup 2 --iters 20"
EXTRA[gpt2_beam_generate_whole]="";                ARGS[gpt2_beam_generate_whole]="hf_beam_generate.py --layers 4 --prompt-len 48 --new-tokens 16 --warmup 1 --iters 2"
EXTRA[t5_generate_whole]="";                       ARGS[t5_generate_whole]="hf_encdec_generate.py --layers 4 --input-len 64 --new-tokens 24 --warmup 1 --iters 2"
EXTRA[whisper_tiny_generate_whole]="";             ARGS[whisper_tiny_generate_whole]="hf_whisper_generate.py --layers 4 --new-tokens 32 --warmup 1 --iters 2"
EXTRA[jax_lax_cnn_whole]="";                       ARGS[jax_lax_cnn_whole]="jax_cnn.py --batch 32 --warmup 2 --iters 10"
EXTRA[compile_resnet18_default_whole]="";          ARGS[compile_resnet18_default_whole]="compile_resnet.py --arch resnet18 --batch 16 --warmup 2 --iters 10"
# a compiled CUDA C++ program (no Python): BUILD runs first, then ARGS is the command itself (not a python3 script)
EXTRA[cuda_cpp_requests_whole]="";                 ARGS[cuda_cpp_requests_whole]="/tmp/wl/cuda_requests --warmup 0 --requests 5 --decode 20 --prompt 128"
BUILD[cuda_cpp_requests_whole]="nvcc -O2 -arch=sm_90 -o /tmp/wl/cuda_requests /tmp/wl/cuda_requests.cu"
EXTRA[diffusion_unet_whole]="";                    ARGS[diffusion_unet_whole]="diffusion_unet.py --warmup 2 --iters 3 --steps 20"
EXTRA[jax_decode_scan_whole]="";                   ARGS[jax_decode_scan_whole]="jax_decode_scan.py --prompt-len 32 --new-tokens 32 --warmup 1 --iters 3"
EXTRA[hf_assisted_generate_whole]="";              ARGS[hf_assisted_generate_whole]="hf_assisted_generate.py --layers 4 --new-tokens 32 --draft 5 --warmup 1 --iters 2"
EXTRA[hf_assisted_generate_d3_whole]="";           ARGS[hf_assisted_generate_d3_whole]="hf_assisted_generate.py --layers 6 --assistant-layers 2 --prompt-len 64 --new-tokens 40 --draft 3 --warmup 2 --iters 3"
EXTRA[hf_assisted_small_whole]="";                 ARGS[hf_assisted_small_whole]="hf_assisted_generate.py --layers 2 --prompt-len 32 --new-tokens 16 --draft 4 --warmup 1 --iters 2"
EXTRA[hf_assisted_heuristic_whole]="";             ARGS[hf_assisted_heuristic_whole]="hf_assisted_generate.py --layers 4 --new-tokens 48 --draft 5 --schedule heuristic --warmup 1 --iters 2"
EXTRA[hf_assisted_sample_whole]="";                ARGS[hf_assisted_sample_whole]="hf_assisted_generate.py --layers 4 --new-tokens 32 --draft 5 --sample --warmup 1 --iters 2"
EXTRA[hf_prompt_lookup_whole]="";                  ARGS[hf_prompt_lookup_whole]="hf_assisted_generate.py --layers 4 --prompt-len 64 --new-tokens 32 --prompt-lookup 5 --warmup 1 --iters 2"
EXTRA[hf_prompt_lookup_small_whole]="";            ARGS[hf_prompt_lookup_small_whole]="hf_assisted_generate.py --layers 2 --prompt-len 32 --new-tokens 16 --prompt-lookup 4 --warmup 1 --iters 2"
EXTRA[hf_assisted_sample_small_whole]="";          ARGS[hf_assisted_sample_small_whole]="hf_assisted_generate.py --layers 2 --prompt-len 32 --new-tokens 16 --draft 4 --sample --warmup 1 --iters 2"
EXTRA[hf_continuous_batching_whole]="";            ARGS[hf_continuous_batching_whole]="hf_continuous_batching.py --layers 2 --prompts 8 --new-tokens 16 --warmup 1 --iters 2"
EXTRA[cublas_graph_decode_whole]="";               ARGS[cublas_graph_decode_whole]="/tmp/wl/cublas_graph_decode --warmup 0 --requests 4 --decode 24 --prompt 128"
BUILD[cublas_graph_decode_whole]="nvcc -O2 -arch=sm_90 -o /tmp/wl/cublas_graph_decode /tmp/wl/cublas_graph_decode.cu -lcublas"
EXTRA[train_resnet18_whole]="";                    ARGS[train_resnet18_whole]="train_steps.py --model resnet18 --batch 32 --warmup 2 --iters 8"
EXTRA[train_resnet18_nosync_whole]="";             ARGS[train_resnet18_nosync_whole]="train_steps.py --model resnet18 --batch 32 --loss-item 0 --warmup 2 --iters 8"
EXTRA[train_llama_whole]="";                       ARGS[train_llama_whole]="train_steps.py --model llama --layers 2 --batch 4 --seq 128 --warmup 2 --iters 6"
EXTRA[train_llama_accum_whole]="";                 ARGS[train_llama_accum_whole]="train_steps.py --model llama --layers 2 --batch 4 --seq 128 --accum 4 --warmup 1 --iters 4"
EXTRA[train_resnet50_adamw_accum_whole]="";        ARGS[train_resnet50_adamw_accum_whole]="train_steps.py --model resnet50 --batch 32 --optimizer adamw --accum 2 --warmup 1 --iters 4"
EXTRA[train_resnet18_compile_whole]="";            ARGS[train_resnet18_compile_whole]="train_steps.py --model resnet18 --batch 32 --compile 1 --warmup 3 --iters 8"
EXTRA[train_llama_compile_whole]="";               ARGS[train_llama_compile_whole]="train_steps.py --model llama --layers 2 --batch 4 --seq 128 --compile 1 --warmup 3 --iters 6"
EXTRA[jax_train_mlp_whole]="";                     ARGS[jax_train_mlp_whole]="jax_train.py --batch 256 --width 2048 --warmup 2 --iters 8"
EXTRA[hf_varlen_generate_whole]="";               ARGS[hf_varlen_generate_whole]="hf_varlen_generate.py --model llama --prompt-lens 24,96,48,160 --new-tokens 8,24,16,32 --warmup 1 --iters 3"
EXTRA[hf_mamba_generate_whole]="";                 ARGS[hf_mamba_generate_whole]="hf_varlen_generate.py --model mamba --hidden 768 --layers 4 --prompt-lens 32 --new-tokens 16 --warmup 1 --iters 2"
EXTRA[hf_embed_requests_whole]="";                 ARGS[hf_embed_requests_whole]="hf_embed_requests.py --layers 6 --batch 4 --seq-lens 37,128,64,200,15,96,150,48 --warmup 2 --iters 6"
EXTRA[train_gpt2_accum_whole]="";                  ARGS[train_gpt2_accum_whole]="train_steps.py --model gpt2 --layers 4 --hidden 768 --heads 12 --batch 8 --seq 128 --accum 3 --warmup 1 --iters 4"
EXTRA[hf_embed_requests_b8_whole]="";              ARGS[hf_embed_requests_b8_whole]="hf_embed_requests.py --layers 12 --batch 8 --seq-lens 120,33,256,77,180,64,16,140,99,200 --warmup 2 --iters 8"
EXTRA[hf_mamba_generate_l8_whole]="";              ARGS[hf_mamba_generate_l8_whole]="hf_varlen_generate.py --model mamba --hidden 1024 --layers 8 --prompt-lens 64,24,48 --new-tokens 24,12,20 --warmup 1 --iters 3"
EXTRA[train_resnet50_sgd_accum3_whole]="";         ARGS[train_resnet50_sgd_accum3_whole]="train_steps.py --model resnet50 --batch 16 --accum 3 --warmup 2 --iters 3"
EXTRA[graph_decode_whole]="";                      ARGS[graph_decode_whole]="graph_decode.py --layers 4 --batch 2 --prompt-len 64 --new-tokens 32 --warmup 1 --iters 3"
EXTRA[triton_mlp_whole]="";                        ARGS[triton_mlp_whole]="triton_mlp.py --layers 4 --tokens 256 --hidden 1024 --warmup 3 --iters 20"
EXTRA[rnn_requests_whole]="";                      ARGS[rnn_requests_whole]="rnn_requests.py --layers 2 --hidden 512 --batch 16 --seq 100 --warmup 2 --iters 8"
EXTRA[train_llama_fp16scaler_whole]="";            ARGS[train_llama_fp16scaler_whole]="train_steps.py --model llama --layers 2 --batch 4 --seq 128 --fp16-scaler 1 --warmup 2 --iters 6"
EXTRA[rnn_generate_whole]="";                      ARGS[rnn_generate_whole]="rnn_generate.py --layers 2 --hidden 1024 --batch 4 --prompt-len 64 --new-tokens 32 --warmup 1 --iters 3"
EXTRA[gru_generate_whole]="";                      ARGS[gru_generate_whole]="rnn_generate.py --cell gru --layers 3 --hidden 768 --batch 2 --prompt-len 100 --new-tokens 20 --warmup 1 --iters 4"
EXTRA[gru_requests_whole]="";                      ARGS[gru_requests_whole]="rnn_requests.py --cell gru --layers 3 --hidden 1024 --batch 64 --seq 50 --warmup 2 --iters 8"
EXTRA[resnet50_graph_requests_whole]="";           ARGS[resnet50_graph_requests_whole]="cnn_requests.py --arch resnet50 --dtype fp16 --batch 16 --warmup 2 --iters 6 --passes 3 --graph 1"
EXTRA[hf_manual_decode_whole]="";                  ARGS[hf_manual_decode_whole]="hf_manual_decode.py --layers 2 --batch 2 --prompt-len 48 --new-tokens 24 --warmup 1 --iters 3"
EXTRA[hf_nocache_decode_whole]="";                 ARGS[hf_nocache_decode_whole]="hf_manual_decode.py --layers 2 --batch 2 --prompt-len 48 --new-tokens 24 --no-cache 1 --warmup 1 --iters 3"
EXTRA[cuda_cpp_host_sample_whole]="";              ARGS[cuda_cpp_host_sample_whole]="/tmp/wl/cuda_requests --warmup 1 --requests 4 --decode 20 --prompt 96 --host-sample 1"
BUILD[cuda_cpp_host_sample_whole]="nvcc -O2 -arch=sm_90 -o /tmp/wl/cuda_requests /tmp/wl/cuda_requests.cu"
EXTRA[gpt2_manual_sample_whole]="";                ARGS[gpt2_manual_sample_whole]="hf_manual_decode.py --model gpt2 --layers 4 --hidden 768 --heads 12 --batch 4 --prompt-len 40 --new-tokens 32 --sample 1 --warmup 2 --iters 2"
EXTRA[cuda_cpp_gpu_tokens_whole]="";               ARGS[cuda_cpp_gpu_tokens_whole]="/tmp/wl/cuda_requests --warmup 1 --requests 3 --decode 30 --prompt 64 --gpu-tokens 1"
BUILD[cuda_cpp_gpu_tokens_whole]="nvcc -O2 -arch=sm_90 -o /tmp/wl/cuda_requests /tmp/wl/cuda_requests.cu"
EXTRA[gpt2_manual_argmax_whole]="";                ARGS[gpt2_manual_argmax_whole]="hf_manual_decode.py --model gpt2 --layers 6 --hidden 768 --heads 12 --batch 1 --prompt-len 32 --new-tokens 40 --warmup 1 --iters 3"
EXTRA[lstm_small_requests_whole]="";               ARGS[lstm_small_requests_whole]="rnn_requests.py --cell lstm --layers 1 --hidden 256 --batch 1 --seq 200 --warmup 2 --iters 6"
EXTRA[hf_llama_nocache_generate_whole]="";         ARGS[hf_llama_nocache_generate_whole]="hf_llama_generate.py --no-cache 1 --layers 4 --hidden 2048 --intermediate 5632 --batch 4 --prompt-len 256 --new-tokens 32 --warmup 1 --iters 2"
EXTRA[hf_llama_cache_generate_big_whole]="";       ARGS[hf_llama_cache_generate_big_whole]="hf_llama_generate.py --layers 4 --hidden 2048 --intermediate 5632 --batch 4 --prompt-len 256 --new-tokens 32 --warmup 1 --iters 2"
EXTRA[gpt2_manual_nocache_whole]="";               ARGS[gpt2_manual_nocache_whole]="hf_manual_decode.py --model gpt2 --layers 4 --hidden 768 --heads 12 --batch 1 --prompt-len 32 --new-tokens 40 --no-cache 1 --warmup 1 --iters 3"
EXTRA[hf_continuous_batching_p16_whole]="";        ARGS[hf_continuous_batching_p16_whole]="hf_continuous_batching.py --layers 4 --prompts 16 --min-len 24 --max-len 200 --new-tokens 24 --warmup 1 --iters 2"
EXTRA[hf_continuous_batching_p12_whole]="";        ARGS[hf_continuous_batching_p12_whole]="hf_continuous_batching.py --layers 3 --prompts 12 --min-len 8 --max-len 300 --new-tokens 20 --warmup 1 --iters 3"
EXTRA[train_gpt2_accum4_whole]="";                 ARGS[train_gpt2_accum4_whole]="train_steps.py --model gpt2 --layers 6 --hidden 512 --heads 8 --batch 4 --seq 256 --accum 4 --warmup 2 --iters 3"
EXTRA[train_gpt2_whole]="";                        ARGS[train_gpt2_whole]="train_steps.py --model gpt2 --layers 4 --hidden 768 --heads 12 --batch 8 --seq 128 --warmup 2 --iters 6"
EXTRA[t5_nocache_generate_whole]="";               ARGS[t5_nocache_generate_whole]="hf_encdec_generate.py --layers 4 --input-len 64 --new-tokens 24 --no-cache 1 --warmup 1 --iters 2"
EXTRA[qwen2_sample_nocache_whole]="";              ARGS[qwen2_sample_nocache_whole]="hf_sample_generate.py --layers 2 --batch 3 --prompt-len 40 --new-tokens 16 --top-k 50 --top-p 0.9 --no-cache 1 --warmup 1 --iters 2"
EXTRA[hf_llama_long_prompt_whole]="";              ARGS[hf_llama_long_prompt_whole]="hf_llama_generate.py --layers 4 --batch 8 --prompt-len 2048 --new-tokens 16 --warmup 1 --iters 2"
EXTRA[recsys_requests_whole]="";                 ARGS[recsys_requests_whole]="recsys_requests.py --tables 8 --rows 200000 --dim 64 --batch 2048 --warmup 3 --iters 20"
EXTRA[gnn_requests_whole]="";                     ARGS[gnn_requests_whole]="gnn_requests.py --nodes 50000 --degree 10 --hidden 256 --warmup 2 --iters 15"
EXTRA[vlm_generate_whole]="";                     ARGS[vlm_generate_whole]="vlm_generate.py --layers 4 --vision-layers 6 --prompt-len 32 --new-tokens 24 --warmup 1 --iters 2"
EXTRA[rag_requests_whole]="";                     ARGS[rag_requests_whole]="rag_requests.py --enc-layers 6 --layers 4 --docs 16 --top 3 --new-tokens 20 --warmup 1 --iters 3"
EXTRA[hf_varlen_extreme_whole]="";                ARGS[hf_varlen_extreme_whole]="hf_varlen_generate.py --model llama --layers 4 --prompt-lens 16,1024,64,512 --new-tokens 40,4,12,28 --warmup 1 --iters 4"
EXTRA[two_tower_requests_whole]="";               ARGS[two_tower_requests_whole]="two_tower_requests.py --candidates 2048 --history 50 --top 100 --warmup 2 --iters 20"
EXTRA[gnn_spmm_requests_whole]="";                ARGS[gnn_spmm_requests_whole]="gnn_requests.py --aggregate spmm --nodes 30000 --degree 8 --hidden 256 --warmup 2 --iters 12"
EXTRA[hf_qwen2_varlen_whole]="";                  ARGS[hf_qwen2_varlen_whole]="hf_varlen_generate.py --model qwen2 --layers 4 --prompt-lens 200,40,700,90,200 --new-tokens 10,30,6,20,10 --warmup 1 --iters 4"
EXTRA[compile_vit_batches_whole]="";              ARGS[compile_vit_batches_whole]="compile_vit_batches.py --batches 8,1,32,8,4 --warmup 1 --iters 9"
EXTRA[hf_llama_offloaded_b1_whole]="";            ARGS[hf_llama_offloaded_b1_whole]="hf_llama_generate.py --cache offloaded --layers 4 --batch 1 --prompt-len 128 --new-tokens 24 --host-prompt 1 --warmup 1 --iters 2"
EXTRA[hf_llama_offloaded_b16_whole]="";           ARGS[hf_llama_offloaded_b16_whole]="hf_llama_generate.py --cache offloaded --layers 4 --batch 16 --prompt-len 256 --new-tokens 24 --host-prompt 1 --warmup 1 --iters 2"
EXTRA[hf_llama_b32_hostprompt_whole]="";          ARGS[hf_llama_b32_hostprompt_whole]="hf_llama_generate.py --layers 4 --batch 32 --prompt-len 512 --new-tokens 16 --host-prompt 1 --warmup 1 --iters 3"
EXTRA[bert_classify_requests_whole]="";           ARGS[bert_classify_requests_whole]="bert_classify_requests.py --layers 6 --batch 32 --seq 128 --warmup 2 --iters 15"
EXTRA[vit_readback_whole]="";                     ARGS[vit_readback_whole]="cnn_readback.py --arch vit_b_16 --batch 8 --warmup 2 --iters 20"
EXTRA[swin_readback_whole]="";                    ARGS[swin_readback_whole]="cnn_readback.py --arch swin_t --batch 8 --warmup 2 --iters 20"
# configurations never analyzed before they were captured (a check of the rules on runs they were not written on)
EXTRA[hf_moe_b1_long_whole]="";                   ARGS[hf_moe_b1_long_whole]="hf_moe_generate.py --layers 4 --batch 1 --prompt-len 128 --new-tokens 40 --warmup 1 --iters 3"
EXTRA[gpt2_beam8_whole]="";                       ARGS[gpt2_beam8_whole]="hf_beam_generate.py --layers 2 --beams 8 --prompt-len 100 --new-tokens 30 --warmup 2 --iters 3"
EXTRA[whisper_long_whole]="";                     ARGS[whisper_long_whole]="hf_whisper_generate.py --layers 2 --new-tokens 60 --warmup 2 --iters 4"
EXTRA[t5_long_input_whole]="";                    ARGS[t5_long_input_whole]="hf_encdec_generate.py --layers 6 --input-len 200 --new-tokens 12 --warmup 1 --iters 4"
EXTRA[effnet_b1_requests_whole]="";               ARGS[effnet_b1_requests_whole]="cnn_requests.py --arch efficientnet_b0 --dtype fp32 --batch 1 --warmup 3 --iters 5 --passes 3"
EXTRA[qwen2_sample_b8_whole]="";                  ARGS[qwen2_sample_b8_whole]="hf_sample_generate.py --layers 4 --batch 8 --prompt-len 200 --new-tokens 50 --warmup 1 --iters 2"
EXTRA[bert_large_batch_whole]="";                 ARGS[bert_large_batch_whole]="bert_classify_requests.py --layers 12 --batch 16 --seq 256 --warmup 3 --iters 10"
EXTRA[jax_decode_long_whole]="";                  ARGS[jax_decode_long_whole]="jax_decode_scan.py --prompt-len 100 --new-tokens 50 --max-len 160 --warmup 2 --iters 2"
# encoder-decoder runs of short outputs (a few decoder passes after each encoder pass) and speculative runs beside them
EXTRA[t5_short_out_whole]="";                     ARGS[t5_short_out_whole]="hf_encdec_generate.py --layers 6 --input-len 128 --new-tokens 8 --warmup 1 --iters 5"
EXTRA[t5_mid_out_whole]="";                       ARGS[t5_mid_out_whole]="hf_encdec_generate.py --layers 4 --input-len 300 --new-tokens 16 --warmup 2 --iters 3"
EXTRA[whisper_short_out_whole]="";                ARGS[whisper_short_out_whole]="hf_whisper_generate.py --layers 4 --new-tokens 10 --warmup 1 --iters 5"
EXTRA[hf_assisted_d2_long_whole]="";              ARGS[hf_assisted_d2_long_whole]="hf_assisted_generate.py --layers 6 --assistant-layers 1 --prompt-len 200 --new-tokens 24 --draft 2 --warmup 1 --iters 4"
# the same with no pause between requests (back to back: only the host's own work between them), batches, BART
EXTRA[t5_nopause_whole]="";                       ARGS[t5_nopause_whole]="hf_encdec_generate.py --layers 4 --input-len 96 --new-tokens 6 --pause-ms 0 --warmup 1 --iters 6"
EXTRA[t5_b8_3tok_whole]="";                       ARGS[t5_b8_3tok_whole]="hf_encdec_generate.py --layers 6 --input-len 64 --new-tokens 3 --batch 8 --pause-ms 0 --warmup 2 --iters 8"
EXTRA[bart_b4_short_whole]="";                    ARGS[bart_b4_short_whole]="hf_encdec_generate.py --model bart --layers 6 --input-len 256 --new-tokens 10 --batch 4 --pause-ms 0 --warmup 2 --iters 4"
EXTRA[bart_long_out_whole]="";                    ARGS[bart_long_out_whole]="hf_encdec_generate.py --model bart --layers 3 --input-len 64 --new-tokens 40 --pause-ms 20 --warmup 1 --iters 3"
EXTRA[whisper_nopause_whole]="";                  ARGS[whisper_nopause_whole]="hf_whisper_generate.py --layers 2 --new-tokens 6 --pause-ms 0 --warmup 1 --iters 6"
EXTRA[hf_assisted_nopause_whole]="";              ARGS[hf_assisted_nopause_whole]="hf_assisted_generate.py --layers 4 --prompt-len 64 --new-tokens 24 --draft 4 --pause-ms 0 --warmup 1 --iters 3"
# other model families' own modelling code, other sizes, never analyzed before capture (held-out checks)
EXTRA[opt_generate_whole]="";                     ARGS[opt_generate_whole]="hf_family_generate.py --family opt --layers 4 --prompt-len 64 --new-tokens 24 --warmup 1 --iters 3"
EXTRA[neox_generate_b2_whole]="";                 ARGS[neox_generate_b2_whole]="hf_family_generate.py --family gpt_neox --layers 3 --batch 2 --prompt-len 100 --new-tokens 16 --warmup 1 --iters 3"
EXTRA[falcon_generate_nopause_whole]="";          ARGS[falcon_generate_nopause_whole]="hf_family_generate.py --family falcon --layers 4 --prompt-len 40 --new-tokens 32 --pause-ms 0 --warmup 1 --iters 3"
EXTRA[phi_generate_whole]="";                     ARGS[phi_generate_whole]="hf_family_generate.py --family phi --layers 2 --prompt-len 128 --new-tokens 20 --warmup 2 --iters 3"
EXTRA[gemma_generate_b4_whole]="";                ARGS[gemma_generate_b4_whole]="hf_family_generate.py --family gemma --layers 4 --batch 4 --prompt-len 48 --new-tokens 28 --warmup 1 --iters 2"
EXTRA[bloom_generate_whole]="";                   ARGS[bloom_generate_whole]="hf_family_generate.py --family bloom --layers 4 --prompt-len 64 --new-tokens 24 --warmup 1 --iters 3"
EXTRA[gptj_generate_whole]="";                    ARGS[gptj_generate_whole]="hf_family_generate.py --family gptj --layers 3 --prompt-len 80 --new-tokens 20 --warmup 1 --iters 3"
EXTRA[convnext_requests_whole]="";                ARGS[convnext_requests_whole]="cnn_requests.py --arch convnext_tiny --dtype fp16 --batch 4 --warmup 2 --iters 4 --passes 3"
EXTRA[jax_decode_short_prompt_whole]="";          ARGS[jax_decode_short_prompt_whole]="jax_decode_scan.py --layers 3 --prompt-len 16 --new-tokens 64 --max-len 96 --warmup 1 --iters 3"
EXTRA[lstm_generate_b1_whole]="";                 ARGS[lstm_generate_b1_whole]="rnn_generate.py --cell lstm --layers 1 --hidden 512 --batch 1 --prompt-len 32 --new-tokens 48 --warmup 2 --iters 3"
# held out, second round (configurations never analyzed; one warm-up request each, the truth in the RESULT line)
EXTRA[gemma_long_nopause_whole]="";               ARGS[gemma_long_nopause_whole]="hf_family_generate.py --family gemma --layers 6 --prompt-len 256 --new-tokens 40 --pause-ms 0 --warmup 1 --iters 3"
EXTRA[bloom_b8_whole]="";                         ARGS[bloom_b8_whole]="hf_family_generate.py --family bloom --batch 8 --prompt-len 32 --new-tokens 12 --warmup 1 --iters 4"
EXTRA[falcon_long_out_whole]="";                  ARGS[falcon_long_out_whole]="hf_family_generate.py --family falcon --layers 2 --prompt-len 16 --new-tokens 64 --warmup 1 --iters 2"
EXTRA[graph_decode_b8_whole]="";                  ARGS[graph_decode_b8_whole]="graph_decode.py --layers 6 --batch 8 --prompt-len 128 --new-tokens 48 --warmup 1 --iters 3"
EXTRA[stream_pipeline_r50_whole]="";              ARGS[stream_pipeline_r50_whole]="stream_pipeline.py --arch resnet50 --batch 8 --warmup 1 --iters 15"
EXTRA[clip_small_whole]="";                       ARGS[clip_small_whole]="clip_requests.py --images 4 --texts 8 --warmup 1 --iters 10"
EXTRA[gpt2_beam2_whole]="";                       ARGS[gpt2_beam2_whole]="hf_beam_generate.py --layers 6 --beams 2 --prompt-len 96 --new-tokens 24 --warmup 1 --iters 2"
EXTRA[qwen2_sample_long_whole]="";                ARGS[qwen2_sample_long_whole]="hf_sample_generate.py --layers 4 --batch 1 --prompt-len 200 --new-tokens 30 --warmup 1 --iters 3"
EXTRA[lstm2_b4_whole]="";                         ARGS[lstm2_b4_whole]="rnn_generate.py --cell lstm --layers 2 --hidden 1024 --batch 4 --prompt-len 64 --new-tokens 32 --warmup 1 --iters 3"
EXTRA[jax_decode_l2_whole]="";                    ARGS[jax_decode_l2_whole]="jax_decode_scan.py --layers 2 --prompt-len 64 --new-tokens 24 --max-len 96 --warmup 1 --iters 4"
# held out, third round
EXTRA[opt_b4_nopause_whole]="";                   ARGS[opt_b4_nopause_whole]="hf_family_generate.py --family opt --batch 4 --prompt-len 200 --new-tokens 16 --pause-ms 0 --warmup 1 --iters 3"
EXTRA[gptj_long_out_whole]="";                    ARGS[gptj_long_out_whole]="hf_family_generate.py --family gptj --layers 2 --prompt-len 32 --new-tokens 48 --pause-ms 100 --warmup 1 --iters 3"
EXTRA[phi_b2_long_prompt_whole]="";               ARGS[phi_b2_long_prompt_whole]="hf_family_generate.py --family phi --layers 4 --batch 2 --prompt-len 300 --new-tokens 12 --warmup 1 --iters 4"
EXTRA[graph_decode_b1_long_whole]="";             ARGS[graph_decode_b1_long_whole]="graph_decode.py --layers 2 --batch 1 --prompt-len 16 --new-tokens 96 --max-len 128 --warmup 1 --iters 2"
EXTRA[resnet50_b16_requests_whole]="";            ARGS[resnet50_b16_requests_whole]="cnn_requests.py --arch resnet50 --dtype fp16 --batch 16 --warmup 1 --iters 5 --passes 2"
EXTRA[mobilenet_b1_requests_whole]="";            ARGS[mobilenet_b1_requests_whole]="cnn_requests.py --arch mobilenet_v3_large --dtype fp16 --batch 1 --warmup 1 --iters 6 --passes 4"
EXTRA[gru_small_b1_whole]="";                     ARGS[gru_small_b1_whole]="rnn_generate.py --cell gru --layers 1 --hidden 256 --batch 1 --prompt-len 16 --new-tokens 64 --warmup 1 --iters 3"
EXTRA[jax_decode_l4_whole]="";                    ARGS[jax_decode_l4_whole]="jax_decode_scan.py --layers 4 --d 1024 --prompt-len 128 --new-tokens 16 --max-len 160 --warmup 1 --iters 3"
EXTRA[qwen2_sample_b8_whole]="";                  ARGS[qwen2_sample_b8_whole]="hf_sample_generate.py --layers 2 --batch 8 --prompt-len 64 --new-tokens 24 --top-k 20 --warmup 1 --iters 3"
EXTRA[two_tower_small_whole]="";                  ARGS[two_tower_small_whole]="two_tower_requests.py --candidates 512 --warmup 1 --iters 15"
EXTRA[gpt2_beam8_whole]="";                       ARGS[gpt2_beam8_whole]="hf_beam_generate.py --layers 2 --beams 8 --new-tokens 12 --warmup 1 --iters 3"
left() { echo $(( DEADLINE_S - ($(date +%s) - t_start) )); }
for name in "$@"; do
  [ "$(left)" -lt 60 ] && { echo "$name: skipped, $(left) s left"; continue; }
  t0=$(date +%s)
  RUN="python3 /tmp/wl/${ARGS[$name]}"
  if [ -n "${BUILD[$name]:-}" ]; then ( cd /tmp/wl && ${BUILD[$name]} ) > "$L/$name.build.log" 2>&1 || { echo "$name: build failed"; tail -5 "$L/$name.build.log"; continue; }; RUN="${ARGS[$name]}"; fi
  export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_cache_$name; rm -rf "$TORCHINDUCTOR_CACHE_DIR"  # cold compile cache for the capture
  if [ "${WARM[$name]:-0}" = 1 ]; then  # warm the compile cache with the unprofiled run first, then capture
    ( cd /tmp && timeout $(( $(left) - 30 )) $RUN ) > "$L/$name.unprofiled.log" 2>&1
    echo "$name: unprofiled (cache-warming) rc=$? $(( $(date +%s) - t0 )) s; $(grep RESULT $L/$name.unprofiled.log | cut -c1-400)"
  fi
  ( cd /tmp && timeout $(( $(left) - 20 )) nsys profile --force-overwrite=true $FLAGS ${EXTRA[$name]} -o "$T/$name" \
      $RUN ) > "$L/$name.profile.log" 2>&1
  rc=$?
  echo "nsys profile $FLAGS ${EXTRA[$name]} -o $name ${RUN//\/tmp\/wl\//}" > "$L/$name.COMMAND"
  echo "$name: profile rc=$rc $(( $(date +%s) - t0 )) s; $(ls -la $T/$name.sqlite 2>/dev/null | awk '{print $5}') bytes; $(grep RESULT $L/$name.profile.log | cut -c1-300)"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 143 ] && tail -15 "$L/$name.profile.log"
  [ "$(left)" -lt 45 ] || [ "${WARM[$name]:-0}" = 1 ] || [ "${NO_UNPROFILED:-0}" = 1 ] && continue
  t0=$(date +%s)
  ( cd /tmp && timeout $(( $(left) - 15 )) $RUN ) > "$L/$name.unprofiled.log" 2>&1
  echo "$name: unprofiled rc=$? $(( $(date +%s) - t0 )) s; $(grep RESULT $L/$name.unprofiled.log | cut -c1-400)"
done
python3 - "$T" <<'PY'
import sqlite3, sys, glob, os
for f in sorted(glob.glob(sys.argv[1] + "/*.sqlite")):
    c = sqlite3.connect(f)
    def q(s):
        try: return c.execute(s).fetchone()[0]
        except Exception as e: return None
    print(os.path.basename(f), os.path.getsize(f), "kernels", q("select count(*) from CUPTI_ACTIVITY_KIND_KERNEL"),
          "graphLaunch", q("select count(*) from CUPTI_ACTIVITY_KIND_RUNTIME r join StringIds s on r.nameId=s.id where s.value like 'cudaGraphLaunch%'"),
          "streamSync", q("select count(*) from CUPTI_ACTIVITY_KIND_RUNTIME r join StringIds s on r.nameId=s.id where s.value like 'cudaStreamSynchronize%'"),
          "nvtx", q("select count(*) from NVTX_EVENTS"))
PY
tar czf - -C /tmp traces wlogs | split -b 15M - "$OUT/traces.tgz.part-"
ls -la "$OUT"
