// A C++/CUDA "LLM engine" using cuBLAS (cublasGemmEx, fp16 in / fp32 compute) whose decode step is captured ONCE into
// a CUDA graph (cudaStreamBeginCapture / cudaStreamEndCapture / cudaGraphInstantiate) and replayed with
// cudaGraphLaunch for every token; the prefill runs eagerly. No framework, no NVTX.
//
// Model: hidden D=1024, H=16 heads of 64, L=4 layers, MLP F=4096 (GELU), vocab V=32000, random fp16 weights, KV cache of
// MAXCTX rows per layer. One pass over M rows at position *pos (read from device memory, so that the graphed decode
// step needs no new kernel arguments):
//   embed_kernel, then per layer: rmsnorm_kernel, GEMM x.Wqkv, kv_append_kernel, attention_kernel (causal, one block
//   per row x head), GEMM o.Wo (beta=1: residual into x), rmsnorm_kernel, GEMM h.W1, gelu_kernel, GEMM u.W2 (beta=1),
//   then rmsnorm_kernel of the last row, GEMM logits [1,D]x[D,V], argmax_kernel (-> next token on the device),
//   advance_kernel (tok[0] = next, *pos += M).
// A request: cudaMemsetAsync(pos, 0), cudaMemcpyAsync of the --prompt prompt tokens (host to device), 1 eager prefill
// pass over M = --prompt rows, then --decode times cudaGraphLaunch(decode graph: the pass above with M = 1); after
// the prefill and after each graph launch the token is read back with a 4-byte cudaMemcpyAsync device to host +
// cudaStreamSynchronize (the host reads the token). --warmup warm-up requests then --requests measured ones, back
// to back on one non-blocking stream. The graph is captured before the first request (its capture runs no kernel).
// Timings: host wall clock.
//
//   nvcc -O2 -arch=sm_90 -o cublas_graph_decode cublas_graph_decode.cu -lcublas
//   ./cublas_graph_decode --warmup 0 --requests 4 --decode 24 --prompt 128
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CK(x)                                                                                 \
  do {                                                                                        \
    cudaError_t e = (x);                                                                      \
    if (e != cudaSuccess) {                                                                   \
      fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); \
      exit(1);                                                                                \
    }                                                                                         \
  } while (0)
static bool g_soft = false;  // during a capture attempt: remember a cuBLAS error instead of exiting
static int g_cublas_errors = 0;
#define CB(x)                                                                       \
  do {                                                                              \
    cublasStatus_t s = (x);                                                         \
    if (s != CUBLAS_STATUS_SUCCESS) {                                               \
      fprintf(stderr, "cuBLAS error %d at %s:%d\n", (int)s, __FILE__, __LINE__);    \
      if (!g_soft) exit(1);                                                         \
      ++g_cublas_errors;                                                            \
    }                                                                               \
  } while (0)

constexpr int D = 1024, H = 16, HD = 64, L = 4, F = 4096, V = 32000, MAXCTX = 512;

__global__ void init_kernel(half* p, size_t n, unsigned seed, float scale) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) {
    unsigned h = (unsigned)i * 2654435761u ^ seed;
    h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
    p[i] = __float2half(((h & 0xffff) / 65535.f - 0.5f) * scale);
  }
}

__global__ void embed_kernel(const int* tok, const half* emb, half* x) {
  int r = blockIdx.x, t = tok[r];
  for (int c = threadIdx.x; c < D; c += blockDim.x) x[(size_t)r * D + c] = emb[(size_t)t * D + c];
}

// y[r] = x[r] / rms(x[r]) * g, one block of 256 threads per row
__global__ void rmsnorm_kernel(const half* x, const half* g, half* y) {
  __shared__ float red[256];
  const half* row = x + (size_t)blockIdx.x * D;
  float ss = 0.f;
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    float v = __half2float(row[c]);
    ss += v * v;
  }
  red[threadIdx.x] = ss;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) red[threadIdx.x] += red[threadIdx.x + o];
    __syncthreads();
  }
  float inv = rsqrtf(red[0] / D + 1e-6f);
  for (int c = threadIdx.x; c < D; c += blockDim.x)
    y[(size_t)blockIdx.x * D + c] = __float2half(__half2float(row[c]) * inv * __half2float(g[c]));
}

// rows pos..pos+M-1 of the layer's K and V caches from qkv[M, 3D] (q | k | v)
__global__ void kv_append_kernel(const half* qkv, half* kc, half* vc, const int* pos) {
  int r = blockIdx.x, p = *pos + r;
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    kc[(size_t)p * D + c] = qkv[(size_t)r * 3 * D + D + c];
    vc[(size_t)p * D + c] = qkv[(size_t)r * 3 * D + 2 * D + c];
  }
}

// o[r, h] = softmax(q[r,h] . K[0..ctx)^T / 8) . V[0..ctx), ctx = *pos + r + 1; grid (H, M), 128 threads
__global__ void attention_kernel(const half* qkv, const half* kc, const half* vc, half* o, const int* pos) {
  __shared__ float q[HD], s[MAXCTX], red[128];
  int h = blockIdx.x, r = blockIdx.y, ctx = *pos + r + 1;
  for (int d = threadIdx.x; d < HD; d += blockDim.x) q[d] = __half2float(qkv[(size_t)r * 3 * D + h * HD + d]);
  __syncthreads();
  float m = -1e30f;
  for (int j = threadIdx.x; j < ctx; j += blockDim.x) {
    float acc = 0.f;
    for (int d = 0; d < HD; ++d) acc += q[d] * __half2float(kc[(size_t)j * D + h * HD + d]);
    s[j] = acc * 0.125f;
    m = fmaxf(m, s[j]);
  }
  red[threadIdx.x] = m;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k >>= 1) {
    if (threadIdx.x < k) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + k]);
    __syncthreads();
  }
  m = red[0];
  __syncthreads();
  float sum = 0.f;
  for (int j = threadIdx.x; j < ctx; j += blockDim.x) {
    s[j] = __expf(s[j] - m);
    sum += s[j];
  }
  red[threadIdx.x] = sum;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k >>= 1) {
    if (threadIdx.x < k) red[threadIdx.x] += red[threadIdx.x + k];
    __syncthreads();
  }
  float inv = 1.f / red[0];
  for (int d = threadIdx.x; d < HD; d += blockDim.x) {
    float acc = 0.f;
    for (int j = 0; j < ctx; ++j) acc += s[j] * __half2float(vc[(size_t)j * D + h * HD + d]);
    o[(size_t)r * D + h * HD + d] = __float2half(acc * inv);
  }
}

__global__ void gelu_kernel(half* u, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    float v = __half2float(u[i]);
    u[i] = __float2half(0.5f * v * (1.f + tanhf(0.7978845608f * (v + 0.044715f * v * v * v))));
  }
}

__global__ void argmax_kernel(const half* logits, int n, int* out) {
  __shared__ float bv[256];
  __shared__ int bi[256];
  float best = -1e30f;
  int idx = 0;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    float v = __half2float(logits[j]);
    if (v > best) best = v, idx = j;
  }
  bv[threadIdx.x] = best;
  bi[threadIdx.x] = idx;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o && bv[threadIdx.x + o] > bv[threadIdx.x]) bv[threadIdx.x] = bv[threadIdx.x + o], bi[threadIdx.x] = bi[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = bi[0];
}

__global__ void advance_kernel(int* tok, const int* next, int* pos, int inc) {
  tok[0] = *next;
  *pos += inc;
}

struct Model {
  half *emb, *wout, *wqkv[L], *wo[L], *w1[L], *w2[L], *g1[L], *g2[L], *gf, *kc[L], *vc[L];
  half *x, *h, *qkv, *o, *u, *logits;
  int *tok_d, *next_d, *pos_d, *tok_h, *prompt_h;
  cublasHandle_t cb;
};

// Y[M,N] = X[M,K] . W[K,N] + beta * Y (row-major) = column-major Y^T = W^T . X^T
static void gemm(Model& m, const half* X, const half* W, half* Y, int M, int N, int K, float beta) {
  const float one = 1.f;
  CB(cublasGemmEx(m.cb, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &one, W, CUDA_R_16F, N, X, CUDA_R_16F, K, &beta, Y,
                  CUDA_R_16F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// one pass over M rows at position *pos; leaves the next token in next_d and tok_d[0], advances *pos by M
static void pass(Model& m, int M, cudaStream_t st) {
  embed_kernel<<<M, 128, 0, st>>>(m.tok_d, m.emb, m.x);
  for (int l = 0; l < L; ++l) {
    rmsnorm_kernel<<<M, 256, 0, st>>>(m.x, m.g1[l], m.h);
    gemm(m, m.h, m.wqkv[l], m.qkv, M, 3 * D, D, 0.f);
    kv_append_kernel<<<M, 128, 0, st>>>(m.qkv, m.kc[l], m.vc[l], m.pos_d);
    attention_kernel<<<dim3(H, M), 128, 0, st>>>(m.qkv, m.kc[l], m.vc[l], m.o, m.pos_d);
    gemm(m, m.o, m.wo[l], m.x, M, D, D, 1.f);
    rmsnorm_kernel<<<M, 256, 0, st>>>(m.x, m.g2[l], m.h);
    gemm(m, m.h, m.w1[l], m.u, M, F, D, 0.f);
    gelu_kernel<<<(M * F + 255) / 256, 256, 0, st>>>(m.u, M * F);
    gemm(m, m.u, m.w2[l], m.x, M, D, F, 1.f);
  }
  rmsnorm_kernel<<<1, 256, 0, st>>>(m.x + (size_t)(M - 1) * D, m.gf, m.h);
  gemm(m, m.h, m.wout, m.logits, 1, V, D, 0.f);
  argmax_kernel<<<1, 256, 0, st>>>(m.logits, V, m.next_d);
  advance_kernel<<<1, 1, 0, st>>>(m.tok_d, m.next_d, m.pos_d, M);
}

static int read_token(Model& m, cudaStream_t st) {
  CK(cudaMemcpyAsync(m.tok_h, m.next_d, sizeof(int), cudaMemcpyDeviceToHost, st));
  CK(cudaStreamSynchronize(st));
  return *m.tok_h;
}

static half* alloc_rand(size_t n, unsigned seed, float scale, cudaStream_t st) {
  half* p;
  CK(cudaMalloc(&p, sizeof(half) * n));
  init_kernel<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(p, n, seed, scale);
  return p;
}

int main(int argc, char** argv) {
  int warmup = 0, requests = 4, decode = 24, prompt = 128;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--requests")) requests = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--decode")) decode = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--prompt")) prompt = atoi(argv[i + 1]);
  }
  if (prompt + decode + 1 > MAXCTX) { fprintf(stderr, "prompt + decode too long\n"); return 1; }
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  Model m;
  CB(cublasCreate(&m.cb));
  CB(cublasSetStream(m.cb, st));
  void* ws;
  size_t ws_bytes = 32u << 20;  // an explicit workspace: cuBLAS allocates nothing during the capture
  CK(cudaMalloc(&ws, ws_bytes));
  CB(cublasSetWorkspace(m.cb, ws, ws_bytes));
  unsigned seed = 1;
  m.emb = alloc_rand((size_t)V * D, seed++, 2.f, st);
  m.wout = alloc_rand((size_t)D * V, seed++, 0.1f, st);
  for (int l = 0; l < L; ++l) {
    m.wqkv[l] = alloc_rand((size_t)D * 3 * D, seed++, 0.06f, st);
    m.wo[l] = alloc_rand((size_t)D * D, seed++, 0.06f, st);
    m.w1[l] = alloc_rand((size_t)D * F, seed++, 0.06f, st);
    m.w2[l] = alloc_rand((size_t)F * D, seed++, 0.03f, st);
    CK(cudaMalloc(&m.g1[l], sizeof(half) * D));
    CK(cudaMalloc(&m.g2[l], sizeof(half) * D));
    CK(cudaMalloc(&m.kc[l], sizeof(half) * MAXCTX * D));
    CK(cudaMalloc(&m.vc[l], sizeof(half) * MAXCTX * D));
  }
  CK(cudaMalloc(&m.gf, sizeof(half) * D));  // norm gains: ones
  std::vector<half> ones(D, __float2half(1.f));
  CK(cudaMemcpyAsync(m.gf, ones.data(), sizeof(half) * D, cudaMemcpyHostToDevice, st));
  for (int l = 0; l < L; ++l) {
    CK(cudaMemcpyAsync(m.g1[l], ones.data(), sizeof(half) * D, cudaMemcpyHostToDevice, st));
    CK(cudaMemcpyAsync(m.g2[l], ones.data(), sizeof(half) * D, cudaMemcpyHostToDevice, st));
  }
  CK(cudaMalloc(&m.x, sizeof(half) * MAXCTX * D));
  CK(cudaMalloc(&m.h, sizeof(half) * MAXCTX * D));
  CK(cudaMalloc(&m.qkv, sizeof(half) * MAXCTX * 3 * D));
  CK(cudaMalloc(&m.o, sizeof(half) * MAXCTX * D));
  CK(cudaMalloc(&m.u, sizeof(half) * MAXCTX * F));
  CK(cudaMalloc(&m.logits, sizeof(half) * V));
  CK(cudaMalloc(&m.tok_d, sizeof(int) * MAXCTX));
  CK(cudaMalloc(&m.next_d, sizeof(int)));
  CK(cudaMalloc(&m.pos_d, sizeof(int)));
  CK(cudaMallocHost(&m.tok_h, sizeof(int)));
  CK(cudaMallocHost(&m.prompt_h, sizeof(int) * prompt));
  for (int i = 0; i < prompt; ++i) m.prompt_h[i] = (i * 7919 + 13) % V;
  CK(cudaStreamSynchronize(st));

  // capture the decode step (M = 1) once
  auto c0 = std::chrono::steady_clock::now();
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  int eager_decode_warmup = 0;
  for (int attempt = 0;; ++attempt) {
    g_soft = true;
    g_cublas_errors = 0;
    cudaError_t e0 = cudaStreamBeginCapture(st, cudaStreamCaptureModeRelaxed);
    if (e0 == cudaSuccess) pass(m, 1, st);
    cudaError_t e1 = cudaStreamEndCapture(st, &graph);
    cudaError_t e2 = (e0 == cudaSuccess && e1 == cudaSuccess && !g_cublas_errors) ? cudaGraphInstantiate(&exec, graph, 0)
                                                                                  : cudaErrorUnknown;
    g_soft = false;
    if (e0 == cudaSuccess && e1 == cudaSuccess && e2 == cudaSuccess && !g_cublas_errors) break;
    fprintf(stderr, "capture attempt %d failed: %s / %s / %s, %d cuBLAS errors\n", attempt, cudaGetErrorString(e0),
            cudaGetErrorString(e1), cudaGetErrorString(e2), g_cublas_errors);
    cudaGetLastError();
    if (attempt == 1) return 1;
    // fall back: one eager decode pass (loads the decode step's kernels), then capture again
    CK(cudaMemsetAsync(m.pos_d, 0, sizeof(int), st));
    pass(m, 1, st);
    CK(cudaStreamSynchronize(st));
    eager_decode_warmup = 1;
  }
  size_t nodes = 0;
  CK(cudaGraphGetNodes(graph, nullptr, &nodes));
  double capture_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - c0).count();
  printf("decode graph captured: %zu nodes, %.3f ms, eager decode warm-up pass before it: %d\n", nodes, capture_ms,
         eager_decode_warmup);

  std::vector<double> req_ms, prefill_ms, decode_ms;
  int last = 0;
  for (int r = 0; r < warmup + requests; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    CK(cudaMemsetAsync(m.pos_d, 0, sizeof(int), st));
    CK(cudaMemcpyAsync(m.tok_d, m.prompt_h, sizeof(int) * prompt, cudaMemcpyHostToDevice, st));
    pass(m, prompt, st);  // eager prefill
    int tok = read_token(m, st);
    auto t1 = std::chrono::steady_clock::now();
    for (int s = 0; s < decode; ++s) {
      CK(cudaGraphLaunch(exec, st));
      tok = read_token(m, st);
    }
    auto t2 = std::chrono::steady_clock::now();
    CK(cudaGetLastError());
    last = tok;
    double a = std::chrono::duration<double, std::milli>(t1 - t0).count();
    double b = std::chrono::duration<double, std::milli>(t2 - t1).count();
    req_ms.push_back(a + b);
    prefill_ms.push_back(a);
    decode_ms.push_back(b / decode);
    printf("request %d (%s): %.3f ms (prefill %.3f ms, %.4f ms per graphed decode step), last token %d\n", r,
           r < warmup ? "warmup" : "measured", a + b, a, b / decode, tok);
  }
  double sum = 0, sp = 0, sd = 0;
  for (int r = warmup; r < warmup + requests; ++r) sum += req_ms[r], sp += prefill_ms[r], sd += decode_ms[r];
  printf("RESULT {\"workload\": \"cublas_graph_decode\", \"warmup\": %d, \"requests\": %d, \"decode\": %d, \"prompt\": %d, "
         "\"graph_nodes\": %zu, \"capture_ms\": %.3f, \"eager_decode_warmup_pass\": %d, \"request_ms\": [",
         warmup, requests, decode, prompt, nodes, capture_ms, eager_decode_warmup);
  for (size_t i = 0; i < req_ms.size(); ++i) printf("%s%.3f", i ? ", " : "", req_ms[i]);
  printf("], \"prefill_ms\": [");
  for (size_t i = 0; i < prefill_ms.size(); ++i) printf("%s%.3f", i ? ", " : "", prefill_ms[i]);
  printf("], \"ms_per_request_measured\": %.4f, \"prefill_ms_measured\": %.4f, \"ms_per_decode_step_measured\": %.4f, "
         "\"last_token\": %d}\n", sum / requests, sp / requests, sd / requests, last);
  CK(cudaGraphExecDestroy(exec));
  CK(cudaGraphDestroy(graph));
  CB(cublasDestroy(m.cb));
  return 0;
}
