// Token sampler: temperature, top-k, top-p (nucleus), or greedy, with a seeded
// RNG. Deterministic: the same params, seed and logits give the same tokens on
// every run and machine (mt19937_64 + our own uniform conversion).
// For every drawn token it returns the logprob under the raw policy
// (softmax of the logits at temperature 1, no truncation) and under the
// distribution actually sampled from (temperature + top-k + top-p, renormalised;
// 0 for greedy, whose distribution is a point mass).
#pragma once

#include <cstdint>
#include <random>

#include "model/ops/ops.h"

namespace zerorl::model {

struct SamplerParams {
  bool greedy = false;
  float temperature = 1.0f;  // > 0
  float top_p = 1.0f;        // (0, 1]; 1 = off
  int64_t top_k = 0;         // 0 = off
};

struct TokenDraw {
  int32_t token = -1;
  float logprob = 0.f;           // raw policy, temperature 1
  float sampling_logprob = 0.f;  // under the sampling distribution
};

class Sampler {
 public:
  Sampler(const SamplerParams& params, uint64_t seed) : params_(params), rng_(seed) {}
  // logits[V] on the host. Not thread-safe (one Sampler per sequence).
  TokenDraw Draw(const float* logits, int64_t V);
  // The uniform in [0, 1) the next non-greedy draw uses (advances the stream);
  // for backends that draw on the device (ops::Backend::SampleRows).
  double NextUniform();
  const SamplerParams& params() const { return params_; }

 private:
  SamplerParams params_;
  std::mt19937_64 rng_;
};

// The same parameters as the op layer's struct (ops::Backend::SampleRows).
ops::SampleParams ToOpsParams(const SamplerParams& p);

}  // namespace zerorl::model
