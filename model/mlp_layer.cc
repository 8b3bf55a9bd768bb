// The MLP half of a decoder layer: dense SwiGLU, or DeepSeekMoE / Qwen3-MoE —
// router scores (sigmoid or softmax), selection with the correction bias and
// group limit, top-k combine weights, shared experts — forward and backward,
// plus the sequence-wise balance loss. Experts are batched: the rows routed to
// each expert are gathered and run as one GEMM per expert, experts in parallel.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <type_traits>

#include "model/transformer.h"

namespace zerorl::model::internal {
namespace {

template <typename F>
void ParallelFor(ops::Backend* ops, int64_t n, F&& f) {
  using Fn = std::remove_reference_t<F>;
  ops->ParallelFor(n, [](void* ctx, int64_t i) { (*static_cast<Fn*>(ctx))(i); }, &f);
}

// Picks K experts for one token. choice = scores (+ bias); with n_group > 1
// only the topk_group groups with the best top-2 sums stay eligible (others
// masked to 0.0, as HF's DeepSeek-V3 code does).
void SelectExperts(const ModelConfig& c, const float* scores, const float* bias, int32_t* idx, float* tmp,
                   int32_t* order) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
  for (int64_t e = 0; e < E; ++e) tmp[e] = scores[e] + (bias ? bias[e] : 0.f);
  if (c.n_group > 1) {
    const int64_t per = E / c.n_group;
    std::vector<std::pair<float, int64_t>> gs(c.n_group);
    for (int64_t g = 0; g < c.n_group; ++g) {
      float a = -INFINITY, b = -INFINITY;
      for (int64_t e = g * per; e < (g + 1) * per; ++e) {
        float v = tmp[e];
        if (v > a) { b = a; a = v; } else if (v > b) { b = v; }
      }
      gs[g] = {a + b, g};
    }
    std::stable_sort(gs.begin(), gs.end(), [](auto& x, auto& y) { return x.first > y.first; });
    for (int64_t r = c.topk_group; r < c.n_group; ++r)
      for (int64_t e = gs[r].second * per; e < (gs[r].second + 1) * per; ++e) tmp[e] = 0.f;
  }
  std::iota(order, order + E, 0);
  std::partial_sort(order, order + K, order + E, [&](int32_t a, int32_t b) {
    return tmp[a] > tmp[b] || (tmp[a] == tmp[b] && a < b);
  });
  for (int64_t k = 0; k < K; ++k) idx[k] = order[k];
}

bool NormalizesTopk(const ModelConfig& c) {
  // deepseek_v3 normalises only when K > 1; qwen3_moe whenever norm_topk_prob.
  return c.norm_topk_prob && (!c.is_mla() || c.num_experts_per_tok > 1);
}

std::vector<uint8_t> ValidMask(const std::vector<SeqSpan>& spans, int64_t N) {
  std::vector<uint8_t> valid(N, 0);
  for (const auto& s : spans) std::fill(valid.begin() + s.start, valid.begin() + s.start + s.valid, 1);
  return valid;
}

void DenseSwiGlu(ops::Backend* ops, const float* x, const float* w_gu, const float* w_d, float* h, float* a,
                 float* out, int64_t N, int64_t D, int64_t I) {
  ops->LinearForward(h, x, w_gu, N, D, 2 * I);
  ops->SwiGluForward(a, h, N, I);
  ops->LinearForward(out, a, w_d, N, I, D, /*accumulate=*/true);
}

void DenseSwiGluBackward(const Net& net, const float* x, const float* w_gu, const float* w_d, const float* h,
                         const float* a, const float* dout, float* dx, int64_t N, int64_t D, int64_t I) {
  std::vector<float> da(N * I, 0.f), dh(N * 2 * I);
  net.ops->LinearBackward(da.data(), net.G(w_d), dout, a, w_d, N, I, D);
  net.ops->SwiGluBackward(dh.data(), da.data(), h, N, I);
  net.ops->LinearBackward(dx, net.G(w_gu), dh.data(), x, w_gu, N, D, 2 * I);
}

}  // namespace

void MlpForward(const Net& net, const Layer& L, LayerActs& A, const float* x_mid, float* out, int64_t N,
                const std::vector<SeqSpan>& spans, int64_t* loads) {
  const ModelConfig& c = *net.cfg;
  ops::Backend* ops = net.ops;
  const int64_t D = c.hidden_size;
  A.ln2.resize(N * D);
  A.rstd2.resize(N);
  ops->RmsNormForward(A.ln2.data(), A.rstd2.data(), x_mid, L.ln2, N, D, D, D, static_cast<float>(c.rms_norm_eps));
  if (out != x_mid) std::memcpy(out, x_mid, N * D * 4);
  if (!L.moe) {
    const int64_t I = c.intermediate_size;
    A.h.resize(N * 2 * I);
    A.a.resize(N * I);
    DenseSwiGlu(ops, A.ln2.data(), L.gate_up, L.down, A.h.data(), A.a.data(), out, N, D, I);
    return;
  }
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok, Im = c.moe_intermediate_size, R = N * K;
  A.rlogits.resize(N * E);
  A.scores.resize(N * E);
  ops->LinearForward(A.rlogits.data(), A.ln2.data(), L.router, N, D, E);
  for (int64_t n = 0; n < N; ++n) {
    const float* z = A.rlogits.data() + n * E;
    float* s = A.scores.data() + n * E;
    if (c.scoring_func == ScoringFunc::kSigmoid) {
      for (int64_t e = 0; e < E; ++e) s[e] = 1.f / (1.f + std::exp(-z[e]));
    } else {
      float mx = *std::max_element(z, z + E), sum = 0.f;
      for (int64_t e = 0; e < E; ++e) sum += (s[e] = std::exp(z[e] - mx));
      for (int64_t e = 0; e < E; ++e) s[e] /= sum;
    }
  }
  // Route.
  A.topk_idx.resize(R);
  A.topk_w.resize(R);
  std::vector<float> tmp(E);
  std::vector<int32_t> order(E);
  const bool norm = NormalizesTopk(c);
  const float scale = static_cast<float>(c.routed_scaling_factor);
  for (int64_t n = 0; n < N; ++n) {
    const float* s = A.scores.data() + n * E;
    int32_t* idx = A.topk_idx.data() + n * K;
    float* w = A.topk_w.data() + n * K;
    SelectExperts(c, s, L.router_bias, idx, tmp.data(), order.data());
    float sum = 0.f;
    for (int64_t k = 0; k < K; ++k) sum += (w[k] = s[idx[k]]);
    for (int64_t k = 0; k < K; ++k) w[k] = (norm ? w[k] / (sum + 1e-20f) : w[k]) * scale;
  }
  // Group rows by expert (counting sort; stable in token order).
  A.ex_off.assign(E + 1, 0);
  for (int64_t r = 0; r < R; ++r) ++A.ex_off[A.topk_idx[r] + 1];
  for (int64_t e = 0; e < E; ++e) A.ex_off[e + 1] += A.ex_off[e];
  A.row_token.resize(R);
  A.row_slot.resize(R);
  {
    std::vector<int64_t> fill(A.ex_off.begin(), A.ex_off.end() - 1);
    for (int64_t r = 0; r < R; ++r) {
      int64_t dst = fill[A.topk_idx[r]]++;
      A.row_token[dst] = static_cast<int32_t>(r / K);
      A.row_slot[dst] = static_cast<int32_t>(r);
    }
  }
  if (loads) {
    std::vector<uint8_t> valid = ValidMask(spans, N);
    for (int64_t r = 0; r < R; ++r)
      if (valid[r / K]) ++loads[A.topk_idx[r]];
  }
  A.ex_x.resize(R * D);
  A.ex_h.resize(R * 2 * Im);
  A.ex_a.resize(R * Im);
  A.ex_y.resize(R * D);
  ops->GatherRows(A.ex_x.data(), A.ln2.data(), A.row_token.data(), R, D);
  ParallelFor(ops, E, [&](int64_t e) {
    const int64_t r0 = A.ex_off[e], ne = A.ex_off[e + 1] - r0;
    if (ne == 0) return;
    ops->LinearForward(A.ex_h.data() + r0 * 2 * Im, A.ex_x.data() + r0 * D, L.ex_gate_up[e], ne, D, 2 * Im);
    ops->SwiGluForward(A.ex_a.data() + r0 * Im, A.ex_h.data() + r0 * 2 * Im, ne, Im);
    ops->LinearForward(A.ex_y.data() + r0 * D, A.ex_a.data() + r0 * Im, L.ex_down[e], ne, Im, D);
  });
  std::vector<float> row_w(R);
  for (int64_t r = 0; r < R; ++r) row_w[r] = A.topk_w[A.row_slot[r]];
  ops->ScatterAddRows(out, A.ex_y.data(), A.row_token.data(), row_w.data(), R, D);
  if (c.n_shared_experts > 0) {
    const int64_t Is = c.n_shared_experts * Im;
    A.sh_h.resize(N * 2 * Is);
    A.sh_a.resize(N * Is);
    DenseSwiGlu(ops, A.ln2.data(), L.sh_gate_up, L.sh_down, A.sh_h.data(), A.sh_a.data(), out, N, D, Is);
  }
}

float BalanceLoss(const ModelConfig& c, const LayerActs& A, const std::vector<SeqSpan>& spans) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
  double total = 0;
  int64_t used = 0;
  for (const auto& sp : spans) {
    if (sp.valid == 0) continue;
    ++used;
    std::vector<double> f(E, 0.0), P(E, 0.0);
    for (int64_t t = sp.start; t < sp.start + sp.valid; ++t) {
      const float* s = A.scores.data() + t * E;
      double ssum = 0;
      for (int64_t e = 0; e < E; ++e) ssum += s[e];
      for (int64_t e = 0; e < E; ++e) P[e] += s[e] / ssum;
      for (int64_t k = 0; k < K; ++k) f[A.topk_idx[t * K + k]] += 1;
    }
    double l = 0;
    for (int64_t e = 0; e < E; ++e)
      l += (f[e] * E / (K * double(sp.valid))) * (P[e] / double(sp.valid));
    total += l;
  }
  return used ? static_cast<float>(total / used) : 0.f;
}

void MlpBackward(const Net& net, const Layer& L, LayerActs& A, float* dres, int64_t N,
                 const std::vector<SeqSpan>& spans, float balance_alpha) {
  const ModelConfig& c = *net.cfg;
  ops::Backend* ops = net.ops;
  const int64_t D = c.hidden_size;
  std::vector<float> dln2(N * D, 0.f);
  if (!L.moe) {
    DenseSwiGluBackward(net, A.ln2.data(), L.gate_up, L.down, A.h.data(), A.a.data(), dres, dln2.data(), N, D,
                        c.intermediate_size);
  } else {
    const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok, Im = c.moe_intermediate_size, R = N * K;
    if (c.n_shared_experts > 0)
      DenseSwiGluBackward(net, A.ln2.data(), L.sh_gate_up, L.sh_down, A.sh_h.data(), A.sh_a.data(), dres,
                          dln2.data(), N, D, c.n_shared_experts * Im);
    // Routed experts: dy_row = w * dres[token]; dw[slot] = dres[token] . y_row.
    std::vector<float> dy(R * D), dw(R), dx_rows(R * D, 0.f), dh(R * 2 * Im), da(R * Im, 0.f);
    for (int64_t r = 0; r < R; ++r) {
      const float* g = dres + static_cast<int64_t>(A.row_token[r]) * D;
      const float* y = A.ex_y.data() + r * D;
      const float w = A.topk_w[A.row_slot[r]];
      float* d = dy.data() + r * D;
      float dot = 0.f;
      for (int64_t i = 0; i < D; ++i) {
        d[i] = w * g[i];
        dot += g[i] * y[i];
      }
      dw[A.row_slot[r]] = dot;
    }
    ParallelFor(ops, E, [&](int64_t e) {
      const int64_t r0 = A.ex_off[e], ne = A.ex_off[e + 1] - r0;
      if (ne == 0) return;
      ops->LinearBackward(da.data() + r0 * Im, net.G(L.ex_down[e]), dy.data() + r0 * D, A.ex_a.data() + r0 * Im,
                          L.ex_down[e], ne, Im, D);
      ops->SwiGluBackward(dh.data() + r0 * 2 * Im, da.data() + r0 * Im, A.ex_h.data() + r0 * 2 * Im, ne, Im);
      ops->LinearBackward(dx_rows.data() + r0 * D, net.G(L.ex_gate_up[e]), dh.data() + r0 * 2 * Im,
                          A.ex_x.data() + r0 * D, L.ex_gate_up[e], ne, D, 2 * Im);
    });
    ops->ScatterAddRows(dln2.data(), dx_rows.data(), A.row_token.data(), nullptr, R, D);
    // Combine weights -> scores.
    std::vector<float> ds(N * E, 0.f);
    const bool norm = NormalizesTopk(c);
    const float scale = static_cast<float>(c.routed_scaling_factor);
    for (int64_t n = 0; n < N; ++n) {
      const float* s = A.scores.data() + n * E;
      const int32_t* idx = A.topk_idx.data() + n * K;
      const float* g = dw.data() + n * K;
      float* d = ds.data() + n * E;
      if (norm) {
        float S = 0.f, gs = 0.f;
        for (int64_t k = 0; k < K; ++k) S += s[idx[k]];
        S += 1e-20f;
        for (int64_t k = 0; k < K; ++k) gs += g[k] * s[idx[k]];
        for (int64_t k = 0; k < K; ++k) d[idx[k]] += scale / S * (g[k] - gs / S);
      } else {
        for (int64_t k = 0; k < K; ++k) d[idx[k]] += scale * g[k];
      }
    }
    if (balance_alpha > 0.f) {
      int64_t used = 0;
      for (const auto& sp : spans) used += sp.valid > 0;
      for (const auto& sp : spans) {
        if (sp.valid == 0) continue;
        std::vector<double> f(E, 0.0);
        for (int64_t t = sp.start; t < sp.start + sp.valid; ++t)
          for (int64_t k = 0; k < K; ++k) f[A.topk_idx[t * K + k]] += 1;
        const double Tb = double(sp.valid);
        std::vector<double> gP(E);
        for (int64_t e = 0; e < E; ++e) gP[e] = balance_alpha / used * (f[e] * E / (K * Tb)) / Tb;
        for (int64_t t = sp.start; t < sp.start + sp.valid; ++t) {
          const float* s = A.scores.data() + t * E;
          double ssum = 0, gsum = 0;
          for (int64_t e = 0; e < E; ++e) ssum += s[e];
          for (int64_t e = 0; e < E; ++e) gsum += gP[e] * s[e];
          for (int64_t e = 0; e < E; ++e) ds[t * E + e] += static_cast<float>((gP[e] - gsum / ssum) / ssum);
        }
      }
    }
    // Scores -> router logits.
    std::vector<float> dz(N * E);
    for (int64_t n = 0; n < N; ++n) {
      const float* s = A.scores.data() + n * E;
      const float* d = ds.data() + n * E;
      float* z = dz.data() + n * E;
      if (c.scoring_func == ScoringFunc::kSigmoid) {
        for (int64_t e = 0; e < E; ++e) z[e] = d[e] * s[e] * (1.f - s[e]);
      } else {
        float dot = 0.f;
        for (int64_t e = 0; e < E; ++e) dot += d[e] * s[e];
        for (int64_t e = 0; e < E; ++e) z[e] = s[e] * (d[e] - dot);
      }
    }
    ops->LinearBackward(dln2.data(), net.G(L.router), dz.data(), A.ln2.data(), L.router, N, D, E);
  }
  ops->RmsNormBackward(dres, net.G(L.ln2), dln2.data(), A.x_mid.data(), L.ln2, A.rstd2.data(), N, D, D, D);
}

}  // namespace zerorl::model::internal
