// The cuBLAS surface the CUDA backend uses (cublasGemmEx on fp32 storage),
// emulated with OpenBLAS for the emulated-backend tests (see cuda_runtime.h
// here): CUBLAS_COMPUTE_32F_FAST_16BF rounds A and B to bf16 first (round to
// nearest even), as the tensor-core path does, then multiplies in fp32.
#pragma once
#include <cblas.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda_runtime.h"

enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_ARCH_MISMATCH = 8,
  CUBLAS_STATUS_MAPPING_ERROR = 11,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
  CUBLAS_STATUS_INTERNAL_ERROR = 14,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cudaDataType { CUDA_R_32F = 0 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_16BF = 75 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
struct cublasContext {};
using cublasHandle_t = cublasContext*;

static inline cublasStatus_t cublasCreate(cublasHandle_t* h) {
  *h = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasDestroy(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
static inline float EmuBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}
// Column-major C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C.
static inline cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void* alpha, const void* A, cudaDataType, int lda,
                                          const void* B, cudaDataType, int ldb, const void* beta, void* C,
                                          cudaDataType, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t) {
  const float* a = static_cast<const float*>(A);
  const float* b = static_cast<const float*>(B);
  std::vector<float> ra, rb;
  if (compute == CUBLAS_COMPUTE_32F_FAST_16BF) {
    // Only the elements the product reads: (cols - 1) * ld + rows of each operand.
    auto extent = [](int rows, int cols, int ld) { return cols > 0 ? static_cast<size_t>(cols - 1) * ld + rows : 0; };
    const size_t na = ta == CUBLAS_OP_N ? extent(m, k, lda) : extent(k, m, lda);
    const size_t nb = tb == CUBLAS_OP_N ? extent(k, n, ldb) : extent(n, k, ldb);
    ra.assign(a, a + na);
    rb.assign(b, b + nb);
    for (auto& x : ra) x = EmuBf16(x);
    for (auto& x : rb) x = EmuBf16(x);
    a = ra.data(), b = rb.data();
  }
  cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
              m, n, k, *static_cast<const float*>(alpha), a, lda, b, ldb, *static_cast<const float*>(beta),
              static_cast<float*>(C), ldc);
  return CUBLAS_STATUS_SUCCESS;
}
