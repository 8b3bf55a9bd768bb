// CUDA kernels of the MoE routing ops of CudaBackend (semantics: ops.h, the
// CPU reference: model/ops/cpu/):
//  - RouterScores(+Backward): one warp per token row of E experts;
//  - RouterTopK: one warp per token; the row's choices (scores + bias) sit in
//    shared memory, groups are ranked like a stable sort (ties: lower group),
//    losers masked to 0.0, then K warp-wide argmax rounds pick the experts in
//    descending order (ties: lower index first); lane 0 forms the combine
//    weights in the CPU's order of operations;
//  - RouterTopKBackward: one thread per token (its K indices are distinct);
//  - RouterGateWeights (routing replay): one thread per token;
//  - MoePermute: a per-expert count (atomicAdd), then one block per expert
//    walks the routed slots in (token, k) order and places its rows with a
//    ballot prefix count — a stable counting sort, no atomics in the order;
//  - MoeCombineBackward: one block per routed row.
#include <climits>
#include <cstdio>
#include <cstdlib>

#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/kernels.h"
#include "model/ops/cuda/reduce.cuh"

namespace zerorl::model::ops::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

__global__ void RouterScoresKernel(float* scores, const float* logits, int64_t N, int64_t E, bool sigmoid) {
  const int lane = threadIdx.x & 31;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (n >= N) return;  // whole warp
  const float* z = logits + n * E;
  float* s = scores + n * E;
  if (sigmoid) {
    for (int64_t e = lane; e < E; e += 32) s[e] = 1.f / (1.f + expf(-z[e]));
    return;
  }
  float mx = -INFINITY;
  for (int64_t e = lane; e < E; e += 32) mx = fmaxf(mx, z[e]);
  mx = WarpMax(mx);
  float sum = 0.f;
  for (int64_t e = lane; e < E; e += 32) sum += expf(z[e] - mx);
  sum = WarpSum(sum);
  for (int64_t e = lane; e < E; e += 32) s[e] = expf(z[e] - mx) / sum;
}

__global__ void RouterScoresBwdKernel(float* dlogits, const float* dscores, const float* scores, int64_t N,
                                      int64_t E, bool sigmoid) {
  const int lane = threadIdx.x & 31;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (n >= N) return;
  const float* s = scores + n * E;
  const float* d = dscores + n * E;
  float* z = dlogits + n * E;
  if (sigmoid) {
    for (int64_t e = lane; e < E; e += 32) z[e] = d[e] * s[e] * (1.f - s[e]);
    return;
  }
  float dot = 0.f;
  for (int64_t e = lane; e < E; e += 32) dot += d[e] * s[e];
  dot = WarpSum(dot);
  for (int64_t e = lane; e < E; e += 32) z[e] = s[e] * (d[e] - dot);
}

// (v, i) beats (bv, bi): larger value, ties to the lower index.
__device__ __forceinline__ bool Beats(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

// Per warp in shared memory: choice[E] floats, gsum[G] floats, taken[E] ints, keep[G] ints.
__global__ void RouterTopKKernel(int32_t* idx, float* w, const float* scores, const float* bias, int64_t N,
                                 int64_t E, int64_t K, int64_t G, int64_t TG, bool normalize, float scale) {
  extern __shared__ float smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + warp;
  if (n >= N) return;  // whole warp; the kernel has no block-wide barriers
  float* choice = smem + warp * 2 * (E + G);
  float* gsum = choice + E;
  int* taken = reinterpret_cast<int*>(gsum + G);
  int* keep = taken + E;
  const float* s = scores + n * E;
  for (int64_t e = lane; e < E; e += 32) {
    choice[e] = s[e] + (bias ? bias[e] : 0.f);
    taken[e] = 0;
  }
  __syncwarp();
  if (G > 1) {
    const int64_t per = E / G;
    for (int64_t g = lane; g < G; g += 32) {  // top-2 sum of each group, as the CPU's scan
      float a = -INFINITY, b = -INFINITY;
      for (int64_t e = g * per; e < (g + 1) * per; ++e) {
        const float v = choice[e];
        if (v > a) {
          b = a;
          a = v;
        } else if (v > b) {
          b = v;
        }
      }
      gsum[g] = a + b;
    }
    __syncwarp();
    for (int64_t g = lane; g < G; g += 32) {  // position in a stable descending sort
      int64_t rank = 0;
      for (int64_t h = 0; h < G; ++h) rank += gsum[h] > gsum[g] || (gsum[h] == gsum[g] && h < g);
      keep[g] = rank < TG;
    }
    __syncwarp();
    for (int64_t e = lane; e < E; e += 32) {
      const int64_t g = e / per;
      if (g < G && !keep[g]) choice[e] = 0.f;
    }
    __syncwarp();
  }
  int32_t* id = idx + n * K;
  float* wr = w + n * K;
  for (int64_t k = 0; k < K; ++k) {
    float bv = -INFINITY;
    int bi = INT_MAX;  // any untaken element beats this sentinel (K <= E is checked by the launcher)
    for (int64_t e = lane; e < E; e += 32) {
      if (taken[e]) continue;
      float v = choice[e];
      if (v != v) v = -INFINITY;  // NaN ranks last
      if (Beats(v, static_cast<int>(e), bv, bi)) bv = v, bi = static_cast<int>(e);
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (Beats(ov, oi, bv, bi)) bv = ov, bi = oi;
    }
    if (lane == 0) {
      taken[bi] = 1;
      id[k] = bi;
      wr[k] = s[bi];
    }
    __syncwarp();
  }
  if (lane == 0) {
    float sum = 0.f;
    for (int64_t k = 0; k < K; ++k) sum += wr[k];
    for (int64_t k = 0; k < K; ++k) wr[k] = (normalize ? wr[k] / (sum + 1e-20f) : wr[k]) * scale;
  }
}

__global__ void RouterTopKBwdKernel(float* dscores, const float* dw, const float* scores, const int32_t* idx,
                                    int64_t N, int64_t E, int64_t K, bool normalize, float scale) {
  const int64_t n = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (n >= N) return;
  const float* s = scores + n * E;
  const int32_t* id = idx + n * K;
  const float* g = dw + n * K;
  float* d = dscores + n * E;
  if (normalize) {
    float S = 0.f, gs = 0.f;
    for (int64_t k = 0; k < K; ++k) S += s[id[k]];
    S += 1e-20f;
    for (int64_t k = 0; k < K; ++k) gs += g[k] * s[id[k]];
    for (int64_t k = 0; k < K; ++k) d[id[k]] += scale / S * (g[k] - gs / S);
  } else {
    for (int64_t k = 0; k < K; ++k) d[id[k]] += scale * g[k];
  }
}

// The combine weights of replayed picks, in the CPU's (and RouterTopKKernel's
// lane 0's) order of operations.
__global__ void RouterGateWeightsKernel(float* w, const float* scores, const int32_t* idx, int64_t N, int64_t E,
                                        int64_t K, bool normalize, float scale) {
  const int64_t n = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (n >= N) return;
  const float* s = scores + n * E;
  const int32_t* id = idx + n * K;
  float* wr = w + n * K;
  float sum = 0.f;
  for (int64_t k = 0; k < K; ++k) sum += (wr[k] = s[id[k]]);
  for (int64_t k = 0; k < K; ++k) wr[k] = (normalize ? wr[k] / (sum + 1e-20f) : wr[k]) * scale;
}

__global__ void ExpertCountKernel(int32_t* counts, const int32_t* idx, int64_t R, int64_t E) {
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < R;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t e = idx[r];
    if (e >= 0 && e < E) atomicAdd(counts + e, 1);
  }
}

// Block e: rows of expert e at [base, base + counts[e]), base = sum counts[<e],
// in routed-slot order r = n*K + k. blockDim: a multiple of 32, <= 1024.
__global__ void ExpertPlaceKernel(int32_t* row_token, int32_t* row_slot, const int32_t* counts, const int32_t* idx,
                                  int64_t R, int64_t K) {
  __shared__ int warp_hits[32];
  __shared__ int64_t base_sh;
  const int e = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int64_t cnt = counts[e];
  if (cnt == 0) return;  // uniform over the block
  if (threadIdx.x == 0) {
    int64_t b = 0;
    for (int i = 0; i < e; ++i) b += counts[i];
    base_sh = b;
  }
  __syncthreads();
  const int64_t base = base_sh;
  int64_t placed = 0;
  for (int64_t r0 = 0; r0 < R && placed < cnt; r0 += blockDim.x) {  // `placed` is uniform: no divergence
    const int64_t r = r0 + threadIdx.x;
    const bool hit = r < R && idx[r] == e;
    const unsigned mask = __ballot_sync(0xffffffffu, hit);
    if (lane == 0) warp_hits[warp] = __popc(mask);
    __syncthreads();
    int before = 0, total = 0;
    for (int i = 0; i < nw; ++i) {
      const int h = warp_hits[i];
      before += i < warp ? h : 0;
      total += h;
    }
    if (hit) {
      const int64_t dst = base + placed + before + __popc(mask & ((1u << lane) - 1u));
      row_token[dst] = static_cast<int32_t>(r / K);
      row_slot[dst] = static_cast<int32_t>(r);
    }
    placed += total;
    __syncthreads();  // warp_hits is rewritten by the next chunk
  }
}

__global__ void MoeCombineBwdKernel(float* dy, float* dw_slot, const float* dout, const float* y, const float* row_w,
                                    const int32_t* row_token, const int32_t* row_slot, int64_t D) {
  const int64_t r = blockIdx.x;
  const float* g = dout + static_cast<int64_t>(row_token[r]) * D;
  const float* yr = y + r * D;
  float* d = dy + r * D;
  const float wr = row_w[r];
  float dot = 0.f;
  for (int64_t c = threadIdx.x; c < D; c += blockDim.x) {
    const float gc = g[c];
    d[c] = wr * gc;
    dot += gc * yr[c];
  }
  dot = BlockSum(dot);
  if (threadIdx.x == 0) dw_slot[row_slot[r]] = dot;
}

[[noreturn]] void Fatal(const char* op, const char* what, long long a, long long b) {
  std::fprintf(stderr, "[CUDA ERROR] %s: %s (%lld, %lld)\n", op, what, a, b);
  std::fflush(stderr);
  std::abort();
}

unsigned WarpRowBlocks(int64_t N) {
  return static_cast<unsigned>((N + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

}  // namespace

void LaunchRouterScores(float* scores, const float* logits, int64_t N, int64_t E, bool sigmoid, cudaStream_t stream) {
  if (N <= 0 || E <= 0) return;
  RouterScoresKernel<<<WarpRowBlocks(N), kWarpsPerBlock * 32, 0, stream>>>(scores, logits, N, E, sigmoid);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchRouterScoresBackward(float* dlogits, const float* dscores, const float* scores, int64_t N, int64_t E,
                                bool sigmoid, cudaStream_t stream) {
  if (N <= 0 || E <= 0) return;
  RouterScoresBwdKernel<<<WarpRowBlocks(N), kWarpsPerBlock * 32, 0, stream>>>(dlogits, dscores, scores, N, E,
                                                                              sigmoid);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchRouterTopK(int32_t* idx, float* w, const float* scores, const float* bias, int64_t N, const RouteShape& r,
                      cudaStream_t stream) {
  if (N <= 0 || r.K <= 0) return;
  const int64_t G = r.n_group > 1 ? r.n_group : 1;
  if (r.K > r.E) Fatal("RouterTopK", "K > E (experts per token, routed experts)", r.K, r.E);
  if (r.E > INT_MAX / 2) Fatal("RouterTopK", "too many experts (E, limit)", r.E, INT_MAX / 2);
  if (G > 1 && (r.E % G != 0 || r.topk_group < 1 || r.topk_group > G))
    Fatal("RouterTopK", "bad group limit: need E % n_group == 0 and 1 <= topk_group <= n_group (E, n_group)", r.E, G);
  const size_t per_warp = static_cast<size_t>(2 * (r.E + G)) * sizeof(float);
  const size_t limit = 48 * 1024;
  if (per_warp > limit) Fatal("RouterTopK", "a token's experts need more than 48 KiB of shared memory (bytes, E)",
                              static_cast<long long>(per_warp), r.E);
  int warps = kWarpsPerBlock;
  while (warps > 1 && per_warp * warps > limit) warps /= 2;
  const unsigned blocks = static_cast<unsigned>((N + warps - 1) / warps);
  RouterTopKKernel<<<blocks, warps * 32, per_warp * warps, stream>>>(idx, w, scores, bias, N, r.E, r.K, G,
                                                                    G > 1 ? r.topk_group : 1, r.normalize, r.scale);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchRouterTopKBackward(float* dscores, const float* dw, const float* scores, const int32_t* idx, int64_t N,
                              const RouteShape& r, cudaStream_t stream) {
  if (N <= 0 || r.K <= 0) return;
  RouterTopKBwdKernel<<<Blocks(N, 128), 128, 0, stream>>>(dscores, dw, scores, idx, N, r.E, r.K, r.normalize,
                                                          r.scale);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchRouterGateWeights(float* w, const float* scores, const int32_t* idx, int64_t N, const RouteShape& r,
                             cudaStream_t stream) {
  if (N <= 0 || r.K <= 0) return;
  RouterGateWeightsKernel<<<Blocks(N, 128), 128, 0, stream>>>(w, scores, idx, N, r.E, r.K, r.normalize, r.scale);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchExpertCount(int32_t* counts, const int32_t* idx, int64_t R, int64_t E, cudaStream_t stream) {
  if (E <= 0) return;
  ZRL_CUDA_CHECK(cudaMemsetAsync(counts, 0, static_cast<size_t>(E) * sizeof(int32_t), stream));
  if (R <= 0) return;
  ExpertCountKernel<<<GridStrideBlocks(R, 256), 256, 0, stream>>>(counts, idx, R, E);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchExpertPlace(int32_t* row_token, int32_t* row_slot, const int32_t* counts, const int32_t* idx, int64_t R,
                       int64_t K, int64_t E, cudaStream_t stream) {
  if (R <= 0 || E <= 0) return;
  if (R > INT_MAX) Fatal("MoePermute", "more routed rows than int32 indices hold (R, limit)", R, INT_MAX);
  ExpertPlaceKernel<<<static_cast<unsigned>(E), 256, 0, stream>>>(row_token, row_slot, counts, idx, R, K);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchMoeCombineBackward(float* dy, float* dw_slot, const float* dout, const float* y, const float* row_w,
                              const int32_t* row_token, const int32_t* row_slot, int64_t R, int64_t D,
                              cudaStream_t stream) {
  if (R <= 0 || D <= 0) return;
  const int threads = D >= 2048 ? 512 : (D >= 256 ? 256 : 128);
  MoeCombineBwdKernel<<<static_cast<unsigned>(R), threads, 0, stream>>>(dy, dw_slot, dout, y, row_w, row_token,
                                                                        row_slot, D);
  ZRL_CUDA_CHECK_LAUNCH();
}

}  // namespace zerorl::model::ops::cuda
