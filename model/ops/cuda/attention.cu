// Fused causal attention for CudaBackend, forward and backward, over a batch
// of sequences of different lengths (one AttnSeq descriptor each, in device
// memory). One warp owns one (sequence, query token, head) row:
//  - forward: a single pass over the row's causal keys with an online
//    softmax (running max and sum, rescaled accumulator — flash-decoding
//    style), so no [n_q, n_kv] score matrix is materialised unless the caller
//    asks for the softmax (`probs`, saved for the backward), which is then
//    written as raw scores and normalised in a second sweep. With n_q = 1 and
//    probs = nullptr this is the decode kernel over the KV cache: each warp
//    streams its head's K/V rows once, lanes reading contiguous dims.
//  - backward: from the saved probs, dP_j = dout·v_j, D = sum_j P_j dP_j,
//    dS_j = P_j (dP_j - D) scale; dq (writes) accumulates in shared memory,
//    dk/dv accumulate with atomicAdd (GQA heads share K/V rows); keys whose
//    probability is exactly 0 are skipped.
// Per-warp vectors (q row, dout row, accumulators) live in dynamic shared memory.
#include <cstdio>
#include <cstdlib>

#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/kernels.h"
#include "model/ops/cuda/reduce.cuh"

namespace zerorl::model::ops::cuda {
namespace {

__global__ void AttnFwdKernel(const AttnSeq* seqs, AttnShape s, int warps) {
  extern __shared__ float smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const AttnSeq q = seqs[blockIdx.y];
  const int64_t r = static_cast<int64_t>(blockIdx.x) * warps + warp;
  if (r >= q.n_q * s.H) return;
  const int64_t i = r / s.H, h = r % s.H, hk = h / (s.H / s.Hkv);
  float* sq = smem + warp * (s.dk + s.dv);
  float* acc = sq + s.dk;
  const float* qrow = q.q + i * s.q_stride + h * s.dk;
  for (int64_t d = lane; d < s.dk; d += 32) sq[d] = qrow[d];
  for (int64_t d = lane; d < s.dv; d += 32) acc[d] = 0.f;
  __syncwarp();
  float* P = q.probs ? q.probs + (h * q.n_q + i) * q.n_kv : nullptr;
  const int64_t L = min(q.n_kv, q.q_pos0 + i + 1);
  float m = -INFINITY, l = 0.f;
  for (int64_t j = 0; j < L; ++j) {
    const float* krow = q.k + j * s.k_stride + hk * s.dk;
    float part = 0.f;
    for (int64_t d = lane; d < s.dk; d += 32) part += sq[d] * krow[d];
    const float sc = WarpSum(part) * s.scale;
    if (P && lane == 0) P[j] = sc;
    const float m_new = fmaxf(m, sc);
    const float corr = expf(m - m_new), p = expf(sc - m_new);
    l = l * corr + p;
    const float* vrow = q.v + j * s.v_stride + hk * s.dv;
    for (int64_t d = lane; d < s.dv; d += 32) acc[d] = acc[d] * corr + p * vrow[d];
    m = m_new;
  }
  const float inv = 1.f / l;
  float* orow = q.out + i * s.out_stride + h * s.dv;
  for (int64_t d = lane; d < s.dv; d += 32) orow[d] = acc[d] * inv;
  if (P) {
    __syncwarp();
    for (int64_t j = lane; j < q.n_kv; j += 32) P[j] = j < L ? expf(P[j] - m) * inv : 0.f;
  }
}

__global__ void AttnBwdKernel(const AttnSeq* seqs, const AttnSeqGrad* grads, AttnShape s, int warps) {
  extern __shared__ float smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const AttnSeq q = seqs[blockIdx.y];
  const AttnSeqGrad g = grads[blockIdx.y];
  const int64_t r = static_cast<int64_t>(blockIdx.x) * warps + warp;
  if (r >= q.n_q * s.H) return;
  const int64_t i = r / s.H, h = r % s.H, hk = h / (s.H / s.Hkv);
  float* sq = smem + warp * (2 * s.dk + s.dv);
  float* sdo = sq + s.dk;
  float* sdq = sdo + s.dv;
  const float* qrow = q.q + i * s.q_stride + h * s.dk;
  const float* dorow = g.dout + i * s.out_stride + h * s.dv;
  for (int64_t d = lane; d < s.dk; d += 32) {
    sq[d] = qrow[d];
    sdq[d] = 0.f;
  }
  for (int64_t d = lane; d < s.dv; d += 32) sdo[d] = dorow[d];
  __syncwarp();
  const float* P = q.probs + (h * q.n_q + i) * q.n_kv;
  const int64_t L = min(q.n_kv, q.q_pos0 + i + 1);
  // D = sum_j P_j (dout · v_j)
  float D = 0.f;
  for (int64_t j = 0; j < L; ++j) {
    const float p = P[j];
    if (p == 0.f) continue;
    const float* vrow = q.v + j * s.v_stride + hk * s.dv;
    float part = 0.f;
    for (int64_t d = lane; d < s.dv; d += 32) part += sdo[d] * vrow[d];
    D += p * WarpSum(part);
  }
  for (int64_t j = 0; j < L; ++j) {
    const float p = P[j];
    if (p == 0.f) continue;
    const float* vrow = q.v + j * s.v_stride + hk * s.dv;
    const float* krow = q.k + j * s.k_stride + hk * s.dk;
    float part = 0.f;
    for (int64_t d = lane; d < s.dv; d += 32) part += sdo[d] * vrow[d];
    const float dS = p * (WarpSum(part) - D) * s.scale;
    float* dkrow = g.dk + j * s.k_stride + hk * s.dk;
    float* dvrow = g.dv + j * s.v_stride + hk * s.dv;
    for (int64_t d = lane; d < s.dk; d += 32) {
      sdq[d] += dS * krow[d];
      atomicAdd(dkrow + d, dS * sq[d]);
    }
    for (int64_t d = lane; d < s.dv; d += 32) atomicAdd(dvrow + d, p * sdo[d]);
  }
  __syncwarp();
  float* dqrow = g.dq + i * s.q_stride + h * s.dk;
  for (int64_t d = lane; d < s.dk; d += 32) dqrow[d] = sdq[d];
}

// Warps per block such that the per-warp shared vectors fit in 48 KiB.
int WarpsFor(int64_t floats_per_warp, const char* op) {
  constexpr int64_t kLimit = 48 * 1024;
  for (int w = 4; w >= 1; w /= 2)
    if (w * floats_per_warp * 4 <= kLimit) return w;
  std::fprintf(stderr, "[CUDA ERROR] %s: head dims need %lld bytes of shared memory per warp (> 48 KiB)\n", op,
               static_cast<long long>(floats_per_warp * 4));
  std::abort();
}

}  // namespace

void LaunchAttentionForward(const AttnSeq* seqs_dev, int64_t n, int64_t max_nq, const AttnShape& s,
                            cudaStream_t stream) {
  if (n <= 0 || max_nq <= 0) return;
  const int64_t per_warp = s.dk + s.dv;
  const int warps = WarpsFor(per_warp, "AttentionForward");
  dim3 grid(Blocks(max_nq * s.H, warps), static_cast<unsigned>(n));
  AttnFwdKernel<<<grid, warps * 32, warps * per_warp * 4, stream>>>(seqs_dev, s, warps);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchAttentionBackward(const AttnSeq* seqs_dev, const AttnSeqGrad* grads_dev, int64_t n, int64_t max_nq,
                             const AttnShape& s, cudaStream_t stream) {
  if (n <= 0 || max_nq <= 0) return;
  const int64_t per_warp = 2 * s.dk + s.dv;
  const int warps = WarpsFor(per_warp, "AttentionBackward");
  dim3 grid(Blocks(max_nq * s.H, warps), static_cast<unsigned>(n));
  AttnBwdKernel<<<grid, warps * 32, warps * per_warp * 4, stream>>>(seqs_dev, grads_dev, s, warps);
  ZRL_CUDA_CHECK_LAUNCH();
}

}  // namespace zerorl::model::ops::cuda
