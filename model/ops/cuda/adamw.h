// AdamW on device memory: the same update as model/optimizer.cc (decoupled
// weight decay, bias correction) over fp32 master weights, first and second
// moments, all on the GPU, plus the global grad-norm helpers for clipping.
// Host-compiler friendly (no CUDA headers); pointers are device memory.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"

namespace zerorl::model::ops {

struct DeviceAdamWArgs {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.f;
  int64_t step = 1;  // 1-based step after the increment (for bias correction)
};

// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// w -= lr * ((m/bc1) / (sqrt(v/bc2) + eps) + wd * w), bc_k = 1 - b_k^step.
// Enqueued on the device's default stream (asynchronous).
void DeviceAdamWStep(float* w, float* m, float* v, const float* g, int64_t n, const DeviceAdamWArgs& a);

// sum_i g[i]^2 over a device vector (synchronises; returns the value on the host).
absl::StatusOr<double> DeviceSumSquares(const float* g, int64_t n);
// g[i] *= s (asynchronous).
void DeviceScale(float* g, float s, int64_t n);

}  // namespace zerorl::model::ops
