// SmallGemmNT: see small_gemm.h. AVX-512F, compiled per function (the rest of
// the CPU ops are built for AVX2) and chosen at run time.
#include "model/ops/cpu/small_gemm.h"

#include <immintrin.h>

#include <cmath>

namespace zerorl::model::ops::cpu {
namespace {

#define ZRL_AVX512 __attribute__((target("avx512f")))

// The 16 lanes summed in a fixed tree: the four 128-bit quarters pairwise,
// then within 128 bits. Through memory, not _mm512_reduce_add_ps or lane
// shuffles: GCC 12's AVX-512 headers trip -Wuninitialized on those.
ZRL_AVX512 inline float HorizontalSum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  const __m128 q = _mm_add_ps(_mm_add_ps(_mm_load_ps(lanes), _mm_load_ps(lanes + 4)),
                              _mm_add_ps(_mm_load_ps(lanes + 8), _mm_load_ps(lanes + 12)));
  __m128 s = _mm_add_ps(q, _mm_movehl_ps(q, q));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Rows [0, MB) of A times rows [0, NB) of B into C, MB x NB accumulators of 16 lanes.
template <int MB, int NB>
ZRL_AVX512 void Block(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc) {
  __m512 acc[MB][NB];
  for (int m = 0; m < MB; ++m)
    for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_setzero_ps();
  const int64_t K16 = K / 16 * 16;
  for (int64_t k = 0; k < K16; k += 16) {
    __m512 b[NB];
    for (int n = 0; n < NB; ++n) b[n] = _mm512_loadu_ps(B + n * ldb + k);
    for (int m = 0; m < MB; ++m) {
      const __m512 a = _mm512_loadu_ps(A + m * lda + k);
      for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_fmadd_ps(a, b[n], acc[m][n]);
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int n = 0; n < NB; ++n) {
      float s = HorizontalSum(acc[m][n]);
      for (int64_t k = K16; k < K; ++k) s = std::fma(A[m * lda + k], B[n * ldb + k], s);
      float& c = C[m * ldc + n];
      c = beta == 0.f ? s : beta == 1.f ? c + s : beta * c + s;
    }
}

template <int MB>
ZRL_AVX512 void Rows(int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                     float beta, float* C, int64_t ldc) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) Block<MB, 4>(K, A, lda, B + n * ldb, ldb, beta, C + n, ldc);
  for (; n < n1; ++n) Block<MB, 1>(K, A, lda, B + n * ldb, ldb, beta, C + n, ldc);
}

}  // namespace

bool SmallGemmAvailable() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

ZRL_AVX512 void SmallGemmNT(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda,
                            const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t m = 0; m < M; m += 4) {
    const float* a = A + m * lda;
    float* c = C + m * ldc;
    switch (M - m >= 4 ? 4 : M - m) {
      case 4: Rows<4>(n0, n1, K, a, lda, B, ldb, beta, c, ldc); break;
      case 3: Rows<3>(n0, n1, K, a, lda, B, ldb, beta, c, ldc); break;
      case 2: Rows<2>(n0, n1, K, a, lda, B, ldb, beta, c, ldc); break;
      default: Rows<1>(n0, n1, K, a, lda, B, ldb, beta, c, ldc); break;
    }
  }
}

}  // namespace zerorl::model::ops::cpu
