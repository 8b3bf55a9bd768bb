// Backend helpers shared by every backend: linear layers expressed as Gemm.
#include "model/ops/ops.h"

#include <unistd.h>

namespace zerorl::model::ops {

void Backend::LinearForward(float* out, const float* x, const float* w, int64_t N, int64_t I, int64_t O,
                            bool accumulate) {
  // out[N,O] = x[N,I] @ w[O,I]^T
  Gemm(false, true, N, O, I, 1.f, x, I, w, I, accumulate ? 1.f : 0.f, out, O);
}

void Backend::LinearBackward(float* dx, float* dw, const float* dout, const float* x, const float* w, int64_t N,
                             int64_t I, int64_t O) {
  if (dx) Gemm(false, false, N, I, O, 1.f, dout, O, w, I, 1.f, dx, I);   // dx[N,I] += dout[N,O] @ w[O,I]
  if (dw) Gemm(true, false, O, I, N, 1.f, dout, O, x, I, 1.f, dw, I);    // dw[O,I] += dout^T @ x
}

int64_t Backend::memory_bytes() const {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
}

}  // namespace zerorl::model::ops
