// Linear layers of a few rows on the CPU: C[M,N] = A[M,K] @ B[N,K]^T + beta*C
// for M <= kSmallGemmRows, without OpenBLAS.
//
// A decode step multiplies each weight matrix by a handful of rows (an expert
// gets ~4 of the 64 routed rows of a 16-sequence step). OpenBLAS packs the
// whole weight matrix into its panel layout on every call, which at M = 4
// costs about as much as the product itself; this kernel streams the weights
// once, unpacked: dot products along K, 16 floats per AVX-512 FMA, a block of
// up to 4 rows x 4 weight rows in registers. (Debian's OpenBLAS 0.3.21 runs
// its AVX2 Haswell kernels on this machine; at 16 rows and fewer this kernel
// is faster than it, measured 10-40% on the decode shapes.) It needs
// AVX-512F; without it (SmallGemmAvailable() false) the backend keeps sgemm.
//
// Numerics: every output element is the same function of its A row and B row
// whatever M, the blocking or the thread split: 16 lane-wise FMA chains over
// K, summed in a fixed tree, the K % 16 tail added by scalar FMAs. So
// a sequence's logits do not depend on what else is in the batch. They differ
// from OpenBLAS's (another summation order) by float rounding.
#pragma once

#include <cstdint>

namespace zerorl::model::ops::cpu {

constexpr int64_t kSmallGemmRows = 16;

// True when the CPU has AVX-512F (SmallGemmNT may be called).
bool SmallGemmAvailable();

// C[m, n] = sum_k A[m*lda + k] * B[n*ldb + k] (+ beta * C[m*ldc + n]: beta 0
// writes, beta 1 accumulates). Single-threaded over output columns [n0, n1).
void SmallGemmNT(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda, const float* B,
                 int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace zerorl::model::ops::cpu
