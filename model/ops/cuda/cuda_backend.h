// The CUDA implementation of ops::Backend: every op of model/ops/ops.h on
// device pointers. GEMMs go through cuBLAS (cublasGemmEx, fp32 storage with
// bf16 tensor-core compute and fp32 accumulation by default, or plain fp32);
// the other ops are the kernels of kernels.cu and attention.cu. All work is
// enqueued on the legacy default stream of the backend's device, so a
// cudaMemcpy (DeviceBuffer::Download) after an op sees its result.
//
// This header does not include CUDA headers: code built by the host compiler
// (tests, bench, the model) can use it. Available only when the project is
// configured with ZERORL_CUDA=ON (target zerorl_model_cuda).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/ops/cuda/caching_allocator.h"
#include "model/ops/ops.h"

namespace zerorl::model::ops {

enum class GemmPrecision {
  kFp32,  // CUBLAS_COMPUTE_32F: the fp32 reference path
  kBf16,  // CUBLAS_COMPUTE_32F_FAST_16BF: inputs rounded to bf16, fp32 accumulation
};

struct CudaBackendOptions {
  int device = 0;
  GemmPrecision gemm = GemmPrecision::kBf16;
};

// OK when `device` is a usable CUDA device; otherwise FAILED_PRECONDITION with
// the reason, e.g. "no CUDA device: cudaGetDeviceCount returned 0" or
// "no CUDA device: cudaGetDeviceCount failed: CUDA driver version is
// insufficient for CUDA runtime version (cudaErrorInsufficientDriver)".
absl::Status CudaDeviceStatus(int device = 0);

// "NVIDIA H200 (sm_90, 139.8 GiB, 132 SMs)" — for logs and benchmarks.
absl::StatusOr<std::string> CudaDeviceDescription(int device = 0);

// A new backend owning its cuBLAS handle (the caller owns the backend).
absl::StatusOr<std::unique_ptr<Backend>> NewCudaBackend(const CudaBackendOptions& options);

// The process-wide backend of `device` (bf16 GEMMs), created on first use.
absl::StatusOr<Backend*> CudaBackend(int device = 0);

// Byte counts of a CUDA backend's caching allocator (Backend::Alloc / Free),
// and a release of its cached blocks to the device. FAILED_PRECONDITION when
// `backend` is not a CUDA backend.
absl::StatusOr<cuda::AllocatorStats> CudaBackendMemoryStats(Backend* backend);
absl::Status ReleaseCudaBackendCache(Backend* backend);

// Blocks until all work queued on the backend's device has finished; surfaces
// asynchronous kernel faults as an error naming the fault.
absl::Status CudaSynchronize(int device = 0);

}  // namespace zerorl::model::ops
