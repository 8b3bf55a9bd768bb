// CpuBackend: threading, sgemm, and the simple element-wise ops.
#include "model/ops/cpu/cpu_backend.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "model/ops/cpu/simd.h"
#include "model/ops/cpu/small_gemm.h"

namespace zerorl::model::ops {
namespace {
int g_threads = 0;
cpu::CpuBackend* Instance() {
  static cpu::CpuBackend* b = [] {
    openblas_set_num_threads(1);  // we split GEMMs across our own threads
    if (g_threads > 0) omp_set_num_threads(g_threads);
    return new cpu::CpuBackend();
  }();
  return b;
}
}  // namespace

Backend* CpuBackend() { return Instance(); }

void SetCpuThreads(int threads) {
  g_threads = threads;
  Instance();
  openblas_set_num_threads(1);
  if (threads > 0) omp_set_num_threads(threads);
}

namespace cpu {

int CpuBackend::num_threads() const { return omp_get_max_threads(); }

void CpuBackend::ParallelFor(int64_t n, void (*fn)(void*, int64_t), void* ctx) {
  if (n == 1 || omp_in_parallel()) {
    for (int64_t i = 0; i < n; ++i) fn(ctx, i);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) fn(ctx, i);
}

void CpuBackend::Gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                      const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  auto call = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const float* a = ta ? A + m0 : A + m0 * lda;
    const float* b = tb ? B + n0 * ldb : B + n0;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m1 - m0, n1 - n0, K,
                alpha, a, lda, b, ldb, beta, C + m0 * ldc + n0, ldc);
  };
  const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  const double flops = 2.0 * M * N * K;
  // A linear layer of a few rows (decode, sparsely routed experts): the
  // unpacked kernel (small_gemm.h), its columns split across the threads when
  // the weights are large enough to be worth a parallel region.
  if (!ta && tb && alpha == 1.f && M <= kSmallGemmRows && SmallGemmAvailable()) {
    if (nt == 1 || flops < 5e5 || N < 48) {
      SmallGemmNT(M, 0, N, K, A, lda, B, ldb, beta, C, ldc);
      return;
    }
    const int64_t chunk = (N + nt - 1) / nt;
#pragma omp parallel for schedule(static, 1) num_threads(nt)
    for (int p = 0; p < nt; ++p)
      SmallGemmNT(M, p * chunk, std::min(N, (p + 1) * chunk), K, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Small GEMMs (decode steps: a few rows) run on the calling thread: a
  // parallel region costs more than it saves there.
  if (nt == 1 || flops < 8e6 || std::max(M, N) < 64) {
    call(0, M, 0, N);
    return;
  }
  // Split the larger output dimension into one chunk per thread (multiples of 16).
  const bool split_m = M >= N;
  const int64_t dim = split_m ? M : N;
  const int64_t chunk = std::max<int64_t>(16, ((dim + nt - 1) / nt + 15) / 16 * 16);
  const int64_t parts = (dim + chunk - 1) / chunk;
#pragma omp parallel for schedule(static, 1) num_threads(nt)
  for (int64_t p = 0; p < parts; ++p) {
    int64_t lo = p * chunk, hi = std::min(dim, lo + chunk);
    if (split_m) call(lo, hi, 0, N);
    else call(0, M, lo, hi);
  }
}

void CpuBackend::SwiGluForward(float* out, const float* h, int64_t N, int64_t I) {
#pragma omp parallel for if (N * I > 32768)
  for (int64_t n = 0; n < N; ++n) {
    const float* g = h + n * 2 * I;
    const float* u = g + I;
    float* o = out + n * I;
    for (int64_t i = 0; i < I; ++i) o[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
  }
}

void CpuBackend::SwiGluBackward(float* dh, const float* dout, const float* h, int64_t N, int64_t I) {
#pragma omp parallel for if (N * I > 32768)
  for (int64_t n = 0; n < N; ++n) {
    const float* g = h + n * 2 * I;
    const float* u = g + I;
    const float* d = dout + n * I;
    float* dg = dh + n * 2 * I;
    float* du = dg + I;
    for (int64_t i = 0; i < I; ++i) {
      float s = 1.f / (1.f + std::exp(-g[i]));
      du[i] = d[i] * g[i] * s;
      dg[i] = d[i] * u[i] * s * (1.f + g[i] * (1.f - s));
    }
  }
}

void CpuBackend::EmbeddingForward(float* out, const float* table, const int32_t* ids, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; ++n) std::memcpy(out + n * C, table + static_cast<int64_t>(ids[n]) * C, C * 4);
}

void CpuBackend::EmbeddingBackward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; ++n) {
    float* d = dtable + static_cast<int64_t>(ids[n]) * C;
    const float* g = dout + n * C;
    for (int64_t c = 0; c < C; ++c) d[c] += g[c];
  }
}

void CpuBackend::LogProbForward(float* logp, float* entropy, const float* logits, const int32_t* target, int64_t N,
                                int64_t V) {
#pragma omp parallel
  {
    std::vector<float> e(V);
#pragma omp for
    for (int64_t n = 0; n < N; ++n) {
      const float* z = logits + n * V;
      float mx = *std::max_element(z, z + V);
      float sum = ExpShiftSum(e.data(), z, mx, V);
      float lse = mx + std::log(sum);
      logp[n] = target[n] >= 0 ? z[target[n]] - lse : 0.f;
      if (entropy) {
        if (target[n] < 0) {
          entropy[n] = 0.f;
        } else {
          float pz = 0.f;
          for (int64_t v = 0; v < V; ++v) pz += e[v] * z[v];
          entropy[n] = lse - pz / sum;
        }
      }
    }
  }
}

void CpuBackend::LogProbBackward(float* dlogits, const float* dlogp, const float* dentropy, const float* logits,
                                 const int32_t* target, int64_t N, int64_t V) {
#pragma omp parallel for
  for (int64_t n = 0; n < N; ++n) {
    float* dz = dlogits + n * V;
    const float* z = logits + n * V;
    float gl = dlogp ? dlogp[n] : 0.f, ge = dentropy ? dentropy[n] : 0.f;
    if (target[n] < 0 || (gl == 0.f && ge == 0.f)) {
      std::memset(dz, 0, V * 4);
      continue;
    }
    float mx = *std::max_element(z, z + V);
    float sum = ExpShiftSum(dz, z, mx, V);
    float lse = mx + std::log(sum), inv = 1.f / sum;
    float H = 0.f;
    if (ge != 0.f) {
      float pz = 0.f;
      for (int64_t v = 0; v < V; ++v) pz += dz[v] * z[v];
      H = lse - pz * inv;
    }
    for (int64_t v = 0; v < V; ++v) {
      float p = dz[v] * inv;
      float g = -gl * p;
      if (ge != 0.f) g -= ge * p * ((z[v] - lse) + H);
      dz[v] = g;
    }
    dz[target[n]] += gl;
  }
}

void CpuBackend::Axpy(float* y, const float* x, float a, int64_t n) {
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void CpuBackend::GatherRows(float* out, const float* in, const int32_t* idx, int64_t M, int64_t C) {
  for (int64_t m = 0; m < M; ++m) std::memcpy(out + m * C, in + static_cast<int64_t>(idx[m]) * C, C * 4);
}

void CpuBackend::ScatterAddRows(float* out, const float* in, const int32_t* idx, const float* scale, int64_t M,
                                int64_t C) {
  for (int64_t m = 0; m < M; ++m) {
    float* o = out + static_cast<int64_t>(idx[m]) * C;
    const float* x = in + m * C;
    const float s = scale ? scale[m] : 1.f;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) o[c] += s * x[c];
  }
}

}  // namespace cpu
}  // namespace zerorl::model::ops
