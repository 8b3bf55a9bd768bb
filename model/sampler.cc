// Sampler: greedy / temperature / top-k / top-p draws with both logprobs.
#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace zerorl::model {

double Sampler::Uniform() { return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0); }

TokenDraw Sampler::Draw(const float* logits, int64_t V) {
  TokenDraw d;
  // Raw policy log-softmax (temperature 1), in double for a stable reference.
  double mx = *std::max_element(logits, logits + V), sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
  const double lse = mx + std::log(sum);
  auto raw = [&](int64_t v) { return static_cast<float>(logits[v] - lse); };
  if (params_.greedy) {
    d.token = static_cast<int32_t>(std::max_element(logits, logits + V) - logits);
    d.logprob = raw(d.token);
    d.sampling_logprob = 0.f;
    return d;
  }
  const double inv_t = 1.0 / params_.temperature;
  std::vector<int32_t> cand;
  const bool truncate = (params_.top_k > 0 && params_.top_k < V) || params_.top_p < 1.f;
  cand.resize(V);
  std::iota(cand.begin(), cand.end(), 0);
  if (truncate) {
    auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    int64_t k = (params_.top_k > 0 && params_.top_k < V) ? params_.top_k : V;
    std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), by_logit);
    cand.resize(k);
  }
  std::vector<double> p(cand.size());
  double z = 0;
  for (size_t i = 0; i < cand.size(); ++i) z += (p[i] = std::exp((logits[cand[i]] - mx) * inv_t));
  for (auto& v : p) v /= z;
  if (params_.top_p < 1.f) {
    double cum = 0;
    size_t keep = 0;
    while (keep < p.size()) {
      cum += p[keep++];
      if (cum >= params_.top_p) break;
    }
    p.resize(keep);
    cand.resize(keep);
    for (auto& v : p) v /= cum;
  }
  const double u = Uniform();
  double cum = 0;
  size_t pick = p.size() - 1;
  for (size_t i = 0; i < p.size(); ++i) {
    cum += p[i];
    if (u < cum) {
      pick = i;
      break;
    }
  }
  d.token = cand[pick];
  d.logprob = raw(d.token);
  d.sampling_logprob = static_cast<float>(std::log(p[pick]));
  return d;
}

}  // namespace zerorl::model
