// The MLP half of a decoder layer: dense SwiGLU, or DeepSeekMoE / Qwen3-MoE —
// router scores (sigmoid or softmax), selection with the correction bias and
// group limit, top-k combine weights, shared experts — forward and backward,
// plus the sequence-wise balance loss. Experts are batched: the rows routed to
// each expert are gathered and run as one GEMM per expert, experts in parallel.
// Routing runs on the backend (ops::Backend::RouterTopK, MoePermute); only the
// per-expert row counts come back to the host (they size the GEMMs), plus the
// picks when expert loads or the balance loss are asked for. Routing replay
// (RouteReplay) swaps recorded picks in before the experts run; the backward
// then follows them too, since it reads the picks saved in LayerActs.
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

bool NormalizesTopk(const ModelConfig& c) {
  // deepseek_v3 normalises only when K > 1; qwen3_moe whenever norm_topk_prob.
  return c.norm_topk_prob && (!c.is_mla() || c.num_experts_per_tok > 1);
}

ops::RouteShape RouteShapeOf(const ModelConfig& c) {
  ops::RouteShape r;
  r.E = c.n_routed_experts;
  r.K = c.num_experts_per_tok;
  r.n_group = c.n_group;
  r.topk_group = c.topk_group;
  r.normalize = NormalizesTopk(c);
  r.scale = static_cast<float>(c.routed_scaling_factor);
  return r;
}

template <typename T>
void ToHost(ops::Backend* ops, const ops::Buf<T>& b, std::vector<T>* h) {
  h->resize(b.size());
  ops->Download(h->data(), b.data(), b.size() * static_cast<int64_t>(sizeof(T)));
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
  ops::Buf<float> da(net.ops, "mlp gradients"), dh(net.ops, "mlp gradients");
  da.assign(N * I, 0.f);
  dh.resize_discard(N * 2 * I);
  net.ops->LinearBackward(da.data(), net.G(w_d), dout, a, w_d, N, I, D);
  net.ops->SwiGluBackward(dh.data(), da.data(), h, N, I);
  net.ops->LinearBackward(dx, net.G(w_gu), dh.data(), x, w_gu, N, D, 2 * I);
}

// Routing replay: the router's picks (already in A.topk_idx) are compared
// with the forced ones, replaced by them where given, and the combine weights
// recomputed from the current scores for the picks now in place.
void ReplayRoutes(const Net& net, LayerActs& A, int64_t N, const std::vector<SeqSpan>& spans, RouteReplay* replay) {
  const ModelConfig& c = *net.cfg;
  const int64_t K = c.num_experts_per_tok;
  ToHost(net.ops, A.topk_idx, &A.topk_idx_host);
  std::vector<int32_t>& idx = A.topk_idx_host;
  const std::vector<uint8_t> valid = ValidMask(spans, N);
  for (int64_t n = 0; n < N; ++n) {
    const int32_t* f = replay->forced + n * K;
    if (f[0] < 0) continue;
    int32_t* own = idx.data() + n * K;
    if (valid[n]) {
      ++replay->replayed;
      for (int64_t k = 0; k < K; ++k)
        if (std::find(own, own + K, f[k]) == own + K) {
          ++replay->mismatched;
          break;
        }
    }
    std::copy(f, f + K, own);
  }
  A.topk_idx.upload(idx.data(), N * K);
  net.ops->RouterGateWeights(A.topk_w.data(), A.scores.data(), A.topk_idx.data(), N, RouteShapeOf(c));
}

}  // namespace

void MlpForward(const Net& net, const Layer& L, LayerActs& A, const float* x_mid, float* out, int64_t N,
                const std::vector<SeqSpan>& spans, int64_t* loads, RouteReplay* replay) {
  const ModelConfig& c = *net.cfg;
  ops::Backend* ops = net.ops;
  const int64_t D = c.hidden_size;
  A.ln2.resize_discard(N * D);
  A.rstd2.resize_discard(N);
  ops->RmsNormForward(A.ln2.data(), A.rstd2.data(), x_mid, L.ln2, N, D, D, D, static_cast<float>(c.rms_norm_eps));
  if (out != x_mid) ops->Copy(out, x_mid, N * D * 4);
  if (!L.moe) {
    const int64_t I = c.intermediate_size;
    A.h.resize_discard(N * 2 * I);
    A.a.resize_discard(N * I);
    DenseSwiGlu(ops, A.ln2.data(), L.gate_up, L.down, A.h.data(), A.a.data(), out, N, D, I);
    return;
  }
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok, Im = c.moe_intermediate_size, R = N * K;
  A.rlogits.resize_discard(N * E);
  A.scores.resize_discard(N * E);
  ops->LinearForward(A.rlogits.data(), A.ln2.data(), L.router, N, D, E);
  ops->RouterScores(A.scores.data(), A.rlogits.data(), N, E, c.scoring_func == ScoringFunc::kSigmoid);
  A.topk_idx.resize_discard(R);
  A.topk_w.resize_discard(R);
  ops->RouterTopK(A.topk_idx.data(), A.topk_w.data(), A.scores.data(), L.router_bias, N, RouteShapeOf(c));
  if (replay && replay->forced) ReplayRoutes(net, A, N, spans, replay);
  // Group rows by expert (stable in token order); the counts come to the host.
  A.ex_off.assign(E + 1, 0);
  A.row_token.resize_discard(R);
  A.row_slot.resize_discard(R);
  ops->MoePermute(A.ex_off.data(), A.row_token.data(), A.row_slot.data(), A.topk_idx.data(), N, K, E);
  if (loads) {
    ToHost(ops, A.topk_idx, &A.topk_idx_host);
    std::vector<uint8_t> valid = ValidMask(spans, N);
    for (int64_t r = 0; r < R; ++r)
      if (valid[r / K]) ++loads[A.topk_idx_host[r]];
  }
  A.ex_x.resize_discard(R * D);
  A.ex_h.resize_discard(R * 2 * Im);
  A.ex_a.resize_discard(R * Im);
  A.ex_y.resize_discard(R * D);
  ops->GatherRows(A.ex_x.data(), A.ln2.data(), A.row_token.data(), R, D);
  ParallelFor(ops, E, [&](int64_t e) {
    const int64_t r0 = A.ex_off[e], ne = A.ex_off[e + 1] - r0;
    if (ne == 0) return;
    ops->LinearForward(A.ex_h.data() + r0 * 2 * Im, A.ex_x.data() + r0 * D, L.ex_gate_up[e], ne, D, 2 * Im);
    ops->SwiGluForward(A.ex_a.data() + r0 * Im, A.ex_h.data() + r0 * 2 * Im, ne, Im);
    ops->LinearForward(A.ex_y.data() + r0 * D, A.ex_a.data() + r0 * Im, L.ex_down[e], ne, Im, D);
  });
  A.row_w.resize_discard(R);
  ops->GatherRows(A.row_w.data(), A.topk_w.data(), A.row_slot.data(), R, 1);
  ops->ScatterAddRows(out, A.ex_y.data(), A.row_token.data(), A.row_w.data(), R, D);
  if (c.n_shared_experts > 0) {
    const int64_t Is = c.n_shared_experts * Im;
    A.sh_h.resize_discard(N * 2 * Is);
    A.sh_a.resize_discard(N * Is);
    DenseSwiGlu(ops, A.ln2.data(), L.sh_gate_up, L.sh_down, A.sh_h.data(), A.sh_a.data(), out, N, D, Is);
  }
}

float BalanceLoss(const ModelConfig& c, LayerActs& A, const std::vector<SeqSpan>& spans) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
  ToHost(A.scores.backend(), A.scores, &A.scores_host);
  const std::vector<float>& scores = A.scores_host;
  const std::vector<int32_t>& topk_idx = A.topk_idx_host;
  double total = 0;
  int64_t used = 0;
  for (const auto& sp : spans) {
    if (sp.valid == 0) continue;
    ++used;
    std::vector<double> f(E, 0.0), P(E, 0.0);
    for (int64_t t = sp.start; t < sp.start + sp.valid; ++t) {
      const float* s = scores.data() + t * E;
      double ssum = 0;
      for (int64_t e = 0; e < E; ++e) ssum += s[e];
      for (int64_t e = 0; e < E; ++e) P[e] += s[e] / ssum;
      for (int64_t k = 0; k < K; ++k) f[topk_idx[t * K + k]] += 1;
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
  using Buf = ops::Buf<float>;
  Buf dln2(ops, "mlp gradients");
  dln2.assign(N * D, 0.f);
  if (!L.moe) {
    DenseSwiGluBackward(net, A.ln2.data(), L.gate_up, L.down, A.h.data(), A.a.data(), dres, dln2.data(), N, D,
                        c.intermediate_size);
  } else {
    const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok, Im = c.moe_intermediate_size, R = N * K;
    if (c.n_shared_experts > 0)
      DenseSwiGluBackward(net, A.ln2.data(), L.sh_gate_up, L.sh_down, A.sh_h.data(), A.sh_a.data(), dres,
                          dln2.data(), N, D, c.n_shared_experts * Im);
    // Routed experts: dy_row = w * dres[token]; dw[slot] = dres[token] . y_row.
    Buf dy(ops, "moe gradients"), dw(ops, "moe gradients"), dx_rows(ops, "moe gradients"),
        dh(ops, "moe gradients"), da(ops, "moe gradients");
    dy.resize_discard(R * D);
    dw.resize_discard(R);
    dx_rows.assign(R * D, 0.f);
    dh.resize_discard(R * 2 * Im);
    da.assign(R * Im, 0.f);
    ops->MoeCombineBackward(dy.data(), dw.data(), dres, A.ex_y.data(), A.row_w.data(), A.row_token.data(),
                            A.row_slot.data(), R, D);
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
    Buf ds(ops, "router gradients");
    ds.assign(N * E, 0.f);
    ops->RouterTopKBackward(ds.data(), dw.data(), A.scores.data(), A.topk_idx.data(), N, RouteShapeOf(c));
    if (balance_alpha > 0.f) {
      // The balance loss gradient, on the host (training only; N*E values),
      // from the scores and picks the forward read back.
      const std::vector<float>& scores = A.scores_host;
      const std::vector<int32_t>& topk_idx = A.topk_idx_host;
      std::vector<float> dsb(N * E, 0.f);
      int64_t used = 0;
      for (const auto& sp : spans) used += sp.valid > 0;
      for (const auto& sp : spans) {
        if (sp.valid == 0) continue;
        std::vector<double> f(E, 0.0);
        for (int64_t t = sp.start; t < sp.start + sp.valid; ++t)
          for (int64_t k = 0; k < K; ++k) f[topk_idx[t * K + k]] += 1;
        const double Tb = double(sp.valid);
        std::vector<double> gP(E);
        for (int64_t e = 0; e < E; ++e) gP[e] = balance_alpha / used * (f[e] * E / (K * Tb)) / Tb;
        for (int64_t t = sp.start; t < sp.start + sp.valid; ++t) {
          const float* s = scores.data() + t * E;
          double ssum = 0, gsum = 0;
          for (int64_t e = 0; e < E; ++e) ssum += s[e];
          for (int64_t e = 0; e < E; ++e) gsum += gP[e] * s[e];
          for (int64_t e = 0; e < E; ++e) dsb[t * E + e] += static_cast<float>((gP[e] - gsum / ssum) / ssum);
        }
      }
      Buf dsb_dev(ops, "router gradients");
      dsb_dev.upload(dsb.data(), N * E);
      ops->Axpy(ds.data(), dsb_dev.data(), 1.f, N * E);
    }
    // Scores -> router logits.
    Buf dz(ops, "router gradients");
    dz.resize_discard(N * E);
    ops->RouterScoresBackward(dz.data(), ds.data(), A.scores.data(), N, E, c.scoring_func == ScoringFunc::kSigmoid);
    ops->LinearBackward(dln2.data(), net.G(L.router), dz.data(), A.ln2.data(), L.router, N, D, E);
  }
  ops->RmsNormBackward(dres, net.G(L.ln2), dln2.data(), A.x_mid.data(), L.ln2, A.rstd2.data(), N, D, D, D);
}

}  // namespace zerorl::model::internal
