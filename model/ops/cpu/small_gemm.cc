// SmallGemmNT: see small_gemm.h. One kernel (small_gemm_kernel.inc) built
// twice: for AVX2, the baseline the CPU ops are compiled for, and for
// AVX-512F under a target pragma; the CPU picks at run time.
#include "model/ops/cpu/small_gemm.h"

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace zerorl::model::ops::cpu {
namespace avx2 {
namespace {

struct Vec {
  using T = __m256;
  static constexpr int kLanes = 8;
  static T Zero() { return _mm256_setzero_ps(); }
  static T Load(const float* p) { return _mm256_loadu_ps(p); }
  static T Fma(T a, T b, T acc) { return _mm256_fmadd_ps(a, b, acc); }
  // The two 128-bit halves added, then within 128 bits pairwise.
  static float Sum(T v) {
    const __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 s = _mm_add_ps(q, _mm_movehl_ps(q, q));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

#include "model/ops/cpu/small_gemm_kernel.inc"

}  // namespace
}  // namespace avx2

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
namespace {

struct Vec {
  using T = __m512;
  static constexpr int kLanes = 16;
  static T Zero() { return _mm512_setzero_ps(); }
  static T Load(const float* p) { return _mm512_loadu_ps(p); }
  static T Fma(T a, T b, T acc) { return _mm512_fmadd_ps(a, b, acc); }
  // The four 128-bit quarters pairwise, then within 128 bits. Through memory,
  // not _mm512_reduce_add_ps or lane shuffles: GCC 12's AVX-512 headers trip
  // -Wuninitialized on those.
  static float Sum(T v) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, v);
    const __m128 q = _mm_add_ps(_mm_add_ps(_mm_load_ps(lanes), _mm_load_ps(lanes + 4)),
                                _mm_add_ps(_mm_load_ps(lanes + 8), _mm_load_ps(lanes + 12)));
    __m128 s = _mm_add_ps(q, _mm_movehl_ps(q, q));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

#include "model/ops/cpu/small_gemm_kernel.inc"

}  // namespace
void Entry(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
           float beta, float* C, int64_t ldc) {
  Kernel(M, n0, n1, K, A, lda, B, ldb, beta, C, ldc);
}
}  // namespace avx512
#pragma GCC pop_options

namespace {

// The best kernel this CPU runs, unless ZERORL_SMALL_GEMM names another
// (a wrong or unsupported name is said on stderr and the best is kept).
SmallGemmIsa Choose() {
  const SmallGemmIsa best = SmallGemmSupported(SmallGemmIsa::kAvx512) ? SmallGemmIsa::kAvx512 : SmallGemmIsa::kAvx2;
  const char* env = std::getenv("ZERORL_SMALL_GEMM");
  if (env == nullptr || *env == '\0') return best;
  SmallGemmIsa want;
  if (std::strcmp(env, "off") == 0) {
    want = SmallGemmIsa::kOff;
  } else if (std::strcmp(env, "avx2") == 0) {
    want = SmallGemmIsa::kAvx2;
  } else if (std::strcmp(env, "avx512") == 0) {
    want = SmallGemmIsa::kAvx512;
  } else {
    std::fprintf(stderr, "zerorl: ZERORL_SMALL_GEMM=%s is not one of off, avx2, avx512; using %s\n", env,
                 SmallGemmIsaName(best));
    return best;
  }
  if (!SmallGemmSupported(want)) {
    std::fprintf(stderr, "zerorl: ZERORL_SMALL_GEMM=%s: this CPU lacks it; using %s\n", env, SmallGemmIsaName(best));
    return best;
  }
  return want;
}

}  // namespace

const char* SmallGemmIsaName(SmallGemmIsa isa) {
  switch (isa) {
    case SmallGemmIsa::kOff: return "off";
    case SmallGemmIsa::kAvx2: return "avx2";
    case SmallGemmIsa::kAvx512: return "avx512";
  }
  return "?";
}

bool SmallGemmSupported(SmallGemmIsa isa) {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  return isa != SmallGemmIsa::kAvx512 || avx512;
}

SmallGemmIsa SmallGemmInUse() {
  static const SmallGemmIsa isa = Choose();
  return isa;
}

void SmallGemmNTWith(SmallGemmIsa isa, int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda,
                     const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (isa == SmallGemmIsa::kAvx512) {
    avx512::Entry(M, n0, n1, K, A, lda, B, ldb, beta, C, ldc);
  } else {
    avx2::Kernel(M, n0, n1, K, A, lda, B, ldb, beta, C, ldc);
  }
}

void SmallGemmNT(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda, const float* B,
                 int64_t ldb, float beta, float* C, int64_t ldc) {
  SmallGemmNTWith(SmallGemmInUse(), M, n0, n1, K, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace zerorl::model::ops::cpu
