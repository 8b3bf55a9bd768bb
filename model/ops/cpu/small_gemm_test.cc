// Both builds of SmallGemmNT (AVX2; AVX-512F where the CPU has it) against
// OpenBLAS sgemm (float tolerance) over the shapes a decode step uses plus
// ragged ones (K % 8 != 0, strided rows, partial column ranges), and the
// promise that a row's result does not depend on the other rows or on the
// column split (bitwise).
#include "model/ops/cpu/small_gemm.h"

#include <cblas.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "model/ops/ops.h"

namespace zerorl::model::ops::cpu {
namespace {

std::vector<float> Random(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// The builds this CPU runs; AVX-512F's absence is said, not hidden.
std::vector<SmallGemmIsa> Builds() {
  std::vector<SmallGemmIsa> out = {SmallGemmIsa::kAvx2};
  if (SmallGemmSupported(SmallGemmIsa::kAvx512)) {
    out.push_back(SmallGemmIsa::kAvx512);
  } else {
    std::fprintf(stderr, "no AVX-512F on this CPU: only the AVX2 build is tested\n");
  }
  return out;
}

TEST(SmallGemmTest, MatchesSgemm) {
  struct Shape {
    int64_t M, N, K, lda, ldb, ldc;
  };
  const Shape shapes[] = {{4, 512, 256, 256, 256, 512}, {1, 256, 1024, 1024, 1024, 256}, {16, 384, 256, 256, 256, 384},
                          {3, 80, 256, 300, 260, 90},   {5, 7, 13, 13, 13, 7},          {2, 64, 29, 40, 33, 70},       {13, 33, 50, 50, 50, 33},
                          {7, 1, 8, 8, 8, 1},           {6, 100, 0, 1, 1, 100}};
  for (SmallGemmIsa isa : Builds()) {
    for (const Shape& s : shapes)
      for (float beta : {0.f, 1.f, 0.5f}) {
        SCOPED_TRACE(testing::Message() << SmallGemmIsaName(isa) << " M=" << s.M << " N=" << s.N << " K=" << s.K
                                        << " beta=" << beta);
        const auto A = Random(s.M * s.lda, 1), B = Random(s.N * s.ldb, 2, 0.05f), C0 = Random(s.M * s.ldc, 3);
        std::vector<float> want = C0, got = C0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.M, s.N, s.K, 1.f, A.data(), s.lda, B.data(), s.ldb,
                    beta, want.data(), s.ldc);
        SmallGemmNTWith(isa, s.M, 0, s.N, s.K, A.data(), s.lda, B.data(), s.ldb, beta, got.data(), s.ldc);
        for (int64_t m = 0; m < s.M; ++m)
          for (int64_t n = 0; n < s.ldc; ++n) {
            const float w = want[m * s.ldc + n], g = got[m * s.ldc + n];
            if (n >= s.N) {
              ASSERT_EQ(g, C0[m * s.ldc + n]) << "wrote outside the N columns at " << m << "," << n;
            } else {
              ASSERT_NEAR(g, w, 1e-5f + 1e-5f * std::fabs(w)) << m << "," << n;
            }
          }
      }
  }
}

TEST(SmallGemmTest, ARowsResultDoesNotDependOnTheBatchOrTheColumnSplit) {
  const int64_t K = 263, N = 97;
  const auto A = Random(kSmallGemmRows * K, 4), B = Random(N * K, 5, 0.05f);
  for (SmallGemmIsa isa : Builds()) {
    SCOPED_TRACE(SmallGemmIsaName(isa));
    std::vector<float> all(kSmallGemmRows * N), split(kSmallGemmRows * N), one(N);
    SmallGemmNTWith(isa, kSmallGemmRows, 0, N, K, A.data(), K, B.data(), K, 0.f, all.data(), N);
    SmallGemmNTWith(isa, kSmallGemmRows, 0, 40, K, A.data(), K, B.data(), K, 0.f, split.data(), N);
    SmallGemmNTWith(isa, kSmallGemmRows, 40, N, K, A.data(), K, B.data(), K, 0.f, split.data(), N);
    EXPECT_EQ(std::memcmp(all.data(), split.data(), all.size() * sizeof(float)), 0);
    for (int64_t m = 0; m < kSmallGemmRows; ++m) {
      SmallGemmNTWith(isa, 1, 0, N, K, A.data() + m * K, K, B.data(), K, 0.f, one.data(), N);
      EXPECT_EQ(std::memcmp(one.data(), all.data() + m * N, N * sizeof(float)), 0) << "row " << m;
    }
  }
}

// Through the backend: Gemm routes few-row linear layers here (threaded by
// columns) and the result is still within float tolerance of sgemm.
TEST(SmallGemmTest, BackendGemmUsesItForFewRows) {
  if (!SmallGemmAvailable()) GTEST_SKIP() << "ZERORL_SMALL_GEMM=off: the backend keeps sgemm";
  // The best build this CPU runs, unless the environment chose another.
  if (std::getenv("ZERORL_SMALL_GEMM") == nullptr) {
    EXPECT_EQ(SmallGemmInUse(), SmallGemmSupported(SmallGemmIsa::kAvx512) ? SmallGemmIsa::kAvx512 : SmallGemmIsa::kAvx2);
  }
  Backend* cpu = ops::CpuBackend();
  const int64_t M = 4, N = 1024, K = 512;
  const auto A = Random(M * K, 6), B = Random(N * K, 7, 0.05f);
  std::vector<float> want(M * N), got(M * N, 1.f), direct(M * N);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f, want.data(), N);
  cpu->LinearForward(got.data(), A.data(), B.data(), M, K, N);
  SmallGemmNT(M, 0, N, K, A.data(), K, B.data(), K, 0.f, direct.data(), N);
  EXPECT_EQ(std::memcmp(got.data(), direct.data(), got.size() * sizeof(float)), 0);
  for (int64_t i = 0; i < M * N; ++i) ASSERT_NEAR(got[i], want[i], 1e-5f + 1e-5f * std::fabs(want[i])) << i;
}

}  // namespace
}  // namespace zerorl::model::ops::cpu
