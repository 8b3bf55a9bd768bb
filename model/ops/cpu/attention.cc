// CpuBackend: causal attention forward/backward, one task per (sequence, head)
// — or (sequence, kv head) in backward, so GQA groups never race on dK/dV.
// Each task does its GEMMs with single-threaded sgemm calls.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "model/ops/cpu/cpu_backend.h"
#include "model/ops/cpu/simd.h"

namespace zerorl::model::ops::cpu {
namespace {

// Scores -> causal softmax in place on S[n_q, n_kv].
void CausalSoftmax(float* S, int64_t n_q, int64_t n_kv, int64_t q_pos0) {
  for (int64_t i = 0; i < n_q; ++i) {
    float* row = S + i * n_kv;
    const int64_t L = std::min(n_kv, q_pos0 + i + 1);
    float mx = *std::max_element(row, row + L);
    float sum = ExpShiftSum(row, row, mx, L);
    float inv = 1.f / sum;
    for (int64_t j = 0; j < L; ++j) row[j] *= inv;
    std::fill(row + L, row + n_kv, 0.f);
  }
}

// MQA decode (one K/V head, one query per sequence, no saved probs — the
// latent MLA cache): all H heads of a sequence are one [H, n_kv] score GEMM
// and one [H, dv] output GEMM, so the cache is streamed once, not H times.
// One task per (sequence, block of up to kHeadBlock heads).
void MqaDecode(const AttnSeq* seqs, int64_t n, const AttnShape& s) {
  constexpr int64_t kHeadBlock = 16;
  const int64_t blocks = (s.H + kHeadBlock - 1) / kHeadBlock, tasks = n * blocks;
  int64_t work = 0;
  for (int64_t i = 0; i < n; ++i) work += seqs[i].n_kv * (s.dk + s.dv) * s.H;
#pragma omp parallel if (tasks > 1 && work > (1 << 20))
  {
    std::vector<float> S;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const AttnSeq& q = seqs[t / blocks];
      const int64_t h0 = (t % blocks) * kHeadBlock, nh = std::min(kHeadBlock, s.H - h0);
      const int64_t L = std::min(q.n_kv, q.q_pos0 + 1);
      S.resize(static_cast<size_t>(nh * L));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nh, L, s.dk, s.scale, q.q + h0 * s.dk, s.dk, q.k,
                  s.k_stride, 0.f, S.data(), L);
      for (int64_t h = 0; h < nh; ++h) CausalSoftmax(S.data() + h * L, 1, L, L);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nh, s.dv, L, 1.f, S.data(), L, q.v, s.v_stride, 0.f,
                  q.out + h0 * s.dv, s.dv);
    }
  }
}

}  // namespace

void CpuBackend::AttentionForward(const AttnSeq* seqs, int64_t n, const AttnShape& s) {
  const int64_t group = s.H / s.Hkv;
  bool mqa_decode = s.Hkv == 1 && s.H > 1;
  for (int64_t i = 0; i < n && mqa_decode; ++i) mqa_decode = seqs[i].n_q == 1 && !seqs[i].probs;
  if (mqa_decode) return MqaDecode(seqs, n, s);
  const int64_t tasks = n * s.H;
  int64_t work = 0;  // multiply-adds, to keep tiny decode steps off the thread pool
  for (int64_t i = 0; i < n; ++i) work += seqs[i].n_q * seqs[i].n_kv * (s.dk + s.dv) * s.H;
#pragma omp parallel if (tasks > 1 && work > (1 << 20))
  {
    std::vector<float> tmp;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const AttnSeq& q = seqs[t / s.H];
      const int64_t h = t % s.H, hk = h / group;
      if (q.n_q == 0) continue;
      float* S = q.probs;
      if (!S) {
        tmp.resize(static_cast<size_t>(q.n_q * q.n_kv));
        S = tmp.data();
      } else {
        S += h * q.n_q * q.n_kv;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, q.n_q, q.n_kv, s.dk, s.scale, q.q + h * s.dk, s.q_stride,
                  q.k + hk * s.dk, s.k_stride, 0.f, S, q.n_kv);
      CausalSoftmax(S, q.n_q, q.n_kv, q.q_pos0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, q.n_q, s.dv, q.n_kv, 1.f, S, q.n_kv, q.v + hk * s.dv,
                  s.v_stride, 0.f, q.out + h * s.dv, s.out_stride);
    }
  }
}

void CpuBackend::AttentionBackward(const AttnSeq* seqs, const AttnSeqGrad* grads, int64_t n, const AttnShape& s) {
  const int64_t group = s.H / s.Hkv;
  const int64_t tasks = n * s.Hkv;
#pragma omp parallel if (tasks > 1)
  {
    std::vector<float> dS;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const AttnSeq& q = seqs[t / s.Hkv];
      const AttnSeqGrad& g = grads[t / s.Hkv];
      const int64_t hk = t % s.Hkv;
      if (q.n_q == 0) continue;
      dS.resize(static_cast<size_t>(q.n_q * q.n_kv));
      for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
        const float* P = q.probs + h * q.n_q * q.n_kv;
        const float* dout = g.dout + h * s.dv;
        // dP = dout_h @ v^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, q.n_q, q.n_kv, s.dv, 1.f, dout, s.out_stride,
                    q.v + hk * s.dv, s.v_stride, 0.f, dS.data(), q.n_kv);
        for (int64_t i = 0; i < q.n_q; ++i) {
          float* d = dS.data() + i * q.n_kv;
          const float* p = P + i * q.n_kv;
          const int64_t L = std::min(q.n_kv, q.q_pos0 + i + 1);
          float dot = Dot(d, p, L);
          for (int64_t j = 0; j < L; ++j) d[j] = p[j] * (d[j] - dot) * s.scale;
          std::fill(d + L, d + q.n_kv, 0.f);
        }
        // dq_h = dS @ k (writes); dk += dS^T @ q_h; dv += P^T @ dout_h
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, q.n_q, s.dk, q.n_kv, 1.f, dS.data(), q.n_kv,
                    q.k + hk * s.dk, s.k_stride, 0.f, g.dq + h * s.dk, s.q_stride);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, q.n_kv, s.dk, q.n_q, 1.f, dS.data(), q.n_kv,
                    q.q + h * s.dk, s.q_stride, 1.f, g.dk + hk * s.dk, s.k_stride);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, q.n_kv, s.dv, q.n_q, 1.f, P, q.n_kv, dout,
                    s.out_stride, 1.f, g.dv + hk * s.dv, s.v_stride);
      }
    }
  }
}

}  // namespace zerorl::model::ops::cpu
