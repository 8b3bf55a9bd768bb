// AdamW with decoupled weight decay, global grad-norm clipping, warmup+cosine LR.
#include "model/optimizer.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace zerorl::model {
namespace {
constexpr uint32_t kMagic = 0x5a41444d;  // "ZADM"
}

float LrSchedule::LrAt(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps)
    return peak_lr * static_cast<float>(step + 1) / static_cast<float>(warmup_steps);
  const int64_t decay = total_steps - warmup_steps;
  if (decay <= 0) return peak_lr;
  const double t = std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(decay));
  const double min_lr = peak_lr * min_lr_ratio;
  return static_cast<float>(min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * t)));
}

float ClipGradNorm(const std::vector<TensorRef>& params, float max_norm) {
  double ss = 0;
  for (const auto& p : params) {
    if (!p.trainable) continue;
    for (int64_t i = 0; i < p.size; ++i) ss += static_cast<double>(p.grad[i]) * p.grad[i];
  }
  const float norm = static_cast<float>(std::sqrt(ss));
  if (max_norm > 0.f && norm > max_norm) {
    const float s = max_norm / (norm + 1e-6f);
    for (const auto& p : params)
      if (p.trainable)
        for (int64_t i = 0; i < p.size; ++i) p.grad[i] *= s;
  }
  return norm;
}

absl::Status AdamW::Step(const std::vector<TensorRef>& params, float lr) {
  int64_t total = 0;
  for (const auto& p : params)
    if (p.trainable) total += p.size;
  if (m_.empty()) {
    m_.assign(total, 0.f);
    v_.assign(total, 0.f);
  } else if (static_cast<int64_t>(m_.size()) != total) {
    return absl::FailedPreconditionError(
        absl::StrCat("AdamW: state holds ", m_.size(), " elements but the parameters have ", total));
  }
  ++step_;
  const float b1 = config_.beta1, b2 = config_.beta2;
  const float bc1 = 1.f - static_cast<float>(std::pow(b1, static_cast<double>(step_)));
  const float bc2 = 1.f - static_cast<float>(std::pow(b2, static_cast<double>(step_)));
  int64_t off = 0;
  for (const auto& p : params) {
    if (!p.trainable) continue;
    const float wd = p.shape.size() >= 2 ? config_.weight_decay : 0.f;
    float* m = m_.data() + off;
    float* v = v_.data() + off;
    float* w = p.data;
    const float* g = p.grad;
#pragma omp parallel for simd if (p.size > 65536)
    for (int64_t i = 0; i < p.size; ++i) {
      m[i] = b1 * m[i] + (1.f - b1) * g[i];
      v[i] = b2 * v[i] + (1.f - b2) * g[i] * g[i];
      const float mh = m[i] / bc1, vh = v[i] / bc2;
      w[i] -= lr * (mh / (std::sqrt(vh) + config_.eps) + wd * w[i]);
    }
    off += p.size;
  }
  return absl::OkStatus();
}

std::string AdamW::SerializeState() const {
  std::string s;
  const uint64_t n = m_.size();
  s.append(reinterpret_cast<const char*>(&kMagic), 4);
  s.append(reinterpret_cast<const char*>(&step_), 8);
  s.append(reinterpret_cast<const char*>(&n), 8);
  s.append(reinterpret_cast<const char*>(m_.data()), n * 4);
  s.append(reinterpret_cast<const char*>(v_.data()), n * 4);
  return s;
}

absl::Status AdamW::RestoreState(const std::string& blob) {
  uint32_t magic = 0;
  uint64_t n = 0;
  int64_t step = 0;
  if (blob.size() < 20) return absl::InvalidArgumentError("AdamW state: truncated");
  std::memcpy(&magic, blob.data(), 4);
  std::memcpy(&step, blob.data() + 4, 8);
  std::memcpy(&n, blob.data() + 12, 8);
  if (magic != kMagic) return absl::InvalidArgumentError("AdamW state: bad magic (not an AdamW state blob)");
  if (blob.size() != 20 + 8 * n)
    return absl::InvalidArgumentError(absl::StrCat("AdamW state: ", blob.size(), " bytes, expected ", 20 + 8 * n));
  step_ = step;
  m_.resize(n);
  v_.resize(n);
  std::memcpy(m_.data(), blob.data() + 20, n * 4);
  std::memcpy(v_.data(), blob.data() + 20 + n * 4, n * 4);
  return absl::OkStatus();
}

}  // namespace zerorl::model
