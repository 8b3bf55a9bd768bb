// CpuBackend MoE routing: router scores (sigmoid / softmax) and their
// backward, group-limited top-k selection with combine weights and its
// backward, the combine weights of replayed picks (routing replay), the stable by-expert grouping of routed rows (counting sort), and
// the backward of the weighted combine.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

#include "model/ops/cpu/cpu_backend.h"

namespace zerorl::model::ops::cpu {
namespace {

// Picks K experts for one token. choice = scores (+ bias); with n_group > 1
// only the topk_group groups with the best top-2 sums stay eligible (others
// masked to 0.0, as HF's DeepSeek-V3 code does).
void SelectExperts(const RouteShape& r, const float* scores, const float* bias, int32_t* idx, float* tmp,
                   int32_t* order) {
  const int64_t E = r.E, K = r.K;
  for (int64_t e = 0; e < E; ++e) tmp[e] = scores[e] + (bias ? bias[e] : 0.f);
  if (r.n_group > 1) {
    const int64_t per = E / r.n_group;
    std::vector<std::pair<float, int64_t>> gs(r.n_group);
    for (int64_t g = 0; g < r.n_group; ++g) {
      float a = -INFINITY, b = -INFINITY;
      for (int64_t e = g * per; e < (g + 1) * per; ++e) {
        float v = tmp[e];
        if (v > a) {
          b = a;
          a = v;
        } else if (v > b) {
          b = v;
        }
      }
      gs[g] = {a + b, g};
    }
    std::stable_sort(gs.begin(), gs.end(), [](auto& x, auto& y) { return x.first > y.first; });
    for (int64_t q = r.topk_group; q < r.n_group; ++q)
      for (int64_t e = gs[q].second * per; e < (gs[q].second + 1) * per; ++e) tmp[e] = 0.f;
  }
  std::iota(order, order + E, 0);
  std::partial_sort(order, order + K, order + E,
                    [&](int32_t a, int32_t b) { return tmp[a] > tmp[b] || (tmp[a] == tmp[b] && a < b); });
  for (int64_t k = 0; k < K; ++k) idx[k] = order[k];
}

// w[k] = scores[idx[k]] (normalised over the K when r.normalize) * r.scale.
void GateWeights(const RouteShape& r, const float* s, const int32_t* id, float* wn) {
  float sum = 0.f;
  for (int64_t k = 0; k < r.K; ++k) sum += (wn[k] = s[id[k]]);
  for (int64_t k = 0; k < r.K; ++k) wn[k] = (r.normalize ? wn[k] / (sum + 1e-20f) : wn[k]) * r.scale;
}

}  // namespace

void CpuBackend::RouterScores(float* scores, const float* logits, int64_t N, int64_t E, bool sigmoid) {
  for (int64_t n = 0; n < N; ++n) {
    const float* z = logits + n * E;
    float* s = scores + n * E;
    if (sigmoid) {
      for (int64_t e = 0; e < E; ++e) s[e] = 1.f / (1.f + std::exp(-z[e]));
    } else {
      float mx = *std::max_element(z, z + E), sum = 0.f;
      for (int64_t e = 0; e < E; ++e) sum += (s[e] = std::exp(z[e] - mx));
      for (int64_t e = 0; e < E; ++e) s[e] /= sum;
    }
  }
}

void CpuBackend::RouterScoresBackward(float* dlogits, const float* dscores, const float* scores, int64_t N, int64_t E,
                                      bool sigmoid) {
  for (int64_t n = 0; n < N; ++n) {
    const float* s = scores + n * E;
    const float* d = dscores + n * E;
    float* z = dlogits + n * E;
    if (sigmoid) {
      for (int64_t e = 0; e < E; ++e) z[e] = d[e] * s[e] * (1.f - s[e]);
    } else {
      float dot = 0.f;
      for (int64_t e = 0; e < E; ++e) dot += d[e] * s[e];
      for (int64_t e = 0; e < E; ++e) z[e] = s[e] * (d[e] - dot);
    }
  }
}

void CpuBackend::RouterTopK(int32_t* idx, float* w, const float* scores, const float* bias, int64_t N,
                            const RouteShape& r) {
  std::vector<float> tmp(r.E);
  std::vector<int32_t> order(r.E);
  for (int64_t n = 0; n < N; ++n) {
    const float* s = scores + n * r.E;
    int32_t* id = idx + n * r.K;
    float* wn = w + n * r.K;
    SelectExperts(r, s, bias, id, tmp.data(), order.data());
    GateWeights(r, s, id, wn);
  }
}

void CpuBackend::RouterGateWeights(float* w, const float* scores, const int32_t* idx, int64_t N, const RouteShape& r) {
  for (int64_t n = 0; n < N; ++n) GateWeights(r, scores + n * r.E, idx + n * r.K, w + n * r.K);
}

void CpuBackend::RouterTopKBackward(float* dscores, const float* dw, const float* scores, const int32_t* idx,
                                    int64_t N, const RouteShape& r) {
  const int64_t E = r.E, K = r.K;
  for (int64_t n = 0; n < N; ++n) {
    const float* s = scores + n * E;
    const int32_t* id = idx + n * K;
    const float* g = dw + n * K;
    float* d = dscores + n * E;
    if (r.normalize) {
      float S = 0.f, gs = 0.f;
      for (int64_t k = 0; k < K; ++k) S += s[id[k]];
      S += 1e-20f;
      for (int64_t k = 0; k < K; ++k) gs += g[k] * s[id[k]];
      for (int64_t k = 0; k < K; ++k) d[id[k]] += r.scale / S * (g[k] - gs / S);
    } else {
      for (int64_t k = 0; k < K; ++k) d[id[k]] += r.scale * g[k];
    }
  }
}

void CpuBackend::MoePermute(int64_t* offsets, int32_t* row_token, int32_t* row_slot, const int32_t* idx, int64_t N,
                            int64_t K, int64_t E) {
  const int64_t R = N * K;
  std::fill(offsets, offsets + E + 1, 0);
  for (int64_t r = 0; r < R; ++r) ++offsets[idx[r] + 1];
  for (int64_t e = 0; e < E; ++e) offsets[e + 1] += offsets[e];
  std::vector<int64_t> fill(offsets, offsets + E);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t dst = fill[idx[r]]++;
    row_token[dst] = static_cast<int32_t>(r / K);
    row_slot[dst] = static_cast<int32_t>(r);
  }
}

void CpuBackend::MoeCombineBackward(float* dy, float* dw_slot, const float* dout, const float* y, const float* row_w,
                                    const int32_t* row_token, const int32_t* row_slot, int64_t R, int64_t D) {
  for (int64_t r = 0; r < R; ++r) {
    const float* g = dout + static_cast<int64_t>(row_token[r]) * D;
    const float* yr = y + r * D;
    const float w = row_w[r];
    float* d = dy + r * D;
    float dot = 0.f;
    for (int64_t i = 0; i < D; ++i) {
      d[i] = w * g[i];
      dot += g[i] * yr[i];
    }
    dw_slot[row_slot[r]] = dot;
  }
}

}  // namespace zerorl::model::ops::cpu
