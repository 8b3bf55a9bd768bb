// CUDA kernels for the element-wise and row-wise ops of CudaBackend: RMSNorm,
// RoPE, SwiGLU, row gather/scatter (embeddings, expert permute/combine),
// log-softmax logprob/entropy, axpy, and the AdamW update. fp32 throughout
// (these ops are bandwidth-bound; bf16 is used inside the GEMMs only).
// Plain grid-stride / block-per-row kernels: no templates beyond the reducer,
// so the file compiles quickly for sm_80 and sm_90.
#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/kernels.h"
#include "model/ops/cuda/reduce.cuh"

namespace zerorl::model::ops::cuda {
namespace {

constexpr int kThreads = 256;

// ---- RMSNorm: one block per row ----
__global__ void RmsNormFwdKernel(float* out, float* rstd, const float* x, const float* w, int64_t C,
                                 int64_t x_stride, int64_t out_stride, float eps) {
  const int64_t n = blockIdx.x;
  const float* xr = x + n * x_stride;
  float ss = 0.f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) ss += xr[c] * xr[c];
  ss = BlockSum(ss);
  const float r = 1.f / sqrtf(ss / static_cast<float>(C) + eps);
  if (rstd && threadIdx.x == 0) rstd[n] = r;
  float* o = out + n * out_stride;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) o[c] = xr[c] * r * w[c];
}

__global__ void RmsNormBwdDxKernel(float* dx, const float* dout, const float* x, const float* w, const float* rstd,
                                   int64_t C, int64_t x_stride, int64_t dout_stride) {
  const int64_t n = blockIdx.x;
  const float* xr = x + n * x_stride;
  const float* g = dout + n * dout_stride;
  float s = 0.f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += g[c] * w[c] * xr[c];
  s = BlockSum(s);
  const float r = rstd[n];
  const float k = s * r * r * r / static_cast<float>(C);
  float* d = dx + n * x_stride;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) d[c] += r * w[c] * g[c] - k * xr[c];
}

// dw[c] += sum_n dout[n,c] x[n,c] rstd[n]; grid.y splits the rows into chunks.
constexpr int64_t kDwRows = 128;
__global__ void RmsNormBwdDwKernel(float* dw, const float* dout, const float* x, const float* rstd, int64_t N,
                                   int64_t C, int64_t x_stride, int64_t dout_stride) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  const int64_t n0 = blockIdx.y * kDwRows, n1 = min(N, n0 + kDwRows);
  float acc = 0.f;
  for (int64_t n = n0; n < n1; ++n) acc += dout[n * dout_stride + c] * x[n * x_stride + c] * rstd[n];
  if (gridDim.y == 1) dw[c] += acc;
  else atomicAdd(dw + c, acc);
}

// ---- RoPE: one thread per (token, head, pair) ----
__global__ void RopeKernel(float* x, const int32_t* pos, int64_t N, int64_t nh, int64_t stride, int64_t head_stride,
                           int64_t off, int64_t rd, float theta, bool interleaved, bool inverse) {
  const int64_t half = rd / 2;
  const int64_t total = N * nh * half;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t % half, h = (t / half) % nh, n = t / (half * nh);
    const float inv_freq = 1.f / powf(theta, static_cast<float>(2 * i) / static_cast<float>(rd));
    const float a = static_cast<float>(pos[n]) * inv_freq;
    const float cs = cosf(a), sn = inverse ? -sinf(a) : sinf(a);
    float* b = x + n * stride + h * head_stride + off;
    float* pa = interleaved ? b + 2 * i : b + i;
    float* pb = interleaved ? b + 2 * i + 1 : b + i + half;
    const float va = *pa, vb = *pb;
    *pa = va * cs - vb * sn;
    *pb = vb * cs + va * sn;
  }
}

// ---- SwiGLU on h[N, 2I] = [gate | up] ----
__global__ void SwiGluFwdKernel(float* out, const float* h, int64_t N, int64_t I) {
  const int64_t total = N * I;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = t / I, i = t % I;
    const float g = h[n * 2 * I + i], u = h[n * 2 * I + I + i];
    out[t] = g / (1.f + expf(-g)) * u;
  }
}

__global__ void SwiGluBwdKernel(float* dh, const float* dout, const float* h, int64_t N, int64_t I) {
  const int64_t total = N * I;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = t / I, i = t % I;
    const float g = h[n * 2 * I + i], u = h[n * 2 * I + I + i], d = dout[t];
    const float s = 1.f / (1.f + expf(-g));
    dh[n * 2 * I + I + i] = d * g * s;
    dh[n * 2 * I + i] = d * u * s * (1.f + g * (1.f - s));
  }
}

// ---- Row gather / scatter-add: one block per row ----
__global__ void GatherRowsKernel(float* out, const float* in, const int32_t* idx, int64_t C) {
  const int64_t m = blockIdx.x;
  const float* src = in + static_cast<int64_t>(idx[m]) * C;
  float* dst = out + m * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
}

__global__ void ScatterAddRowsKernel(float* out, const float* in, const int32_t* idx, const float* scale, int64_t C) {
  const int64_t m = blockIdx.x;
  const float s = scale ? scale[m] : 1.f;
  float* dst = out + static_cast<int64_t>(idx[m]) * C;
  const float* src = in + m * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) atomicAdd(dst + c, s * src[c]);
}

// ---- Row-wise log-softmax: one block per row of logits[N, V] ----

// A row's softmax statistics, reduced over the block and returned to every
// thread: mx = max_v z[v], sum = Σ_v exp(z[v] - mx), pz = Σ_v exp(z[v] - mx)·z[v]
// (pz only when with_pz, which must be the same for the whole block).
struct SoftmaxRow {
  float mx, sum, pz;
};
__device__ __forceinline__ SoftmaxRow SoftmaxRowStats(const float* z, int64_t V, bool with_pz) {
  float mx = -INFINITY;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, z[v]);
  mx = BlockMax(mx);
  float sum = 0.f, pz = 0.f;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    const float e = expf(z[v] - mx);
    sum += e;
    pz += e * z[v];
  }
  sum = BlockSum(sum);
  if (with_pz) pz = BlockSum(pz);
  return {mx, sum, pz};
}

__global__ void LogProbFwdKernel(float* logp, float* entropy, const float* logits, const int32_t* target,
                                 int64_t V) {
  const int64_t n = blockIdx.x;
  const int32_t t = target[n];
  if (t < 0) {
    if (threadIdx.x == 0) {
      logp[n] = 0.f;
      if (entropy) entropy[n] = 0.f;
    }
    return;
  }
  const float* z = logits + n * V;
  const SoftmaxRow r = SoftmaxRowStats(z, V, entropy != nullptr);
  if (threadIdx.x == 0) {
    const float lse = r.mx + logf(r.sum);
    logp[n] = z[t] - lse;
    if (entropy) entropy[n] = lse - r.pz / r.sum;
  }
}

__global__ void LogProbBwdKernel(float* dlogits, const float* dlogp, const float* dentropy, const float* logits,
                                 const int32_t* target, int64_t V) {
  const int64_t n = blockIdx.x;
  const int32_t t = target[n];
  const float gl = dlogp ? dlogp[n] : 0.f, ge = dentropy ? dentropy[n] : 0.f;
  float* dz = dlogits + n * V;
  if (t < 0 || (gl == 0.f && ge == 0.f)) {
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) dz[v] = 0.f;
    return;
  }
  const float* z = logits + n * V;
  const SoftmaxRow r = SoftmaxRowStats(z, V, /*with_pz=*/true);
  const float mx = r.mx, lse = mx + logf(r.sum), inv = 1.f / r.sum;
  const float H = lse - r.pz * inv;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    const float p = expf(z[v] - mx) * inv;
    float g = -gl * p;
    if (ge != 0.f) g -= ge * p * ((z[v] - lse) + H);
    if (v == t) g += gl;
    dz[v] = g;
  }
}

// ---- Vector ops ----
__global__ void AxpyKernel(float* y, const float* x, float a, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] += a * x[i];
}

__global__ void ScaleKernel(float* x, float s, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] *= s;
}

__global__ void SumSquaresKernel(float* out, const float* x, int64_t n) {
  float acc = 0.f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    acc += x[i] * x[i];
  acc = BlockSum(acc);
  if (threadIdx.x == 0) atomicAdd(out, acc);
}

__global__ void AdamWKernel(float* w, float* m, float* v, const float* g, int64_t n, float lr, float b1, float b2,
                            float eps, float wd, float bc1, float bc2) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float gi = g[i];
    const float mi = b1 * m[i] + (1.f - b1) * gi;
    const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float mh = mi / bc1, vh = vi / bc2;
    w[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * w[i]);
  }
}

// Grid-stride launches cap the grid; 65536 blocks of 256 cover 16M elements per pass.
unsigned StrideBlocks(int64_t n) {
  unsigned b = Blocks(n, kThreads);
  return b > 65536u ? 65536u : b;
}

// Threads for a block-per-row kernel over rows of `cols` elements.
int RowThreads(int64_t cols) { return cols >= 4096 ? 1024 : (cols >= 512 ? 256 : 128); }

}  // namespace

void LaunchRmsNormForward(float* out, float* rstd, const float* x, const float* w, int64_t N, int64_t C,
                          int64_t x_stride, int64_t out_stride, float eps, cudaStream_t stream) {
  if (N <= 0) return;
  RmsNormFwdKernel<<<static_cast<unsigned>(N), RowThreads(C), 0, stream>>>(out, rstd, x, w, C, x_stride, out_stride,
                                                                            eps);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchRmsNormBackward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                           const float* rstd, int64_t N, int64_t C, int64_t x_stride, int64_t dout_stride,
                           cudaStream_t stream) {
  if (N <= 0) return;
  RmsNormBwdDxKernel<<<static_cast<unsigned>(N), RowThreads(C), 0, stream>>>(dx, dout, x, w, rstd, C, x_stride,
                                                                              dout_stride);
  ZRL_CUDA_CHECK_LAUNCH();
  if (dw) {
    dim3 grid(Blocks(C, kThreads), static_cast<unsigned>((N + kDwRows - 1) / kDwRows));
    RmsNormBwdDwKernel<<<grid, kThreads, 0, stream>>>(dw, dout, x, rstd, N, C, x_stride, dout_stride);
    ZRL_CUDA_CHECK_LAUNCH();
  }
}

void LaunchRope(float* x, const int32_t* pos, int64_t N, int64_t nh, int64_t stride, int64_t head_stride,
                int64_t off, int64_t rd, float theta, bool interleaved, bool inverse, cudaStream_t stream) {
  const int64_t total = N * nh * (rd / 2);
  if (total <= 0) return;
  RopeKernel<<<StrideBlocks(total), kThreads, 0, stream>>>(x, pos, N, nh, stride, head_stride, off, rd, theta,
                                                           interleaved, inverse);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchSwiGluForward(float* out, const float* h, int64_t N, int64_t I, cudaStream_t stream) {
  if (N * I <= 0) return;
  SwiGluFwdKernel<<<StrideBlocks(N * I), kThreads, 0, stream>>>(out, h, N, I);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchSwiGluBackward(float* dh, const float* dout, const float* h, int64_t N, int64_t I, cudaStream_t stream) {
  if (N * I <= 0) return;
  SwiGluBwdKernel<<<StrideBlocks(N * I), kThreads, 0, stream>>>(dh, dout, h, N, I);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchGatherRows(float* out, const float* in, const int32_t* idx, int64_t M, int64_t C, cudaStream_t stream) {
  if (M <= 0 || C <= 0) return;
  GatherRowsKernel<<<static_cast<unsigned>(M), RowThreads(C), 0, stream>>>(out, in, idx, C);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchScatterAddRows(float* out, const float* in, const int32_t* idx, const float* scale, int64_t M, int64_t C,
                          cudaStream_t stream) {
  if (M <= 0 || C <= 0) return;
  ScatterAddRowsKernel<<<static_cast<unsigned>(M), RowThreads(C), 0, stream>>>(out, in, idx, scale, C);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchLogProbForward(float* logp, float* entropy, const float* logits, const int32_t* target, int64_t N,
                          int64_t V, cudaStream_t stream) {
  if (N <= 0) return;
  LogProbFwdKernel<<<static_cast<unsigned>(N), RowThreads(V), 0, stream>>>(logp, entropy, logits, target, V);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchLogProbBackward(float* dlogits, const float* dlogp, const float* dentropy, const float* logits,
                           const int32_t* target, int64_t N, int64_t V, cudaStream_t stream) {
  if (N <= 0) return;
  LogProbBwdKernel<<<static_cast<unsigned>(N), RowThreads(V), 0, stream>>>(dlogits, dlogp, dentropy, logits, target,
                                                                            V);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchAxpy(float* y, const float* x, float a, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  AxpyKernel<<<StrideBlocks(n), kThreads, 0, stream>>>(y, x, a, n);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchScale(float* x, float s, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  ScaleKernel<<<StrideBlocks(n), kThreads, 0, stream>>>(x, s, n);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchSumSquares(float* out, const float* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  unsigned b = StrideBlocks(n);
  SumSquaresKernel<<<b > 1024u ? 1024u : b, kThreads, 0, stream>>>(out, x, n);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchAdamW(float* w, float* m, float* v, const float* g, int64_t n, float lr, float beta1, float beta2,
                 float eps, float weight_decay, float bc1, float bc2, cudaStream_t stream) {
  if (n <= 0) return;
  AdamWKernel<<<StrideBlocks(n), kThreads, 0, stream>>>(w, m, v, g, n, lr, beta1, beta2, eps, weight_decay, bc1,
                                                        bc2);
  ZRL_CUDA_CHECK_LAUNCH();
}

}  // namespace zerorl::model::ops::cuda
