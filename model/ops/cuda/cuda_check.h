// Error-check macros for CUDA runtime, cuBLAS and NCCL calls (llm.c's
// `cudaCheck` style): a failure names the call, the file and the line.
//   ZRL_CUDA_CHECK(call)          — fatal: prints and aborts (inside ops,
//                                   whose Backend interface returns void; a
//                                   failure there is a device fault or a bug).
// cuda_status.h adds ZRL_CUDA_RETURN_IF_ERROR for absl::Status functions.
// Include only from translation units that see the CUDA headers (no absl
// here, so .cu files stay light for nvcc).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>


namespace zerorl::model::ops::cuda {

[[noreturn]] inline void CudaFatal(const char* what, const char* detail, const char* file, int line) {
  std::fprintf(stderr, "[CUDA ERROR] %s failed: %s at %s:%d\n", what, detail, file, line);
  std::fflush(stderr);
  std::abort();
}

inline const char* CublasStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_<unknown>";
  }
}

}  // namespace zerorl::model::ops::cuda

#define ZRL_CUDA_CHECK(call)                                                                      \
  do {                                                                                            \
    cudaError_t zrl_cuda_err_ = (call);                                                           \
    if (zrl_cuda_err_ != cudaSuccess)                                                             \
      ::zerorl::model::ops::cuda::CudaFatal(#call, cudaGetErrorString(zrl_cuda_err_), __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: catches bad launch configurations immediately.
#define ZRL_CUDA_CHECK_LAUNCH() ZRL_CUDA_CHECK(cudaGetLastError())

#define ZRL_CUBLAS_CHECK(call)                                                                    \
  do {                                                                                            \
    cublasStatus_t zrl_cublas_st_ = (call);                                                       \
    if (zrl_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                  \
      ::zerorl::model::ops::cuda::CudaFatal(#call, ::zerorl::model::ops::cuda::CublasStatusName(zrl_cublas_st_), \
                                            __FILE__, __LINE__);                                  \
  } while (0)

