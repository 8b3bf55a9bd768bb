// Model::TrainForward / TrainBackward: the whole network over a padded batch,
// saving activations, then the hand-written backward in reverse layer order.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "model/model.h"
#include "model/routing_record.h"
#include "model/transformer.h"

namespace zerorl::model {

using internal::LayerActs;
using internal::SeqSpan;

namespace {

absl::Status CheckBatch(const ModelConfig& c, const TrainBatch& b) {
  if (b.B <= 0 || b.T <= 1) return absl::InvalidArgumentError(absl::StrCat("TrainBatch: need B >= 1 and T >= 2, got B=", b.B, " T=", b.T));
  if (static_cast<int64_t>(b.tokens.size()) != b.B * b.T)
    return absl::InvalidArgumentError(absl::StrCat("TrainBatch: tokens has ", b.tokens.size(), " ids, expected B*T=", b.B * b.T));
  if (static_cast<int64_t>(b.lengths.size()) != b.B)
    return absl::InvalidArgumentError(absl::StrCat("TrainBatch: lengths has ", b.lengths.size(), " entries, expected B=", b.B));
  for (int64_t i = 0; i < b.B; ++i)
    if (b.lengths[i] < 1 || b.lengths[i] > b.T)
      return absl::InvalidArgumentError(absl::StrCat("TrainBatch: lengths[", i, "]=", b.lengths[i], " is outside [1, T]"));
  for (size_t i = 0; i < b.tokens.size(); ++i)
    if (b.tokens[i] < 0 || b.tokens[i] >= c.vocab_size)
      return absl::InvalidArgumentError(absl::StrCat("TrainBatch: token ", b.tokens[i], " at ", i, " is outside the vocabulary of ", c.vocab_size));
  if (b.routed_experts.empty()) return absl::OkStatus();
  const int64_t layers = MoeLayerCount(c), K = c.num_experts_per_tok, E = c.n_routed_experts;
  if (static_cast<int64_t>(b.routed_experts.size()) != b.B * b.T * layers * K)
    return absl::InvalidArgumentError(absl::StrCat("TrainBatch: routed_experts has ", b.routed_experts.size(),
                                                   " ids, expected B*T*moe_layers*K=", b.B * b.T * layers * K));
  for (size_t s = 0; s < b.routed_experts.size(); s += K) {
    const int32_t* f = b.routed_experts.data() + s;
    const int64_t token = static_cast<int64_t>(s) / (layers * K), layer = (static_cast<int64_t>(s) / K) % layers;
    const bool own = f[0] < 0;
    for (int64_t k = 0; k < K; ++k) {
      if (own ? f[k] != -1 : (f[k] < 0 || f[k] >= E))
        return absl::InvalidArgumentError(absl::StrCat("TrainBatch: routed_experts of token ", token, " MoE layer ",
                                                       layer, " has id ", f[k], "; need K ids in [0, ", E,
                                                       ") or K times -1"));
      if (!own && std::find(f, f + k, f[k]) != f + k)
        return absl::InvalidArgumentError(absl::StrCat("TrainBatch: routed_experts of token ", token, " MoE layer ",
                                                       layer, " picks expert ", f[k], " twice"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Model::TrainForward(const TrainBatch& batch, const TrainOptions& options, TrainOutput* out) {
  const ModelConfig& c = config_;
  if (auto s = CheckBatch(c, batch); !s.ok()) return s;
  if (!train_) {
    train_ = std::make_unique<internal::TrainState>();
    for (auto* b : {&train_->tokens, &train_->pos, &train_->targets}) b->bind(ops_, "training batch");
    for (auto* b : {&train_->x_final, &train_->lnf, &train_->rstdf, &train_->logits}) b->bind(ops_, "activations");
  }
  try {
    return TrainForwardImpl(batch, options, out);
  } catch (const std::bad_alloc& e) {
    train_->ready = false;
    return internal::OutOfMemoryError("in TrainForward", e);
  }
}

absl::Status Model::TrainForwardImpl(const TrainBatch& batch, const TrainOptions& options, TrainOutput* out) {
  const ModelConfig& c = config_;
  internal::TrainState& S = *train_;
  const int64_t B = batch.B, T = batch.T, N = B * T, D = c.hidden_size, V = c.vocab_size;
  const int64_t H = c.num_attention_heads;
  S.B = B;
  S.T = T;
  S.N = N;
  S.balance_alpha = options.balance_alpha;
  std::vector<int32_t> pos(N), targets(N);
  S.spans.resize(B);
  for (int64_t b = 0; b < B; ++b) {
    S.spans[b] = SeqSpan{b * T, T, batch.lengths[b]};
    for (int64_t t = 0; t < T; ++t) {
      pos[b * T + t] = static_cast<int32_t>(t);
      targets[b * T + t] = t + 1 < batch.lengths[b] ? batch.tokens[b * T + t + 1] : -1;
    }
  }
  S.tokens.upload(batch.tokens.data(), N);
  S.pos.upload(pos.data(), N);
  S.targets.upload(targets.data(), N);
  if (static_cast<int64_t>(S.layers.size()) != c.num_hidden_layers) {
    S.layers.resize(c.num_hidden_layers);
    for (auto& A : S.layers) A.Bind(ops_);
  }
  internal::Net n = net();
  const ops::AttnShape shape = internal::AttnShapeOf(c);
  expert_loads_.assign(c.num_hidden_layers, {});
  // Routing replay: each MoE layer's forced picks [N, K], from the batch's
  // token-major [N, moe_layers, K].
  const bool replay = !batch.routed_experts.empty();
  const int64_t moe_layers = replay ? MoeLayerCount(c) : 0, K = c.num_experts_per_tok;
  std::vector<int32_t> forced;
  out->replayed_routes = out->mismatched_routes = 0;
  int64_t moe_index = 0;

  S.layers[0].x_in.resize_discard(N * D);
  ops_->EmbeddingForward(S.layers[0].x_in.data(), embed_, S.tokens.data(), N, D);
  std::vector<ops::AttnSeq> seqs(B);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LayerActs& A = S.layers[l];
    const internal::Layer& L = *layers_[l];
    internal::AttnQkvForward(n, L, A, A.x_in.data(), S.pos.data(), N);
    A.probs.resize_discard(B * H * T * T);
    A.attn.resize_discard(N * H * shape.dv);
    for (int64_t b = 0; b < B; ++b) {
      seqs[b].q = A.q.data() + b * T * shape.q_stride;
      seqs[b].k = A.k.data() + b * T * shape.k_stride;
      seqs[b].v = A.v.data() + b * T * shape.v_stride;
      seqs[b].out = A.attn.data() + b * T * shape.out_stride;
      seqs[b].probs = A.probs.data() + b * H * T * T;
      seqs[b].n_q = T;
      seqs[b].n_kv = T;
      seqs[b].q_pos0 = 0;
    }
    ops_->AttentionForward(seqs.data(), B, shape);
    A.x_mid.resize_discard(N * D);
    internal::AttnOutForward(n, L, A, A.x_in.data(), A.x_mid.data(), N);
    ops::Buf<float>& next = l + 1 < c.num_hidden_layers ? S.layers[l + 1].x_in : S.x_final;
    next.resize_discard(N * D);
    if (L.moe) expert_loads_[l].assign(c.n_routed_experts, 0);
    internal::RouteReplay rr;
    if (replay && L.moe) {
      forced.resize(N * K);
      for (int64_t t = 0; t < N; ++t)
        std::copy_n(batch.routed_experts.data() + (t * moe_layers + moe_index) * K, K, forced.data() + t * K);
      rr.forced = forced.data();
    }
    if (L.moe) ++moe_index;
    internal::MlpForward(n, L, A, A.x_mid.data(), next.data(), N, S.spans,
                         L.moe ? expert_loads_[l].data() : nullptr, rr.forced ? &rr : nullptr);
    out->replayed_routes += rr.replayed;
    out->mismatched_routes += rr.mismatched;
  }
  S.lnf.resize_discard(N * D);
  S.rstdf.resize_discard(N);
  S.logits.resize_discard(N * V);
  ops_->RmsNormForward(S.lnf.data(), S.rstdf.data(), S.x_final.data(), norm_, N, D, D, D,
                       static_cast<float>(c.rms_norm_eps));
  ops_->LinearForward(S.logits.data(), S.lnf.data(), lm_head_, N, D, V);
  ops::Buf<float> logp_dev(ops_, "logprobs"), ent_dev(ops_, "logprobs");
  logp_dev.resize_discard(N);
  ent_dev.resize_discard(options.entropy ? N : 0);
  ops_->LogProbForward(logp_dev.data(), options.entropy ? ent_dev.data() : nullptr, S.logits.data(),
                       S.targets.data(), N, V);
  std::vector<float> logp(N), ent(options.entropy ? N : 0);
  ops_->Download(logp.data(), logp_dev.data(), N * 4);
  if (options.entropy) ops_->Download(ent.data(), ent_dev.data(), N * 4);
  out->logp.resize(B * (T - 1));
  out->entropy.resize(options.entropy ? B * (T - 1) : 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < T; ++t) {
      out->logp[b * (T - 1) + t] = logp[b * T + t];
      if (options.entropy) out->entropy[b * (T - 1) + t] = ent[b * T + t];
    }
  if (options.keep_logits) {
    out->logits.resize(N * V);
    ops_->Download(out->logits.data(), S.logits.data(), N * V * 4);
  } else {
    out->logits.clear();
  }
  out->balance_loss = 0.f;
  if (options.balance_alpha > 0.f)
    for (int64_t l = 0; l < c.num_hidden_layers; ++l)
      if (layers_[l]->moe) out->balance_loss += options.balance_alpha * internal::BalanceLoss(c, S.layers[l], S.spans);
  S.ready = true;
  return absl::OkStatus();
}

absl::Status Model::TrainBackward(const float* dlogp, const float* dentropy) {
  if (!train_ || !train_->ready) return absl::FailedPreconditionError("TrainBackward needs a TrainForward first");
  train_->ready = false;
  try {
    return TrainBackwardImpl(dlogp, dentropy);
  } catch (const std::bad_alloc& e) {
    return internal::OutOfMemoryError("in TrainBackward", e);
  }
}

absl::Status Model::TrainBackwardImpl(const float* dlogp, const float* dentropy) {
  internal::TrainState& S = *train_;
  const ModelConfig& c = config_;
  const int64_t B = S.B, T = S.T, N = S.N, D = c.hidden_size, V = c.vocab_size, H = c.num_attention_heads;
  internal::Net n = net();
  const ops::AttnShape shape = internal::AttnShapeOf(c);
  std::vector<float> gl(N, 0.f), ge(dentropy ? N : 0, 0.f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < T; ++t) {
      gl[b * T + t] = dlogp[b * (T - 1) + t];
      if (dentropy) ge[b * T + t] = dentropy[b * (T - 1) + t];
    }
  using Buf = ops::Buf<float>;
  Buf gl_dev(ops_, "gradients"), ge_dev(ops_, "gradients");
  gl_dev.upload(gl.data(), N);
  if (dentropy) ge_dev.upload(ge.data(), N);
  Buf dlogits(ops_, "logit gradients"), dlnf(ops_, "gradients"), dres(ops_, "gradients");
  dlogits.resize_discard(N * V);
  dlnf.assign(N * D, 0.f);
  dres.assign(N * D, 0.f);
  ops_->LogProbBackward(dlogits.data(), gl_dev.data(), dentropy ? ge_dev.data() : nullptr, S.logits.data(),
                        S.targets.data(), N, V);
  ops_->LinearBackward(dlnf.data(), n.G(lm_head_), dlogits.data(), S.lnf.data(), lm_head_, N, D, V);
  ops_->RmsNormBackward(dres.data(), n.G(norm_), dlnf.data(), S.x_final.data(), norm_, S.rstdf.data(), N, D, D, D);
  Buf dattn(ops_, "gradients"), dq(ops_, "gradients"), dk(ops_, "gradients"), dv(ops_, "gradients");
  dattn.resize_discard(N * H * shape.dv);
  dq.resize_discard(N * shape.q_stride);
  std::vector<ops::AttnSeq> seqs(B);
  std::vector<ops::AttnSeqGrad> grads(B);
  for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) {
    LayerActs& A = S.layers[l];
    const internal::Layer& L = *layers_[l];
    internal::MlpBackward(n, L, A, dres.data(), N, S.spans, S.balance_alpha);
    internal::AttnOutBackward(n, L, A, dres.data(), dattn.data(), N);
    dk.assign(N * shape.k_stride, 0.f);  // AttentionBackward accumulates dk, dv
    dv.assign(N * shape.v_stride, 0.f);
    for (int64_t b = 0; b < B; ++b) {
      seqs[b] = ops::AttnSeq{A.q.data() + b * T * shape.q_stride, A.k.data() + b * T * shape.k_stride,
                             A.v.data() + b * T * shape.v_stride, A.attn.data() + b * T * shape.out_stride,
                             A.probs.data() + b * H * T * T, T, T, 0};
      grads[b] = ops::AttnSeqGrad{dattn.data() + b * T * shape.out_stride, dq.data() + b * T * shape.q_stride,
                                  dk.data() + b * T * shape.k_stride, dv.data() + b * T * shape.v_stride};
    }
    ops_->AttentionBackward(seqs.data(), grads.data(), B, shape);
    internal::AttnQkvBackward(n, L, A, dq.data(), dk.data(), dv.data(), S.pos.data(), dres.data(), N);
  }
  ops_->EmbeddingBackward(n.G(embed_), dres.data(), S.tokens.data(), N, D);
  return absl::OkStatus();
}

}  // namespace zerorl::model
