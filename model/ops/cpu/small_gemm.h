// Linear layers of a few rows on the CPU: C[M,N] = A[M,K] @ B[N,K]^T + beta*C
// for M <= kSmallGemmRows, without OpenBLAS.
//
// A decode step multiplies each weight matrix by a handful of rows (an expert
// gets ~4 of the 64 routed rows of a 16-sequence step). OpenBLAS packs the
// whole weight matrix into its panel layout on every call, which at M = 4
// costs about as much as the product itself; this kernel streams the weights
// once, unpacked: dot products along K, a block of up to 4 rows x 4 weight
// rows in registers, one FMA per vector of K. Two builds of it
// (small_gemm_kernel.inc): AVX-512F (16 floats per FMA), used where the CPU
// has it, and AVX2 + FMA (8 floats), the baseline the CPU ops are compiled
// for. (Debian's OpenBLAS 0.3.21 runs its AVX2 Haswell kernels on this
// machine; at 16 rows and fewer this kernel is faster than it.)
// ZERORL_SMALL_GEMM=off|avx2|avx512 overrides the choice (off: sgemm), for
// benchmarks and for reproducing another CPU's numbers.
//
// Numerics: every output element is the same function of its A row and B row
// whatever M, the blocking or the thread split: kLanes lane-wise FMA chains
// over K, summed in a fixed tree, the K % kLanes tail added by scalar FMAs. So
// a sequence's logits do not depend on what else is in the batch. They differ
// from OpenBLAS's (another summation order), and between the two builds, by
// float rounding.
#pragma once

#include <cstdint>

namespace zerorl::model::ops::cpu {

constexpr int64_t kSmallGemmRows = 16;

enum class SmallGemmIsa { kOff, kAvx2, kAvx512 };
const char* SmallGemmIsaName(SmallGemmIsa isa);  // "off", "avx2", "avx512"
// Whether this CPU runs the build (AVX2 is the CPU ops' baseline: always).
bool SmallGemmSupported(SmallGemmIsa isa);
// The build the backend uses: AVX-512 where supported, else AVX2, unless
// ZERORL_SMALL_GEMM says otherwise. Chosen once per process.
SmallGemmIsa SmallGemmInUse();
// Whether the backend routes few-row linear layers here (SmallGemmInUse() is not kOff).
inline bool SmallGemmAvailable() { return SmallGemmInUse() != SmallGemmIsa::kOff; }

// C[m, n] = sum_k A[m*lda + k] * B[n*ldb + k] (+ beta * C[m*ldc + n]: beta 0
// writes, beta 1 accumulates). Single-threaded over output columns [n0, n1),
// on SmallGemmInUse()'s build (which must not be kOff).
void SmallGemmNT(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda, const float* B,
                 int64_t ldb, float beta, float* C, int64_t ldc);
// The same on a given build (kAvx2 or kAvx512; it must be supported).
void SmallGemmNTWith(SmallGemmIsa isa, int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda,
                     const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace zerorl::model::ops::cpu
