// CpuBackend::SampleRows: greedy / temperature / top-k / top-p draws with the
// raw-policy and sampling logprobs — the reference the CUDA kernel matches
// and what model::Sampler uses for its host draws.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "model/ops/cpu/cpu_backend.h"

namespace zerorl::model::ops::cpu {
namespace {

void SampleRow(int32_t* token, float* logprob, float* sampling_logprob, const float* logits, double u, int64_t V,
               const SampleParams& p) {
  // Raw policy log-softmax (temperature 1), in double for a stable reference.
  double mx = *std::max_element(logits, logits + V), sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
  const double lse = mx + std::log(sum);
  auto raw = [&](int64_t v) { return static_cast<float>(logits[v] - lse); };
  if (p.greedy) {
    *token = static_cast<int32_t>(std::max_element(logits, logits + V) - logits);
    *logprob = raw(*token);
    *sampling_logprob = 0.f;
    return;
  }
  const double inv_t = 1.0 / p.temperature;
  std::vector<int32_t> cand(V);
  std::iota(cand.begin(), cand.end(), 0);
  const bool truncate = (p.top_k > 0 && p.top_k < V) || p.top_p < 1.f;
  if (truncate) {
    auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    const int64_t k = (p.top_k > 0 && p.top_k < V) ? p.top_k : V;
    std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), by_logit);
    cand.resize(k);
  }
  std::vector<double> prob(cand.size());
  double z = 0;
  for (size_t i = 0; i < cand.size(); ++i) z += (prob[i] = std::exp((logits[cand[i]] - mx) * inv_t));
  for (auto& v : prob) v /= z;
  if (p.top_p < 1.f) {
    double cum = 0;
    size_t keep = 0;
    while (keep < prob.size()) {
      cum += prob[keep++];
      if (cum >= p.top_p) break;
    }
    prob.resize(keep);
    cand.resize(keep);
    for (auto& v : prob) v /= cum;
  }
  double cum = 0;
  size_t pick = prob.size() - 1;
  for (size_t i = 0; i < prob.size(); ++i) {
    cum += prob[i];
    if (u < cum) {
      pick = i;
      break;
    }
  }
  *token = cand[pick];
  *logprob = raw(*token);
  *sampling_logprob = static_cast<float>(std::log(prob[pick]));
}

}  // namespace

void CpuBackend::SampleRows(int32_t* token, float* logprob, float* sampling_logprob, const float* logits,
                            const double* u, int64_t n, int64_t V, const SampleParams& p) {
  for (int64_t i = 0; i < n; ++i)
    SampleRow(token + i, logprob + i, sampling_logprob + i, logits + i * V, p.greedy ? 0.0 : u[i], V, p);
}

}  // namespace zerorl::model::ops::cpu
