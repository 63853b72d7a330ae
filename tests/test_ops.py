"""Kernel name -> model operation: the shipped rules on real kernel names, hand-checked spot checks, user rules."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from nsys_doctor.analysis.ops import CATEGORIES, OpRule, builtin_rules, classify, parse_rules_tables
from nsys_doctor.errors import UsageError
from nsys_doctor.loaders import load_rules

from .conftest import TRACES, needs_shared

KERN_SUMS = sorted(TRACES.glob("golden/*/stats_cuda_gpu_kern_sum.csv")) + sorted(
    TRACES.glob("multigpu/golden/*/stats_cuda_gpu_kern_sum.csv")
)

# (kernel name as a trace shows it, expected family, expected category, expected op or None for "don't care")
SPOT_CHECKS: list[tuple[str, str, str, str | None]] = [
    # cuDNN's own convolutions (a PyTorch CNN on a Turing card, DLProf's public trace): implicit GEMM convolutions
    # are not linear layers, a convolution with its ReLU fused is not an activation
    (
        "void cudnn::detail::implicit_convolve_sgemm<float, float, (int)1024, (int)5, (int)5, (int)3, (int)3, (int)3, "
        "(int)1, (bool)0, (bool)0, (bool)1>(int, int, int, const T1 *, int, T2 *, const T1 *, kernel_conv_params, "
        "unsigned long long, int, float, float, int, const T2 *, const T2 *, bool, int, int)",
        "conv",
        "convolution",
        "convolution (cuDNN)",
    ),
    ("volta_scudnn_128x32_relu_interior_nn_v1", "conv", "convolution", "convolution (cuDNN)"),
    ("turing_scudnn_128x64_relu_small_nn_v1", "conv", "convolution", "convolution (cuDNN)"),
    ("cudnn::gemm::computeOffsetsKernel(cudnn::gemm::ComputeOffsetsParams)", "conv", "convolution", None),
    # their tensor-core variants, named after the MMA shape, and TensorRT's builds of them, a ReLU or GELU fused (as
    # public TensorRT tactic logs and nsys tables print them: a T4 engine's "trt_turing_h1688cudnn_...", a YOLOv8
    # engine's "trt_ampere_h16816cudnn_...", TensorRT 7.2's banned tactics): convolutions, not activations
    ("volta_h884cudnn_256x128_ldg8_relu_exp_small_nhwc_tn_v1", "conv", "convolution", "convolution (cuDNN)"),
    ("turing_h1688cudnn_256x128_ldg8_relu_exp_medium_nhwc_tn_v1", "conv", "convolution", "convolution (cuDNN)"),
    ("trt_turing_h1688cudnn_256x64_ldg8_relu_exp_small_nhwc_tn_v1", "conv", "convolution", "convolution (cuDNN)"),
    (
        "trt_ampere_h16816cudnn_64x128_sliced1x2_ldg8_relu_exp_stages_64x4_medium_nhwc_tn",
        "conv",
        "convolution",
        "convolution (cuDNN)",
    ),
    (
        "turing_fp16_s1688cudnn_fp16_128x128_ldg8_relu_f2f_exp_medium_nhwc_gelu_tn_v1",
        "conv",
        "convolution",
        "convolution (cuDNN)",
    ),
    ("ampere_scudnn_winograd_128x128_ldg1_ldg4_relu_tile148t_nt_v1", "conv", "convolution", "convolution (cuDNN)"),
    # TensorRT's INT8 convolutions (public nvprof listings of TensorRT engines)
    ("trt_maxwell_int8x4_icudnn_int8x4_128x128_relu_small_nn_v1", "conv", "convolution", "convolution (cuDNN)"),
    ("trt_volta_int8x4_icudnn_int8x4_128x64_relu_xregs_large_nn_v1", "conv", "convolution", "convolution (cuDNN)"),
    ("trt_volta_fp32_icudnn_int8x4_128x64_relu_small_nn_v1", "conv", "convolution", "convolution (cuDNN)"),
    # TensorRT's own kernels: its generated pointwise fusions, Myelin's fused kernels, reformatting between layouts
    # and precisions, padding, slicing; cuTENSOR's permutations
    ("generatedNativePointwise", "elementwise", "elementwise / other", "fused elementwise (TensorRT)"),
    ("__myl_AddMulRouMaxMinTra_0xa2e185eeee77c88be9eabf5c34ef6679", "elementwise", "elementwise / other", None),
    (
        "void genericReformat::copyPackedKernel<float, __half, (bool)1, (bool)1, genericReformat::ArrayN<(int)4>, "
        "(int)4>(unsigned int, unsigned int, void *, genericReformat::ArrayN<(int)4>)",
        "elementwise",
        "elementwise / other",
        "reformat / pad / slice (TensorRT)",
    ),
    (
        "void cuPad::pad<__half, (int)128, (bool)0>(T2 *, nvinfer1::DimsNCHW, const T2 *)",
        "elementwise",
        "elementwise / other",
        "reformat / pad / slice (TensorRT)",
    ),
    (
        "void CUTENSOR_NAMESPACE::permutationKernelPLC3<CUTENSOR_NAMESPACE::VectorWrite2D<__half, __half>>()",
        "elementwise",
        "elementwise / other",
        "permute (cuTENSOR)",
    ),
    ("sm50_xmma_pooling_coalescedC_NHWC_kMAX_2_False_execute_kernel_trt", "pooling", "elementwise / other", None),
    # cuBLASLt nvjet: the tile's N <= 16 is the skinny (decode) GEMV case, a big N is a GEMM
    ("nvjet_sm90_tst_128x8_64x12_2x1_v_bz_TNT", "gemv", "GEMV", "linear (GEMV)"),
    ("nvjet_sm90_tst_64x16_64x16_2x1_v_bz_splitK_TNT", "gemv", "GEMV", "linear (GEMV)"),
    ("nvjet_sm90_tst_384x8_64x4_2x1_v_bz_TNT", "gemv", "GEMV", "linear (GEMV)"),
    ("nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_TNT", "gemm", "GEMM", "linear (GEMM)"),
    ("nvjet_sm90_tst_192x128_64x5_1x2_h_bz_coopB_TNT", "gemm", "GEMM", "linear (GEMM)"),
    ("nvjet_sm100_tss_128x32_64x8_2x1_v_bz_NNT", "gemm", "GEMM", None),
    # cuBLAS
    (
        "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off"
        "_kernel__5x_cublas",
        "gemm",
        "GEMM",
        None,
    ),
    (
        "sm80_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize64x16x64_stage4_warpsize2x1x1_tensor16x8x16_kernel",
        "gemv",
        "GEMV",
        None,
    ),
    ("ampere_bf16_s16816gemm_bf16_128x64_ldg8_f2f_stages_64x3_tn", "gemm", "GEMM", None),
    (
        "void cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_64x4_tn_align8>(T1::Params)",
        "gemm",
        "GEMM",
        None,
    ),
    (
        "void gemv2T_kernel_val<int, int, __nv_bfloat16, __nv_bfloat16, float, (int)128, (int)16, (int)4, (int)4, "
        "(bool)0, (bool)0, cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<const __nv_bfloat16>, "
        "cublasGemvTensorStridedBatched<const __nv_bfloat16>, cublasGemvTensorStridedBatched<__nv_bfloat16>, float>>"
        "(T13, T6, T6)",
        "gemv",
        "GEMV",
        "linear (GEMV)",
    ),
    (
        "void gemvNSP_kernel<__nv_bfloat16, __nv_bfloat16, __nv_bfloat16, float, (int)1, (int)32, (int)4, (int)1024, "
        "cublasGemvParamsEx<int, cublasGemvTensor<const __nv_bfloat16>, cublasGemvTensor<const __nv_bfloat16>, "
        "cublasGemvTensor<__nv_bfloat16>, float>>(T8)",
        "gemv",
        "GEMV",
        None,
    ),
    (
        "void cublasLt::splitKreduce_kernel<(int)32, (int)16, int, float, __nv_bfloat16, float, __nv_bfloat16, "
        "(bool)0, float, __nv_bfloat16, __nv_bfloat16, (bool)1, (bool)0, (bool)0, (bool)0>(cublasLt::"
        "cublasSplitKParams<T6>, const T4 *)",
        "gemv",
        "GEMV",
        "linear split-K reduction",
    ),
    (
        "void cutlass::device_kernel<cutlass::gemm::kernel::GemmUniversal<cute::tuple<int, int, int, int>, "
        "cutlass::gemm::collective::CollectiveMma<cutlass::gemm::MainloopSm90TmaGmmaWarpSpecialized>>>(T1::Params)",
        "gemm",
        "GEMM",
        None,
    ),
    # FlashInfer
    (
        "void flashinfer::BatchDecodeWithPagedKVCacheKernel<(flashinfer::PosEncodingMode)0, (unsigned int)2, "
        "(unsigned int)2, (unsigned int)8, (unsigned int)16, (unsigned int)1, (unsigned int)8, "
        "flashinfer::DefaultAttention<(bool)0, (bool)0, (bool)0, (bool)0>, flashinfer::BatchDecodeParams<"
        "__nv_bfloat16, __nv_bfloat16, __nv_bfloat16, int>>(T8)",
        "attention-decode",
        "attention (decode)",
        None,
    ),
    (
        "void flashinfer::BatchPrefillWithPagedKVCacheKernel<flashinfer::KernelTraits<(flashinfer::MaskMode)1, "
        "(unsigned int)128, (unsigned int)1, (unsigned int)4, (unsigned int)4, (unsigned int)4, (unsigned int)1, "
        "(flashinfer::PosEncodingMode)0, __nv_bfloat16, __nv_bfloat16, __nv_bfloat16, float, int, "
        "flashinfer::DefaultAttention<(bool)0, (bool)0, (bool)0, (bool)0>>, flashinfer::BatchPrefillPagedParams<"
        "__nv_bfloat16, __nv_bfloat16, __nv_bfloat16, int>>(T2)",
        "attention-prefill",
        "attention (prefill)",
        None,
    ),
    ("BatchPrefillWithRaggedKVCacheKernel", "attention-prefill", "attention (prefill)", None),
    (
        "void flashinfer::AppendPagedKVCacheKernel<(unsigned int)8, (unsigned int)8, __nv_bfloat16, int>"
        "(flashinfer::paged_kv_t<T3, T4>, T3 *, T3 *, T4 *, T4 *, unsigned int, unsigned int, unsigned int, "
        "unsigned int, unsigned int)",
        "kv-cache",
        "KV cache",
        None,
    ),
    (
        "void flashinfer::MergeStatesKernel<(unsigned int)8, (unsigned int)16, (unsigned int)8, (unsigned int)4, "
        "__nv_bfloat16, __nv_bfloat16>(T5 *, float *, T6 *, float *, unsigned int, unsigned int)",
        "attention",
        "attention",
        None,
    ),
    (
        "void flashinfer::sampling::TopKTopPSamplingFromProbKernel<(unsigned int)1024, (cub::BlockScanAlgorithm)2, "
        "(cub::BlockReduceAlgorithm)2, (unsigned int)4, (bool)1, float, int>(T6 *, T7 *, T7 *, T6 *, T7 *, T6, "
        "unsigned int, bool, unsigned long, unsigned long)",
        "sampling",
        "sampling / top-k",
        None,
    ),
    (
        "void flashinfer::sampling::SamplingFromProbKernel<(unsigned int)1024, (cub::BlockScanAlgorithm)2, "
        "(cub::BlockReduceAlgorithm)2, (unsigned int)4, (bool)1, float, int>(T6 *, T7 *, T7 *, unsigned int, bool, "
        "unsigned long, unsigned long)",
        "sampling",
        "sampling / top-k",
        None,
    ),
    # FlashAttention 2 / 3
    (
        "void flash_fwd_splitkv_kernel<Flash_fwd_kernel_traits<128, 64, 128, 4, false, false, cutlass::bfloat16_t, "
        "Flash_kernel_traits<128, 64, 128, 4, cutlass::bfloat16_t>>, false, true, false, false, true, true, false, "
        "false>(Flash_fwd_params)",
        "attention",
        "attention",
        "flash attention fwd (split-KV)",
    ),
    (
        "void flash_fwd_splitkv_combine_kernel<Flash_fwd_kernel_traits<128, 64, 128, 4, false, false, "
        "cutlass::bfloat16_t, Flash_kernel_traits<128, 64, 128, 4, cutlass::bfloat16_t>>, 4, 1, true>"
        "(Flash_fwd_params)",
        "attention",
        "attention",
        "attention split-KV combine",
    ),
    (
        "void cutlass::device_kernel<flash::enable_sm90_or_later<flash::FlashAttnFwdSm90<flash::CollectiveMainloop"
        "FwdSm90<(int)2, cute::tuple<cute::C<(int)1>, cute::C<(int)1>, cute::C<(int)1>>, cute::tuple<cute::C<(int)"
        "128>, cute::C<(int)128>, cute::C<(int)128>>, (int)128, cutlass::bfloat16_t, float, cutlass::arch::Sm90, "
        "(bool)1, (bool)0>, cutlass::gemm::GemmShape<128, 128, 64>>>>(T1::Params)",
        "attention",
        "attention",
        "flash attention 3 fwd",
    ),
    # cuDNN SDPA and its split-KV reduction
    (
        "cudnn_generated_fort_native_sdpa_sm80_flash_fprop_wmma_f16_knob_35_16x128x64_1x4x1_cga1x1x1_kernel0_0",
        "attention",
        "attention",
        None,
    ),
    (
        "void cudnn::fusion::lean_reduction_kernel<(bool)0, (bool)0, (bool)0>(void *, float *, float *, float *)",
        "attention",
        "attention",
        "attention split-KV reduction",
    ),
    # PyTorch native
    (
        "void at::native::<unnamed>::vectorized_layer_norm_kernel<c10::BFloat16, float, (bool)1>(int, T2, "
        "const T1 *, const T1 *, const T1 *, T2 *, T2 *, T1 *)",
        "norm",
        "norm",
        "RMSNorm",
    ),
    (
        "void at::native::<unnamed>::vectorized_layer_norm_kernel<c10::BFloat16, float, (bool)0>(int, T2, "
        "const T1 *, const T1 *, const T1 *, T2 *, T2 *, T1 *)",
        "norm",
        "norm",
        "LayerNorm",
    ),
    (  # cuDNN SDPA's backward (a transformers Llama training step)
        "void cudnn::fusion::compute_dot_do_o_specialized<(bool)1, (int)64>(const void *, const void *, void *, "
        "void *, unsigned int, unsigned int, unsigned int)",
        "attention",
        "attention",
        "attention backward (dO.O row sums, dQ conversion)",
    ),
    (
        "void cudnn::fusion::convert_dq_to_16bits<(bool)1>(const void *, void *, unsigned int, unsigned int)",
        "attention",
        "attention",
        "attention backward (dO.O row sums, dQ conversion)",
    ),
    (  # a training step's loss gradient: a row reduction, not sampling
        "void at::native::<unnamed>::cunn_SoftMaxBackward<(int)4, float, float, float, "
        "at::native::<unnamed>::LogSoftMaxBackwardEpilogue>(T2 *, const T4 *, const T4 *, long)",
        "reduction",
        "elementwise / other",
        "softmax backward (training)",
    ),
    (
        "void <unnamed>::softmax_warp_backward<c10::BFloat16, c10::BFloat16, float, (int)10, (bool)1, (bool)0>"
        "(T2 *, const T1 *, const T1 *, int, int, int, const bool *)",
        "reduction",
        "elementwise / other",
        "softmax backward (training)",
    ),
    (
        "void at::native::<unnamed>::cunn_SoftMaxForward<(int)8, c10::BFloat16, float, c10::BFloat16, "
        "at::native::<unnamed>::SoftMaxForwardEpilogue>(T4 *, const T2 *, int)",
        "sampling",
        "sampling / top-k",
        "softmax",
    ),
    (
        "void at::native::vectorized_elementwise_kernel<(int)8, at::native::<unnamed>::silu_kernel(at::"
        "TensorIteratorBase &)::[lambda() (instance 1)]::operator ()() const::[lambda() (instance 6)]::operator ()() "
        "const::[lambda(c10::BFloat16) (instance 1)], std::array<char *, (unsigned long)2>>(int, T2, T3)",
        "activation",
        "activation",
        "SiLU",
    ),
    (
        "void at::native::vectorized_elementwise_kernel<(int)4, at::native::GeluCUDAKernelImpl(at::"
        "TensorIteratorBase &, at::native::GeluType)::[lambda() (instance 1)]::operator ()() const::[lambda() "
        "(instance 4)]::operator ()() const::[lambda(float) (instance 1)], std::array<char *, (unsigned long)2>>"
        "(int, T2, T3)",
        "activation",
        "activation",
        "GELU",
    ),
    (
        "void at::native::vectorized_elementwise_kernel<(int)8, at::native::BinaryFunctor<c10::BFloat16, "
        "c10::BFloat16, c10::BFloat16, at::native::binary_internal::MulFunctor<float>>, std::array<char *, "
        "(unsigned long)3>>(int, T2, T3)",
        "elementwise",
        "elementwise / other",
        "mul",
    ),
    (
        "void at::native::vectorized_elementwise_kernel<(int)8, at::native::CUDAFunctor_add<c10::BFloat16>, "
        "std::array<char *, (unsigned long)3>>(int, T2, T3)",
        "elementwise",
        "elementwise / other",
        "add",
    ),
    # repeat_interleave's copies are elementwise copies, index_copy_ is this PyTorch engine's KV-cache write
    (
        "void at::native::elementwise_kernel<(int)128, (int)4, void at::native::gpu_kernel_impl_nocast<at::native::"
        "direct_copy_kernel_cuda(at::TensorIteratorBase &)::[lambda() (instance 3)]::operator ()() const::[lambda() "
        "(instance 12)]::operator ()() const::[lambda(c10::BFloat16) (instance 1)]>(at::TensorIteratorBase &, "
        "const T1 &)::[lambda(int) (instance 1)]>(int, T3)",
        "elementwise",
        "elementwise / other",
        "copy / cast",
    ),
    (
        "void at::native::index_elementwise_kernel<(int)128, (int)4, void at::native::index_copy_kernel_impl<"
        "at::native::OpaqueType<(int)2>>(at::TensorIterator &, long, long, long)::[lambda(int) (instance 1)]>"
        "(long, T3)",
        "kv-cache",
        "KV cache",
        "KV cache write (index_copy)",
    ),
    (
        "void at::native::vectorized_elementwise_kernel<(int)4, at::native::cos_kernel_cuda(at::TensorIteratorBase "
        "&)::[lambda() (instance 2)]::operator ()() const::[lambda() (instance 2)]::operator ()() const::"
        "[lambda(float) (instance 1)], std::array<char *, (unsigned long)2>>(int, T2, T3)",
        "rope",
        "RoPE / QK-norm",
        None,
    ),
    (
        "void at::native::reduce_kernel<(int)512, (int)1, at::native::ReduceOp<c10::BFloat16, at::native::"
        "ArgMaxOps<float>, unsigned int, long, (int)4, (int)4>>(T3)",
        "sampling",
        "sampling / top-k",
        "argmax (greedy)",
    ),
    (
        "void at::native::vectorized_gather_kernel<(int)16, long>(char *, char *, T2 *, int, long, long, long, long, "
        "bool)",
        "embedding",
        "embedding",
        None,
    ),
    (
        "void at::native::<unnamed>::indexSelectLargeIndex<c10::BFloat16, long, unsigned int, (int)2, (int)2, "
        "(int)-2, (bool)1>(at::cuda::detail::TensorInfo<T1, T3>, at::cuda::detail::TensorInfo<const T1, T3>, "
        "at::cuda::detail::TensorInfo<const T2, T3>, int, int, T3, T3, long)",
        "embedding",
        "embedding",
        None,
    ),
    (
        "void at::native::<unnamed>::distribution_elementwise_grid_stride_kernel<float, (int)4, void at::native::"
        "templates::cuda::uniform_and_transform<float, float, at::CUDAGeneratorImpl *>(long, at::PhiloxCudaState, "
        "T3, T4)",
        "sampling",
        "sampling / top-k",
        "random numbers (RNG)",
    ),
    (
        "void at::native::<unnamed>::CatArrayBatchedCopy_vectorized<at::native::<unnamed>::OpaqueType<(unsigned "
        "int)2>, unsigned int, (int)3, (int)128, (int)1, (int)16, (int)8>(char *)",
        "elementwise",
        "elementwise / other",
        None,
    ),
    (
        "void at::native::vectorized_elementwise_kernel<(int)8, at::native::FillFunctor<c10::BFloat16>, "
        "std::array<char *, (unsigned long)1>>(int, T2, T3)",
        "elementwise",
        "elementwise / other",
        "fill",
    ),
    # vLLM / SGLang / TensorRT-LLM
    (
        "void vllm::rms_norm_kernel<c10::BFloat16, (int)8>(T1 *, const T1 *, long, const T1 *, float, int, int)",
        "norm",
        "norm",
        "RMSNorm",
    ),
    (
        "void vllm::fused_add_rms_norm_kernel<c10::BFloat16, (int)8>(T1 *, long, T1 *, const T1 *, float, int, int)",
        "norm",
        "norm",
        "fused add + RMSNorm",
    ),
    (
        "void vllm::act_and_mul_kernel<c10::BFloat16, &vllm::silu_kernel<c10::BFloat16>, (bool)1>(T1 *, "
        "const T1 *, int)",
        "activation",
        "activation",
        "SiLU*mul",
    ),
    ("void vllm::silu_and_mul_kernel<c10::BFloat16>(T1 *, const T1 *, int)", "activation", "activation", "SiLU*mul"),
    (
        "void vllm::rotary_embedding_kernel<c10::BFloat16, (bool)1>(const long *, T1 *, T1 *, const T1 *, int, long, "
        "long, int, int, int)",
        "rope",
        "RoPE / QK-norm",
        "RoPE",
    ),
    (
        "void vllm::reshape_and_cache_flash_kernel<__nv_bfloat16, __nv_bfloat16, (vllm::Fp8KVCacheDataType)0>"
        "(const T1 *, const T1 *, T2 *, T2 *, const long *, long, long, long, long, int, int, int, const float *, "
        "const float *)",
        "kv-cache",
        "KV cache",
        None,
    ),
    (
        "void vllm::paged_attention_v1_kernel<unsigned short, unsigned short, (int)128, (int)16, (int)128, "
        "(vllm::Fp8KVCacheDataType)0, (bool)0>(T1 *, const T1 *, const T2 *, const T2 *, int, float, const int *)",
        "attention-decode",
        "attention (decode)",
        None,
    ),
    (
        "void vllm::paged_attention_v2_reduce_kernel<unsigned short, (int)128, (int)128, (int)512>(T1 *, "
        "const float *, const float *, const T1 *, const int *, int)",
        "attention-decode",
        "attention (decode)",
        None,
    ),
    ("fused_moe_kernel", "moe", "MoE", None),
    (
        "void vllm::moe::topkGatingSoftmax<(int)8, (int)8, (int)4, (int)16>(const float *, const bool *, float *, "
        "int, int *, int *, int, int, int)",
        "moe",
        "MoE",
        None,
    ),
    (
        "void vllm::moe::topk_softmax_kernel<(int)256>(const float *, const bool *, float *, int *, int *, int, int)",
        "moe",
        "MoE",
        None,
    ),
    (
        "void vllm::moe::moe_align_block_size_kernel<int>(const T1 *, int *, int *, int *, int, int, int, int, "
        "unsigned long, int *)",
        "moe",
        "MoE",
        None,
    ),
    (
        "void tensorrt_llm::kernels::mmha::masked_multihead_attention_kernel<unsigned short, unsigned short, "
        "tensorrt_llm::kernels::KVBlockArray, (unsigned int)128>(tensorrt_llm::kernels::Multihead_attention_params"
        "<T1, (bool)0>, T3)",
        "attention-decode",
        "attention (decode)",
        None,
    ),
    (
        "fmha_v2_flash_attention_bf16_64_128_S_q_paged_kv_128_sm90_kernel_nl",
        "attention-prefill",
        "attention (prefill)",
        None,
    ),
    ("_per_token_group_quant_fp8", "quantization", "elementwise / other", None),
    (
        "void vllm::static_scaled_fp8_quant_kernel<c10::BFloat16, c10::Float8_e4m3fn>(T2 *, const T1 *, "
        "const float *, long)",
        "quantization",
        "elementwise / other",
        None,
    ),
    (
        "void flashinfer::norm::GemmaRMSNormKernel<(unsigned int)8, __nv_bfloat16>(T2 *, T2 *, T2 *, unsigned int, "
        "unsigned int, unsigned int, float, float)",
        "norm",
        "norm",
        None,
    ),
    # NCCL: op from the collective name
    (
        "ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<(unsigned long)4096>)",
        "communication",
        "communication",
        "all-reduce",
    ),
    (
        "ncclDevKernel_AllGather_RING_LL(ncclDevKernelArgsStorage<(unsigned long)4096>)",
        "communication",
        "communication",
        "all-gather",
    ),
    (
        "ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<(unsigned long)4096>)",
        "communication",
        "communication",
        "reduce-scatter",
    ),
    (
        "ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t(ncclDevComm *, unsigned long, ncclWork *)",
        "communication",
        "communication",
        "send/recv",
    ),
    (
        "void vllm::cross_device_reduce_1stage<__nv_bfloat16, (int)2>(vllm::RankData *, vllm::RankSignals, "
        "vllm::Signal *, T1 *, int, int)",
        "communication",
        "communication",
        None,
    ),
    # memory operations
    ("[CUDA memcpy Host-to-Device]", "memcpy", "memcpy / memset", "memcpy host-to-device"),
    ("[CUDA memcpy Device-to-Host]", "memcpy", "memcpy / memset", "memcpy device-to-host"),
    ("[CUDA memcpy Device-to-Device]", "memcpy", "memcpy / memset", "memcpy device-to-device"),
    ("[CUDA memset]", "memset", "memcpy / memset", "memset"),
    # this engine's kernels
    (
        "void gemvx::kernel<int, int, __nv_bfloat16, __nv_bfloat16, __nv_bfloat16, float, (bool)0, (bool)1, (bool)1, "
        "(bool)0, (int)7, (bool)0, cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<const __nv_bfloat16>, "
        "cublasGemvTensorStridedBatched<const __nv_bfloat16>, cublasGemvTensorStridedBatched<__nv_bfloat16>, "
        "float>>(T13, T6, T6)",
        "gemv",
        "GEMV",
        "linear (GEMV)",
    ),
    ("gemvx::kernel", "gemv", "GEMV", "linear (GEMV)"),
    ("FusedAddRMSNormKernel", "norm", "norm", "fused add + RMSNorm"),
    ("BatchDecodeWithPagedKVCacheKernel", "attention-decode", "attention (decode)", None),
    ("BatchPrefillWithPagedKVCacheKernel", "attention-prefill", "attention (prefill)", None),
    ("AppendPagedKVCacheKernel", "kv-cache", "KV cache", None),
    ("RadixTopKKernel_Unified", "sampling", "sampling / top-k", None),
    (
        "void RadixTopKKernel_Unified<(unsigned int)1024, float, int>(float *, int *, int, int)",
        "sampling",
        "sampling / top-k",
        None,
    ),
    ("silu_mul_fused_kernel", "activation", "activation", "SiLU*mul"),
    ("prefill_qk_norm_rope_kernel", "rope", "RoPE / QK-norm", "QK-norm + RoPE"),
    ("embedding_batched_kernel", "embedding", "embedding", None),
]


@pytest.fixture(scope="module")
def rules() -> list[OpRule]:
    return load_rules()


def _golden_names() -> list[str]:
    names: set[str] = set()
    for path in KERN_SUMS:
        names.update(pl.read_csv(path)["Name"].to_list())
    return sorted(names)


@needs_shared
def test_every_golden_kernel_is_mapped(rules: list[OpRule]) -> None:
    names = _golden_names()
    assert len(names) > 40, "expected the golden kernel summaries of ../shared/traces"
    out = classify(names, rules)
    unmapped = out.filter(~pl.col("mapped") | (pl.col("family") == "other"))["name"].to_list()
    assert unmapped == []


@needs_shared
def test_golden_decode_trace_composition(rules: list[OpRule]) -> None:
    """decode_graph_node: GEMV leads by time, and no kernel of a decode-only trace is a big-N GEMM."""
    kern = pl.read_csv(TRACES / "golden" / "decode_graph_node" / "stats_cuda_gpu_kern_sum.csv")
    ops = classify(kern["Name"], rules)
    by_cat = (
        kern.select(pl.col("Total Time (ns)").alias("t"))
        .hstack(ops)
        .group_by("category")
        .agg(pl.col("t").sum())
        .sort("t", descending=True)
    )
    assert by_cat["category"][0] == "GEMV"
    assert {"attention", "norm", "KV cache", "RoPE / QK-norm", "sampling / top-k", "embedding"} <= set(
        by_cat["category"]
    )


@pytest.mark.parametrize(("name", "family", "category", "op"), SPOT_CHECKS, ids=[s[0][:60] for s in SPOT_CHECKS])
def test_spot_checks(rules: list[OpRule], name: str, family: str, category: str, op: str | None) -> None:
    row = classify([name], rules).row(0, named=True)
    assert row["mapped"] is True
    assert (row["family"], row["category"]) == (family, category), row
    if op is not None:
        assert row["op"] == op


def test_short_name_is_tried_too(rules: list[OpRule], tmp_path: Path) -> None:
    user = tmp_path / "short.toml"
    user.write_text("[[rule]]\npattern = '^my_kernel$'\nfamily = 'gemm'\ncategory = 'GEMM'\nop = 'mine'\n")
    mine = load_rules(user)
    out = classify(["void my_kernel<(int)4>(float *)"], mine, short_names=["my_kernel"])
    assert out.row(0, named=True)["op"] == "mine"
    assert classify(["void my_kernel<(int)4>(float *)"], mine).row(0, named=True)["op"] != "mine"


def test_output_shape_order_and_unmapped(rules: list[OpRule]) -> None:
    names = pl.Series(["[CUDA memset]", "totally_unknown_kernel", None, "[CUDA memset]", "nvjet_sm90_tst_64x8_a"])
    out = classify(names, rules)
    assert out.columns == ["name", "family", "category", "op", "library", "mapped", "match"]
    assert out["name"].to_list() == names.to_list()
    assert out["family"].to_list() == ["memset", "other", "other", "memset", "gemv"]
    unknown = out.row(1, named=True)
    assert unknown == {
        "name": "totally_unknown_kernel",
        "family": "other",
        "category": "elementwise / other",
        "op": "unmapped",
        "library": "",
        "mapped": False,
        "match": "",
    }
    assert classify([], rules).height == 0


def test_shipped_rules_are_valid() -> None:
    rules = builtin_rules()
    assert len(rules) >= 100
    assert all(r.source == "builtin" for r in rules)
    assert {r.category for r in rules} <= set(CATEGORIES)
    assert set(CATEGORIES) == {r.category for r in rules}, "every category has at least one shipped rule"


def test_user_rules_override_builtin(tmp_path: Path) -> None:
    user = tmp_path / "ops.toml"
    user.write_text(
        "# my engine names its down projection GEMV\n"
        "[[rule]]\n"
        "pattern = 'nvjet_sm90_tst_64x8_64x16_2x1_v_bz_splitK'\n"
        "family = 'gemv-down'\n"
        "category = 'GEMV'\n"
        "op = 'down projection'\n"
        "library = 'cuBLASLt'\n"
    )
    rules = load_rules(user)
    assert rules[0].source == str(user)
    assert rules[1:] == builtin_rules()
    out = classify(["nvjet_sm90_tst_64x8_64x16_2x1_v_bz_splitK_TNT", "nvjet_sm90_tst_128x8_64x12_2x1_v_bz_TNT"], rules)
    assert out["op"].to_list() == ["down projection", "linear (GEMV)"]
    assert out["family"].to_list() == ["gemv-down", "gemv"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("[[rule]]\npattern = 'gemv('\nfamily = 'gemv'\ncategory = 'GEMV'\nop = 'x'\n", ["rule 1", "regex"]),
        (
            "[[rule]]\npattern = 'a'\nfamily = 'gemv'\ncategory = 'GEMV'\nop = 'x'\n"
            "[[rule]]\npattern = 'b'\nfamily = 'gemv'\nop = 'x'\n",
            ["rule 2", "category"],
        ),
        ("[[rule]]\npattern = 'a'\nfamily = 'gemv'\ncategory = 'Matmul'\nop = 'x'\n", ["rule 1", "Matmul"]),
        ("[[rule]]\npattern = 'a'\nfamily = 'Gemv Thing'\ncategory = 'GEMV'\nop = 'x'\n", ["rule 1", "family"]),
        (
            "[[rule]]\npattern = 'a'\nfamily = 'gemv'\ncategory = 'GEMV'\nop = 'x'\ncolour = 'red'\n",
            ["rule 1", "colour"],
        ),
        ("[[rules]]\npattern = 'a'\n", ["rules"]),
        ("[[rule]\n", ["TOML"]),
        ("[[rule]]\npattern = 'a{4294967296}'\nfamily = 'gemv'\ncategory = 'GEMV'\nop = 'x'\n", ["rule 1", "regex"]),
        ("[[rule]]\npattern = 5\nfamily = 'gemv'\ncategory = 'GEMV'\nop = 'x'\n", ["rule 1", "pattern", "string"]),
        ("rule = [[1, 2]]\n", ["rule 1", "not a table"]),
        ("x = " + "[" * 3000 + "]" * 3000 + "\n", ["nested too deeply"]),
        (b"\xff\xfe\x00binary", ["not UTF-8"]),
    ],
    ids=[
        "bad-regex",
        "missing-key",
        "bad-category",
        "bad-family",
        "unknown-key",
        "wrong-table",
        "bad-toml",
        "huge-repeat",
        "pattern-not-string",
        "rule-not-table",
        "deep-nesting",
        "binary",
    ],
)
def test_bad_user_file_raises_usage_error(tmp_path: Path, body: str | bytes, words: list[str]) -> None:
    bad = tmp_path / "bad.toml"
    if isinstance(body, bytes):
        bad.write_bytes(body)
    else:
        bad.write_text(body)
    with pytest.raises(UsageError) as info:
        load_rules(bad)
    message = info.value.one_line()
    assert str(bad) in message
    for w in words:
        assert w.lower() in message.lower(), (w, message)
    assert info.value.hint


def test_missing_user_file_raises_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        load_rules(tmp_path / "nope.toml")


def test_rule_files_are_read_by_the_loaders(tmp_path: Path) -> None:
    """The loaders read the files; the analysis module parses text and keeps the old names working."""
    from nsys_doctor import loaders
    from nsys_doctor.analysis.ops import parse_rules

    user = tmp_path / "mine.toml"
    text = '[[rule]]\npattern = "my_gemv"\nfamily = "gemv"\ncategory = "GEMV"\nop = "my GEMV"\n'
    user.write_text(text)
    (rule,) = loaders.read_rules_file(user)
    assert (rule.pattern, rule.family, rule.op, rule.source) == ("my_gemv", "gemv", "my GEMV", str(user))
    assert parse_rules(text, source=str(user)) == [rule]
    assert loaders.load_rules(user)[0] == rule and load_rules(user)[0] == rule
    assert loaders.load_rules() == builtin_rules()
    with pytest.raises(UsageError, match="not UTF-8 text"):
        user.write_bytes(b"\xff\xfe\x00[[rule]]")
        loaders.read_rules_file(user)


def test_a_rule_cannot_claim_the_structure_match() -> None:
    # "structure" is set by analysis/refine.py from where a kernel runs; a rule only reads a name
    from nsys_doctor.analysis.ops import MATCH_KINDS, STRUCTURE_MATCH

    assert STRUCTURE_MATCH not in MATCH_KINDS
    table = {"pattern": "a", "family": "moe", "category": "MoE", "op": "x", "match": STRUCTURE_MATCH}
    with pytest.raises(UsageError, match="match must be one of"):
        parse_rules_tables([table], "cfg.toml")


def test_topk_and_sort_kernels_read_as_sampling_by_name(rules: list[OpRule]) -> None:
    # by name alone the MoE router's top-k is the sampler's (refine_ops tells them apart by structure)
    for name in (
        "void at::native::sbtopk::gatherTopK<float, unsigned int, (int)2, (bool)0>(T2)",
        "void at::native::mbtopk::gatherTopK<float, unsigned int, (int)2>(T2)",
        "void at::native::bitonicSortKVInPlace<(int)2, (int)-1, (int)16, (int)16, float, long>(T8)",
    ):
        assert classify([name], rules).row(0, named=True)["family"] == "sampling", name


def test_resampling_kernels_are_not_sampling(rules: list[OpRule]) -> None:
    # an image model's resize (torchvision's detection transform, a super-resolution or UNet decoder) is not a
    # sampler: "upsample", "downsample" and "resample" do not read as sampling; a sampling kernel still does
    for name in (
        "void at::native::(anonymous namespace)::upsample_bilinear2d_out_frame<float, float>(int, float, float, bool)",
        "void at::native::(anonymous namespace)::upsample_nearest2d_out_frame<c10::Half, float>(const T1 *, T1 *)",
        "downsample_kernel",
        "void resample_kernel<float>(int)",
    ):
        assert classify([name], rules).row(0, named=True)["family"] != "sampling", name
    assert classify(["void sampling_kernel<float>(int)"], rules).row(0, named=True)["family"] == "sampling"


def test_inline_rules_are_named_by_where_they_were_written() -> None:
    good = {"pattern": "a", "family": "gemv", "category": "GEMV", "op": "x"}
    rules = parse_rules_tables([good], "cfg.toml", where="project config cfg.toml, key ops-rule, rule")
    assert rules[0].source == "cfg.toml" and rules[0].family == "gemv"
    with pytest.raises(UsageError, match=r"^project config cfg\.toml, key ops-rule, rule 2: missing key\(s\) op$"):
        parse_rules_tables([good, {k: v for k, v in good.items() if k != "op"}], "cfg.toml", "project config "
                           "cfg.toml, key ops-rule, rule")  # fmt: skip


def test_classify_matches_each_distinct_name_once(rules: list[OpRule]) -> None:
    """A few thousand distinct, long demangled names (most fall through to late rules), each given twice: one row
    per name given, the same answer for both copies (names are matched once each; the time is
    benchmarks/bench_report.py's to measure, not a unit test's)."""
    base = [s[0] for s in SPOT_CHECKS]
    names = [f"{n}<variant {i}>" for i in range(40) for n in base]
    names += [f"void mylib::unknown_kernel_{i}<" + "c10::BFloat16, " * 40 + ">(T1)" for i in range(500)]
    out = classify(names + names, rules)
    assert out.height == 2 * len(names)
    fam = out["family"].to_list()
    assert fam[: len(names)] == fam[len(names) :]
    assert fam[-1] == classify([names[-1]], rules)["family"][0]


def _naive_families(names: list[str], rules: list[OpRule], shorts: list[str] | None = None) -> list[str]:
    """The definition: re.search of each rule in order on the name, then on the short name; first match wins."""
    out = []
    for k, name in enumerate(names):
        short = shorts[k] if shorts else None
        family = next(
            (
                r.family
                for r in rules
                if re.search(r.pattern, name) or (short is not None and re.search(r.pattern, short))
            ),
            "other",
        )
        out.append(family)
    return out


def test_prefilter_changes_nothing(rules: list[OpRule]) -> None:
    """The literal prefilter (Python loop for few names, polars for many) gives exactly the naive result."""
    names = [s[0] for s in SPOT_CHECKS] + [
        "ſilu_thing",  # non-ASCII: matches (?i:silu) because re.IGNORECASE folds 'ſ' to 's'
        "MY_ROTARY_KERNEL",
        "Rotary_Thing",
        "LayerNormKernel",
        "unknown",
        "",
        "void foo::KERNEL2<int>()",
        "x_moe_y",
        "MOE_router",
    ]
    if TRACES.is_dir():
        names += _golden_names()
    shorts = [n.split("<")[0].split("(")[0].split("::")[-1] for n in names]
    expected = _naive_families(names, rules, shorts)
    few = classify(names[:100], rules, short_names=shorts[:100])["family"].to_list()
    assert few == expected[:100]
    many = [f"{n}" for n in names] * 3 + [f"pad_{i}" for i in range(300)]
    many_shorts = shorts * 3 + [f"pad_{i}" for i in range(300)]
    got = classify(many, rules, short_names=many_shorts)["family"].to_list()
    assert got[: len(names)] == expected
    assert got[len(names) * 3 :] == ["other"] * 300


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        ("nvjet_(?:[a-z][a-z0-9]*_)*\\d+x(?:[1-9]|1[0-6])_", {("nvjet_", False)}),
        ("a(?i:BCD)|xyz", {("bcd", True), ("xyz", False)}),
        ("(?<![A-Za-z])(?i:moe)|Moe", {("moe", True), ("Moe", False)}),
        ("(?i)Gemm(?!a)", {("gemm", True)}),
        ("x|y", None),  # single characters become a character set: no literal run
        ("a?b*", None),
    ],
)
def test_required_literals(pattern: str, literals: set[tuple[str, bool]] | None) -> None:
    from nsys_doctor.analysis.ops import _required_literals

    found = _required_literals(pattern)
    assert (set(found) if found is not None else None) == literals


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("void mul_mat_q<(ggml_type)12, 128, false>(const char *, const int *, float *, int)", "gemm"),
        ("void mul_mat_vec_q<(ggml_type)12, 1, false>(const void *, const void *, float *, int)", "gemv"),
        ("void flash_attn_mma_ext_f16<128, 128, 1, 1, false, false>(const char *)", "attention"),
        ("void mmq_ids_helper<8>(const int *, int *)", "moe"),
        ("void quantize_mmq_q8_1<(mmq_q8_1_ds_layout)1>(const float *)", "quantization"),
        ("void rms_norm_f32<1024, true, false>(const float *, float *)", "norm"),
        ("void rope_neox<true, true, float>(const float *)", "rope"),
        ("void k_get_rows_float<float, float>(const float *)", "embedding"),
    ],
)
def test_ggml_kernels(name, family):
    assert classify([name], load_rules())["family"].to_list() == [family]


@pytest.mark.parametrize(
    ("name", "short", "family"),
    [
        # names from the captures of tests/data/runs (gnn_spmm_requests_whole, rnn_generate_whole)
        (
            "void cusparse::csrmm_alg2_kernel<(bool)0, (bool)0, (bool)0, long, long, float, float, float>(T4, T4)",
            "csrmm_alg2_kernel",
            "gemm",
        ),
        (
            "void elemWiseRNNcell<__half, __half, float, (cudnnRNNMode_t)2, (cudnnRNNBiasMode_t)2>(int, int)",
            "elemWiseRNNcell",
            "rnn-cell",
        ),
        (
            "void elemWiseRNNcell<__half, __half, float, (cudnnRNNMode_t)3, (cudnnRNNBiasMode_t)2>(int, int)",
            "elemWiseRNNcell",
            "rnn-cell",
        ),
        # cuSPARSE's other kernels are not products
        (
            "void cusparse::matrix_scalar_multiply_kernel<cusparse::MatrixWiseMulPolicy, long, float>(long)",
            "matrix_scalar_multiply_kernel",
            "other",
        ),
        ("void cusparse::csr_partition_kernel<long>(long)", "csr_partition_kernel", "other"),
    ],
)
def test_sparse_products_and_recurrent_cells(name: str, short: str, family: str) -> None:
    for names, shorts in (([name], [short]), ([short], [short])):  # the demangled name, or the short one alone
        assert classify(names, load_rules(), shorts)["family"].to_list() == [family]


# ------------------------------------------------------------------ engines' own names, XLA, convolution, CNN

MEANING_CASES = [
    # (kernel name, family, match): engines' own kernels are read by their meaning, library kernels are not
    ("decode_attention_kernel", "attention-decode", "meaning"),
    ("prefill_attention_kernel", "attention-prefill", "meaning"),
    ("my_engine::paged_attn_v2<128>", "attention-decode", "meaning"),
    ("kv_append_kernel", "kv-cache", "meaning"),
    ("advance_rotary_kernel", "rope", "meaning"),
    ("gelu_tanh_kernel", "activation", "meaning"),
    ("lm_head_gemv_kernel", "gemv", "meaning"),
    ("moe_histogram_kernel", "moe", "meaning"),
    ("init_weights_kernel", "init", "library"),
    ("kernelHistogram1D", "moe", "meaning"),
    # compiler-generated names list every fused aten op: never read as attention
    ("triton_poi_fused__scaled_dot_product_cudnn_attention_arange_le_scalar_tensor_3", "elementwise", "library"),
    # XLA fusions
    ("loop_dynamic_update_slice_fusion_9", "kv-cache", "meaning"),
    ("input_reduce_fusion_57", "reduction", "library"),
    ("loop_multiply_fusion_17", "elementwise", "library"),
    ("input_concatenate_fusion_7", "elementwise", "library"),
    ("wrapped_broadcast", "elementwise", "library"),
    ("gemm_fusion_dot_general_53", "gemm", "meaning"),  # by an earlier generic GEMM rule
    ("stream_executor::gpu::RedzoneAllocatorKernelImpl(unsigned char *, unsigned char, unsigned long, unsigned int *)",
     "autotune", "library"),
    # convolution and CNN kernels (cuDNN, CUTLASS, PyTorch)
    ("sm90_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc_tilesize128x128x64", "conv", "library"),
    ("void cutlass__5x_cudnn::Kernel<cutlass_tensorop_f16_s16816fprop_optimized_f16_256x64_32x4_nhwc_align8>"
     "(T1::Params)", "conv", "library"),
    ("batch_norm_transform_input_channels_last_kernel", "norm", "library"),
    ("max_pool_forward_nhwc", "pooling", "meaning"),
    # a library attention kernel whose name says "fprop" stays attention
    ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x128_4x1x1", "attention", "library"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "family", "match"), MEANING_CASES)
def test_engine_xla_and_cnn_kernel_names(name, family, match):
    row = classify([name], load_rules()).row(0, named=True)
    assert (row["family"], row["match"]) == (family, match), row
