// DeviceAdamWStep / DeviceSumSquares / DeviceScale: host wrappers of the
// AdamW and grad-norm kernels (kernels.cu) on the default stream.
#include <cmath>

#include "model/ops/cuda/adamw.h"
#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/cuda_status.h"
#include "model/ops/cuda/kernels.h"

namespace zerorl::model::ops {

void DeviceAdamWStep(float* w, float* m, float* v, const float* g, int64_t n, const DeviceAdamWArgs& a) {
  const float bc1 = 1.f - static_cast<float>(std::pow(a.beta1, static_cast<double>(a.step)));
  const float bc2 = 1.f - static_cast<float>(std::pow(a.beta2, static_cast<double>(a.step)));
  cuda::LaunchAdamW(w, m, v, g, n, a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, bc1, bc2, 0);
}

absl::StatusOr<double> DeviceSumSquares(const float* g, int64_t n) {
  float* acc = nullptr;
  ZRL_CUDA_RETURN_IF_ERROR(cudaMalloc(&acc, sizeof(float)));
  cudaMemset(acc, 0, sizeof(float));
  cuda::LaunchSumSquares(acc, g, n, 0);
  float out = 0.f;
  cudaError_t e = cudaMemcpy(&out, acc, sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(acc);
  ZRL_CUDA_RETURN_IF_ERROR(e);
  return static_cast<double>(out);
}

void DeviceScale(float* g, float s, int64_t n) { cuda::LaunchScale(g, s, n, 0); }

}  // namespace zerorl::model::ops
