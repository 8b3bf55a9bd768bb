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

namespace {
ops::Backend* OpsOf(const TensorRef& t) { return t.ops ? t.ops : ops::CpuBackend(); }
}  // namespace

float ClipGradNorm(const std::vector<TensorRef>& params, float max_norm) {
  double ss = 0;
  for (const auto& p : params)
    if (p.trainable) ss += OpsOf(p)->SumSquares(p.grad, p.size);
  const float norm = static_cast<float>(std::sqrt(ss));
  if (max_norm > 0.f && norm > max_norm) {
    const float s = max_norm / (norm + 1e-6f);
    for (const auto& p : params)
      if (p.trainable) OpsOf(p)->Scale(p.grad, s, p.size);
  }
  return norm;
}

absl::Status AdamW::Step(const std::vector<TensorRef>& params, float lr) {
  int64_t total = 0;
  for (const auto& p : params)
    if (p.trainable) total += p.size;
  if (params.empty()) return absl::OkStatus();
  ops::Backend* b = OpsOf(params.front());
  for (const auto& p : params)
    if (OpsOf(p) != b) return absl::InvalidArgumentError("AdamW: the parameters live on different backends");
  try {
    m_.bind(b, "AdamW moments");
    v_.bind(b, "AdamW moments");
    if (!restored_m_.empty()) {
      if (static_cast<int64_t>(restored_m_.size()) != total)
        return absl::FailedPreconditionError(absl::StrCat("AdamW: restored state holds ", restored_m_.size(),
                                                          " elements but the parameters have ", total));
      m_.upload(restored_m_.data(), total);
      v_.upload(restored_v_.data(), total);
      restored_m_.clear();
      restored_v_.clear();
    } else if (m_.empty()) {
      m_.assign(total, 0.f);
      v_.assign(total, 0.f);
    } else if (m_.size() != total) {
      return absl::FailedPreconditionError(
          absl::StrCat("AdamW: state holds ", m_.size(), " elements but the parameters have ", total));
    }
  } catch (const std::bad_alloc& e) {
    return absl::ResourceExhaustedError(absl::StrCat("out of memory for the AdamW state: ", e.what()));
  }
  ++step_;
  const float b1 = config_.beta1, b2 = config_.beta2;
  const float bc1 = 1.f - static_cast<float>(std::pow(b1, static_cast<double>(step_)));
  const float bc2 = 1.f - static_cast<float>(std::pow(b2, static_cast<double>(step_)));
  int64_t off = 0;
  for (const auto& p : params) {
    if (!p.trainable) continue;
    const float wd = p.shape.size() >= 2 ? config_.weight_decay : 0.f;
    b->AdamW(p.data, m_.data() + off, v_.data() + off, p.grad, p.size, lr, b1, b2, config_.eps, wd, bc1, bc2);
    off += p.size;
  }
  return absl::OkStatus();
}

std::string AdamW::SerializeState() const {
  std::string s;
  const bool live = !m_.empty();
  const uint64_t n = live ? m_.size() : restored_m_.size();
  s.append(reinterpret_cast<const char*>(&kMagic), 4);
  s.append(reinterpret_cast<const char*>(&step_), 8);
  s.append(reinterpret_cast<const char*>(&n), 8);
  const size_t head = s.size();
  s.resize(head + 8 * n);
  if (live) {
    m_.backend()->Download(s.data() + head, m_.data(), n * 4);
    v_.backend()->Download(s.data() + head + n * 4, v_.data(), n * 4);
  } else if (n > 0) {
    std::memcpy(s.data() + head, restored_m_.data(), n * 4);
    std::memcpy(s.data() + head + n * 4, restored_v_.data(), n * 4);
  }
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
  // Lands on the parameters' backend at the next Step.
  m_.clear();
  v_.clear();
  restored_m_.resize(n);
  restored_v_.resize(n);
  std::memcpy(restored_m_.data(), blob.data() + 20, n * 4);
  std::memcpy(restored_v_.data(), blob.data() + 20 + n * 4, n * 4);
  return absl::OkStatus();
}

}  // namespace zerorl::model
