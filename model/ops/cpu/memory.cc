// CpuBackend memory ops (host memory: aligned malloc, memcpy), strided 2-D
// copies, and the optimizer's element-wise ops (AdamW, sum of squares, scale).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/ops/cpu/cpu_backend.h"

namespace zerorl::model::ops::cpu {

void* CpuBackend::Alloc(int64_t bytes, const char* what) {
  if (bytes <= 0) bytes = 64;
  void* p = blocks_.Alloc(static_cast<size_t>(bytes));
  if (!p)
    throw OutOfMemory(absl::StrCat("out of host memory allocating \"", what, "\": asked for ", bytes, " bytes (",
                                   absl::StrFormat("%.2f", static_cast<double>(bytes) / (1 << 30)), " GiB)"));
  return p;
}

void CpuBackend::Free(void* p) { blocks_.Free(p); }

void CpuBackend::Copy(void* dst, const void* src, int64_t bytes) {
  if (bytes > 0 && dst != src) std::memmove(dst, src, bytes);
}
void CpuBackend::Upload(void* dst, const void* host, int64_t bytes) { Copy(dst, host, bytes); }
void CpuBackend::Download(void* host, const void* src, int64_t bytes) { Copy(host, src, bytes); }

void CpuBackend::Fill(float* x, float value, int64_t n) { std::fill(x, x + n, value); }
void CpuBackend::FillI32(int32_t* x, int32_t value, int64_t n) { std::fill(x, x + n, value); }

void CpuBackend::Copy2D(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
                        bool accumulate) {
  for (int64_t r = 0; r < rows; ++r) {
    float* d = dst + r * ld_dst;
    const float* s = src + r * ld_src;
    if (accumulate) {
      for (int64_t c = 0; c < cols; ++c) d[c] += s[c];
    } else {
      std::memcpy(d, s, cols * sizeof(float));
    }
  }
}

void CpuBackend::AdamW(float* w, float* m, float* v, const float* g, int64_t n, float lr, float b1, float b2,
                       float eps, float wd, float bc1, float bc2) {
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1.f - b1) * g[i];
    v[i] = b2 * v[i] + (1.f - b2) * g[i] * g[i];
    const float mh = m[i] / bc1, vh = v[i] / bc2;
    w[i] -= lr * (mh / (std::sqrt(vh) + eps) + wd * w[i]);
  }
}

double CpuBackend::SumSquares(const float* x, int64_t n) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  return ss;
}

void CpuBackend::Scale(float* x, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace zerorl::model::ops::cpu
