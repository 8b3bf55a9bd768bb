// Sampler: greedy / temperature / top-k / top-p draws with both logprobs. The
// draw itself is the CPU backend's SampleRows (one implementation, which the
// CUDA kernel is checked against); the Sampler owns the seeded uniform stream.
#include "model/sampler.h"

#include "model/ops/ops.h"

namespace zerorl::model {

double Sampler::NextUniform() { return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0); }

ops::SampleParams ToOpsParams(const SamplerParams& p) {
  ops::SampleParams o;
  o.greedy = p.greedy;
  o.temperature = p.temperature;
  o.top_p = p.top_p;
  o.top_k = p.top_k;
  return o;
}

TokenDraw Sampler::Draw(const float* logits, int64_t V) {
  TokenDraw d;
  const double u = params_.greedy ? 0.0 : NextUniform();
  ops::CpuBackend()->SampleRows(&d.token, &d.logprob, &d.sampling_logprob, logits, &u, 1, V, ToOpsParams(params_));
  return d;
}

}  // namespace zerorl::model
