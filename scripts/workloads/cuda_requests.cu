// A hand-written CUDA C++ "LLM-like" program with its own kernel names (no cuBLAS, no framework), for testing
// nsys-doctor on code whose kernels it has never seen.
//
// Model: hidden D=512, L=4 layers, vocab V=8192, random weights (fp32). Per pass over M rows:
//   embed_gather_kernel (tokens -> rows), then per layer:
//     tiled_matmul_kernel (X[M,D] x Wq[D,D]), kv_append_kernel (append M rows to the layer's key cache),
//     attn_scores_kernel (Q . K^T over the ctx cached rows, causal), row_softmax_kernel,
//     attn_apply_kernel (P . K, keys reused as values), tiled_matmul_kernel (x W1), gelu_residual_kernel,
//     rownorm_kernel (layernorm-like, one block per row)
//   then tiled_matmul_kernel for the logits of the last row [1,D]x[D,V], argmax_kernel (one block), a 4-byte
//   cudaMemcpyAsync device-to-host of the token and cudaStreamSynchronize (host reads the token).
// Everything runs on one created (non-default) stream. A request = 1 prefill-like pass over --prompt rows
// (M = prompt) + --decode decode-like passes (M = 1 row, the token of the previous pass), each pass ending with the
// token read-back + cudaStreamSynchronize. --warmup warm-up requests, then --requests measured ones, back to back;
// timings are host wall clock around each request. No NVTX. With --host-sample 1 the host samples instead
// (as simple engines do): no argmax_kernel; each pass copies the logits of its last row to the host
// (cudaMemcpyAsync device-to-host of V floats + cudaStreamSynchronize), the host takes their argmax, and the next
// decode pass starts with a 4-byte host-to-device copy of that token. With --gpu-tokens 1 the tokens stay on the
// GPU (no read-back or sync per pass: each argmax writes the request's token buffer, the next pass reads it), and
// the request's tokens are copied back once at its end (one cudaMemcpyAsync device-to-host + sync).
//
//   nvcc -O2 -arch=sm_90 -o cuda_requests cuda_requests.cu && ./cuda_requests --warmup 0 --requests 5 --decode 20
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CK(x)                                                                              \
  do {                                                                                     \
    cudaError_t e = (x);                                                                   \
    if (e != cudaSuccess) {                                                                \
      fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); \
      exit(1);                                                                             \
    }                                                                                      \
  } while (0)

constexpr int D = 512, L = 4, V = 8192, MAXCTX = 1024, TILE = 16;

__global__ void embed_gather_kernel(const int* tok, const float* emb, float* x, int M) {
  int r = blockIdx.x, t = tok[r];
  for (int c = threadIdx.x; c < D; c += blockDim.x) x[r * D + c] = emb[(size_t)t * D + c];
}

// C[M,N] = A[M,K] x B[K,N], 16x16 shared-memory tiles
__global__ void tiled_matmul_kernel(const float* A, const float* B, float* C, int M, int N, int K) {
  __shared__ float As[TILE][TILE], Bs[TILE][TILE];
  int row = blockIdx.y * TILE + threadIdx.y, col = blockIdx.x * TILE + threadIdx.x;
  float acc = 0.f;
  for (int k0 = 0; k0 < K; k0 += TILE) {
    As[threadIdx.y][threadIdx.x] = (row < M && k0 + threadIdx.x < K) ? A[row * K + k0 + threadIdx.x] : 0.f;
    Bs[threadIdx.y][threadIdx.x] = (col < N && k0 + threadIdx.y < K) ? B[(k0 + threadIdx.y) * N + col] : 0.f;
    __syncthreads();
#pragma unroll
    for (int k = 0; k < TILE; ++k) acc += As[threadIdx.y][k] * Bs[k][threadIdx.x];
    __syncthreads();
  }
  if (row < M && col < N) C[row * N + col] = acc;
}

__global__ void kv_append_kernel(const float* q, float* kcache, int pos, int M) {
  int r = blockIdx.x;
  for (int c = threadIdx.x; c < D; c += blockDim.x) kcache[(size_t)(pos + r) * D + c] = q[r * D + c];
}

// S[M,ctx] = Q[M,D] . K[ctx,D]^T / sqrt(D), causal: row r sees keys < pos + r + 1
__global__ void attn_scores_kernel(const float* q, const float* k, float* s, int M, int ctx, int pos) {
  int r = blockIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= ctx) return;
  float acc = 0.f;
  for (int c = 0; c < D; ++c) acc += q[r * D + c] * k[(size_t)j * D + c];
  s[(size_t)r * ctx + j] = (j <= pos + r) ? acc * rsqrtf((float)D) : -1e30f;
}

__global__ void row_softmax_kernel(float* s, int ctx) {
  __shared__ float red[256];
  float* row = s + (size_t)blockIdx.x * ctx;
  float m = -1e30f;
  for (int j = threadIdx.x; j < ctx; j += blockDim.x) m = fmaxf(m, row[j]);
  red[threadIdx.x] = m;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + o]);
    __syncthreads();
  }
  m = red[0];
  __syncthreads();
  float sum = 0.f;
  for (int j = threadIdx.x; j < ctx; j += blockDim.x) {
    float e = __expf(row[j] - m);
    row[j] = e;
    sum += e;
  }
  red[threadIdx.x] = sum;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) red[threadIdx.x] += red[threadIdx.x + o];
    __syncthreads();
  }
  float inv = 1.f / red[0];
  for (int j = threadIdx.x; j < ctx; j += blockDim.x) row[j] *= inv;
}

// O[M,D] = P[M,ctx] . K[ctx,D]
__global__ void attn_apply_kernel(const float* p, const float* k, float* o, int M, int ctx) {
  int r = blockIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= D) return;
  float acc = 0.f;
  for (int j = 0; j < ctx; ++j) acc += p[(size_t)r * ctx + j] * k[(size_t)j * D + c];
  o[r * D + c] = acc;
}

__global__ void gelu_residual_kernel(const float* h, float* x, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    float v = h[i];
    x[i] += 0.5f * v * (1.f + tanhf(0.7978845608f * (v + 0.044715f * v * v * v)));
  }
}

__global__ void rownorm_kernel(float* x, const float* gamma) {
  __shared__ float red[2][256];
  float* row = x + (size_t)blockIdx.x * D;
  float s = 0.f, ss = 0.f;
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    s += row[c];
    ss += row[c] * row[c];
  }
  red[0][threadIdx.x] = s;
  red[1][threadIdx.x] = ss;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) {
      red[0][threadIdx.x] += red[0][threadIdx.x + o];
      red[1][threadIdx.x] += red[1][threadIdx.x + o];
    }
    __syncthreads();
  }
  float mean = red[0][0] / D, var = red[1][0] / D - mean * mean, inv = rsqrtf(var + 1e-5f);
  for (int c = threadIdx.x; c < D; c += blockDim.x) row[c] = (row[c] - mean) * inv * gamma[c];
}

__global__ void argmax_kernel(const float* logits, int n, int* out) {
  __shared__ float bv[256];
  __shared__ int bi[256];
  float best = -1e30f;
  int idx = 0;
  for (int j = threadIdx.x; j < n; j += blockDim.x)
    if (logits[j] > best) best = logits[j], idx = j;
  bv[threadIdx.x] = best;
  bi[threadIdx.x] = idx;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o && bv[threadIdx.x + o] > bv[threadIdx.x]) bv[threadIdx.x] = bv[threadIdx.x + o], bi[threadIdx.x] = bi[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = bi[0];
}

__global__ void init_kernel(float* p, size_t n, unsigned seed, float scale) {
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) {
    unsigned h = (unsigned)i * 2654435761u ^ seed;
    h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
    p[i] = ((h & 0xffff) / 65535.f - 0.5f) * scale;
  }
}

struct Model {
  float *emb, *wq[L], *w1[L], *gamma[L], *wout, *kcache[L];
  float *x, *q, *h, *s;
  int *tok_d, *next_d, *tok_h;
  float* logits_h;
};

static bool host_sample = false;
static bool gpu_tokens = false;

static void rnd(float* p, size_t n, unsigned seed, float scale, cudaStream_t st) {
  init_kernel<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(p, n, seed, scale);
}

// one forward pass over M rows starting at position pos; returns the next token (host read after sync)
static int pass(Model& m, int M, int pos, cudaStream_t st) {
  int ctx = pos + M;
  embed_gather_kernel<<<M, 128, 0, st>>>(m.tok_d, m.emb, m.x, M);
  dim3 blk(TILE, TILE), gD((D + TILE - 1) / TILE, (M + TILE - 1) / TILE);
  for (int l = 0; l < L; ++l) {
    tiled_matmul_kernel<<<gD, blk, 0, st>>>(m.x, m.wq[l], m.q, M, D, D);
    kv_append_kernel<<<M, 128, 0, st>>>(m.q, m.kcache[l], pos, M);
    attn_scores_kernel<<<dim3((ctx + 127) / 128, M), 128, 0, st>>>(m.q, m.kcache[l], m.s, M, ctx, pos);
    row_softmax_kernel<<<M, 256, 0, st>>>(m.s, ctx);
    attn_apply_kernel<<<dim3((D + 127) / 128, M), 128, 0, st>>>(m.s, m.kcache[l], m.h, M, ctx);
    tiled_matmul_kernel<<<gD, blk, 0, st>>>(m.h, m.w1[l], m.q, M, D, D);
    gelu_residual_kernel<<<(M * D + 255) / 256, 256, 0, st>>>(m.q, m.x, M * D);
    rownorm_kernel<<<M, 256, 0, st>>>(m.x, m.gamma[l]);
  }
  dim3 gV((V + TILE - 1) / TILE, 1);
  tiled_matmul_kernel<<<gV, blk, 0, st>>>(m.x + (size_t)(M - 1) * D, m.wout, m.s, 1, V, D);
  if (host_sample) {
    CK(cudaMemcpyAsync(m.logits_h, m.s, sizeof(float) * V, cudaMemcpyDeviceToHost, st));
    CK(cudaStreamSynchronize(st));
    CK(cudaGetLastError());
    int best = 0;
    for (int j = 1; j < V; ++j)
      if (m.logits_h[j] > m.logits_h[best]) best = j;
    *m.tok_h = best;
    return best;
  }
  argmax_kernel<<<1, 256, 0, st>>>(m.s, V, m.next_d);
  if (gpu_tokens) return -1;  // the token stays on the GPU
  CK(cudaMemcpyAsync(m.tok_h, m.next_d, sizeof(int), cudaMemcpyDeviceToHost, st));
  CK(cudaStreamSynchronize(st));
  CK(cudaGetLastError());
  return *m.tok_h;
}

int main(int argc, char** argv) {
  int warmup = 0, requests = 5, decode = 20, prompt = 128;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--requests")) requests = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--decode")) decode = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--prompt")) prompt = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--host-sample")) host_sample = atoi(argv[i + 1]) != 0;
    else if (!strcmp(argv[i], "--gpu-tokens")) gpu_tokens = atoi(argv[i + 1]) != 0;
  }
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  Model m;
  unsigned seed = 1;
  CK(cudaMalloc(&m.emb, sizeof(float) * V * D));
  rnd(m.emb, (size_t)V * D, seed++, 1.f, st);
  for (int l = 0; l < L; ++l) {
    CK(cudaMalloc(&m.wq[l], sizeof(float) * D * D));
    CK(cudaMalloc(&m.w1[l], sizeof(float) * D * D));
    CK(cudaMalloc(&m.gamma[l], sizeof(float) * D));
    CK(cudaMalloc(&m.kcache[l], sizeof(float) * MAXCTX * D));
    rnd(m.wq[l], (size_t)D * D, seed++, 0.1f, st);
    rnd(m.w1[l], (size_t)D * D, seed++, 0.1f, st);
    rnd(m.gamma[l], D, seed++, 2.f, st);
  }
  CK(cudaMalloc(&m.wout, sizeof(float) * D * V));
  rnd(m.wout, (size_t)D * V, seed++, 0.1f, st);
  CK(cudaMalloc(&m.x, sizeof(float) * MAXCTX * D));
  CK(cudaMalloc(&m.q, sizeof(float) * MAXCTX * D));
  CK(cudaMalloc(&m.h, sizeof(float) * MAXCTX * D));
  CK(cudaMalloc(&m.s, sizeof(float) * (size_t)MAXCTX * MAXCTX));
  CK(cudaMalloc(&m.tok_d, sizeof(int) * MAXCTX));
  CK(cudaMalloc(&m.next_d, sizeof(int)));
  CK(cudaMallocHost(&m.tok_h, sizeof(int)));
  CK(cudaMallocHost(&m.logits_h, sizeof(float) * V));
  std::vector<int> ptok(prompt);
  for (int i = 0; i < prompt; ++i) ptok[i] = (i * 7919 + 13) % V;
  CK(cudaStreamSynchronize(st));

  std::vector<double> req_ms, prefill_ms, decode_ms;
  int last = 0;
  for (int r = 0; r < warmup + requests; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    CK(cudaMemcpyAsync(m.tok_d, ptok.data(), sizeof(int) * prompt, cudaMemcpyHostToDevice, st));
    int tok = pass(m, prompt, 0, st);
    auto t1 = std::chrono::steady_clock::now();
    for (int s = 0; s < decode; ++s) {
      if (host_sample)
        CK(cudaMemcpyAsync(m.tok_d, m.tok_h, sizeof(int), cudaMemcpyHostToDevice, st));
      else
        CK(cudaMemcpyAsync(m.tok_d, m.next_d, sizeof(int), cudaMemcpyDeviceToDevice, st));
      tok = pass(m, 1, prompt + s, st);
    }
    if (gpu_tokens) {  // the request's last token, read back once at its end
      CK(cudaMemcpyAsync(m.tok_h, m.next_d, sizeof(int), cudaMemcpyDeviceToHost, st));
      CK(cudaStreamSynchronize(st));
      tok = *m.tok_h;
    }
    auto t2 = std::chrono::steady_clock::now();
    last = tok;
    double a = std::chrono::duration<double, std::milli>(t1 - t0).count();
    double b = std::chrono::duration<double, std::milli>(t2 - t1).count();
    req_ms.push_back(a + b);
    prefill_ms.push_back(a);
    decode_ms.push_back(b / decode);
    printf("request %d (%s): %.3f ms (prefill %.3f ms, %.4f ms per decode pass), last token %d\n", r,
           r < warmup ? "warmup" : "measured", a + b, a, b / decode, tok);
  }
  double sum = 0, sp = 0, sd = 0;
  for (int r = warmup; r < warmup + requests; ++r) sum += req_ms[r], sp += prefill_ms[r], sd += decode_ms[r];
  printf("RESULT {\"workload\": \"cuda_requests\", \"warmup\": %d, \"requests\": %d, \"decode\": %d, \"prompt\": %d, "
         "\"request_ms\": [", warmup, requests, decode, prompt);
  for (size_t i = 0; i < req_ms.size(); ++i) printf("%s%.3f", i ? ", " : "", req_ms[i]);
  printf("], \"ms_per_request_measured\": %.4f, \"prefill_ms_measured\": %.4f, \"ms_per_decode_pass_measured\": %.4f, "
         "\"last_token\": %d}\n", sum / requests, sp / requests, sd / requests, last);
  return 0;
}
