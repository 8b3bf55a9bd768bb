// AdamW (decoupled weight decay) over a model's parameters, global grad-norm
// clipping and the warmup + cosine learning-rate schedule.
//
// State (step, m, v: one float each per trainable parameter element, in
// Parameters() order) serialises to bytes and back bit-exactly, so a learner
// checkpoint resumes the same trajectory. Weight decay applies to matrices
// (tensors of rank >= 2) only; norms, biases and embeddings-as-vectors do not
// decay. Tensors with trainable=false (e_score_correction_bias) are skipped.
// Both run on the tensors' backend (TensorRef::ops): on a GPU the moments live
// in device memory next to the weights and nothing crosses to the host but
// the grad norm.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "model/model.h"
#include "model/ops/buffer.h"

namespace zerorl::model {

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled: p -= lr * wd * p
};

// lr(step) for step = 0,1,...: linear warmup from 0 to peak over warmup_steps,
// then cosine from peak to peak*min_lr_ratio at total_steps, flat after.
struct LrSchedule {
  float peak_lr = 1e-3f;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  float min_lr_ratio = 0.1f;
  float LrAt(int64_t step) const;
};

// Scales every trainable grad so the global L2 norm is <= max_norm (when
// max_norm > 0). Returns the norm before clipping.
float ClipGradNorm(const std::vector<TensorRef>& params, float max_norm);

class AdamW {
 public:
  explicit AdamW(const AdamWConfig& config) : config_(config) {}
  // One update of every trainable tensor with its grad, at learning rate lr.
  // The first call sizes the state; later calls must pass the same tensors
  // (FAILED_PRECONDITION otherwise).
  absl::Status Step(const std::vector<TensorRef>& params, float lr);
  int64_t step() const { return step_; }
  std::string SerializeState() const;
  // INVALID_ARGUMENT on a corrupt or foreign blob.
  absl::Status RestoreState(const std::string& blob);

 private:
  AdamWConfig config_;
  int64_t step_ = 0;
  ops::Buf<float> m_, v_;               // on the parameters' backend, bound by the first Step
  std::vector<float> restored_m_, restored_v_;  // RestoreState before that first Step
};

}  // namespace zerorl::model
