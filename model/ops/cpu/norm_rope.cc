// CpuBackend: RMSNorm (forward/backward) and rotary embeddings.
#include <omp.h>

#include <cmath>
#include <vector>

#include "model/ops/cpu/cpu_backend.h"
#include "model/ops/cpu/simd.h"

namespace zerorl::model::ops::cpu {

void CpuBackend::RmsNormForward(float* out, float* rstd, const float* x, const float* w, int64_t N, int64_t C,
                                int64_t x_stride, int64_t out_stride, float eps) {
#pragma omp parallel for if (N * C > 16384)
  for (int64_t n = 0; n < N; ++n) {
    const float* xr = x + n * x_stride;
    float* o = out + n * out_stride;
    float r = 1.f / std::sqrt(Dot(xr, xr, C) / static_cast<float>(C) + eps);
    if (rstd) rstd[n] = r;
    for (int64_t c = 0; c < C; ++c) o[c] = xr[c] * r * w[c];
  }
}

void CpuBackend::RmsNormBackward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                 const float* rstd, int64_t N, int64_t C, int64_t x_stride, int64_t dout_stride) {
  const int nt = (N * C > 16384) ? omp_get_max_threads() : 1;
  std::vector<float> dw_part(dw ? static_cast<size_t>(nt) * C : 0, 0.f);
#pragma omp parallel num_threads(nt)
  {
    float* my_dw = dw ? dw_part.data() + static_cast<int64_t>(omp_get_thread_num()) * C : nullptr;
#pragma omp for
    for (int64_t n = 0; n < N; ++n) {
      const float* xr = x + n * x_stride;
      const float* g = dout + n * dout_stride;
      float* d = dx + n * x_stride;
      const float r = rstd[n];
      float s = 0.f;  // sum_c g_c w_c x_c
      for (int64_t c = 0; c < C; ++c) s += g[c] * w[c] * xr[c];
      const float k = s * r * r * r / static_cast<float>(C);
      for (int64_t c = 0; c < C; ++c) d[c] += r * w[c] * g[c] - k * xr[c];
      if (my_dw)
        for (int64_t c = 0; c < C; ++c) my_dw[c] += g[c] * xr[c] * r;
    }
  }
  if (dw)
    for (int t = 0; t < nt; ++t)
      for (int64_t c = 0; c < C; ++c) dw[c] += dw_part[static_cast<size_t>(t) * C + c];
}

void CpuBackend::Rope(float* x, const int32_t* pos, int64_t N, int64_t nh, int64_t stride, int64_t head_stride,
                      int64_t off, int64_t rd, float theta, bool interleaved, bool inverse) {
  const int64_t half = rd / 2;
  std::vector<float> inv_freq(half);
  for (int64_t i = 0; i < half; ++i)
    inv_freq[i] = 1.f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(rd));
#pragma omp parallel if (N * nh * rd > 16384)
  {
    std::vector<float> cs(half), sn(half);
#pragma omp for
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t i = 0; i < half; ++i) {
        float a = static_cast<float>(pos[n]) * inv_freq[i];
        cs[i] = std::cos(a);
        sn[i] = inverse ? -std::sin(a) : std::sin(a);
      }
      for (int64_t h = 0; h < nh; ++h) {
        float* b = x + n * stride + h * head_stride + off;
        for (int64_t i = 0; i < half; ++i) {
          float* pa = interleaved ? b + 2 * i : b + i;
          float* pb = interleaved ? b + 2 * i + 1 : b + i + half;
          float va = *pa, vb = *pb;
          *pa = va * cs[i] - vb * sn[i];
          *pb = vb * cs[i] + va * sn[i];
        }
      }
    }
  }
}

}  // namespace zerorl::model::ops::cpu
