// ZRL_CUDA_RETURN_IF_ERROR(call): a failed CUDA runtime call becomes an
// absl::InternalError naming the call, file, line and the CUDA error, returned
// from the enclosing absl::Status(Or) function. Host-compiled files only.
#pragma once

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace zerorl::model::ops::cuda {

// "cudaMalloc(&p, n) at model/ops/cuda/x.cc:12: out of memory (cudaErrorMemoryAllocation)"
inline absl::Status CudaError(cudaError_t e, const char* what, const char* file, int line) {
  return absl::InternalError(absl::StrCat(what, " at ", file, ":", line, ": ", cudaGetErrorString(e), " (",
                                          cudaGetErrorName(e), ")"));
}

}  // namespace zerorl::model::ops::cuda

#define ZRL_CUDA_RETURN_IF_ERROR(call)                                                         \
  do {                                                                                         \
    cudaError_t zrl_cuda_err_ = (call);                                                        \
    if (zrl_cuda_err_ != cudaSuccess)                                                          \
      return ::zerorl::model::ops::cuda::CudaError(zrl_cuda_err_, #call, __FILE__, __LINE__);  \
  } while (0)
