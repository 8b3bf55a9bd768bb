// Model inference: Prefill / DecodeStep over per-sequence KV caches (one
// batched pass over all new tokens of all sequences; attention per sequence
// against its cache), and Generate (shared prefill, forked caches, sampling on
// the backend). Caches and logits stay in backend memory; Generate brings back
// only the drawn tokens and their two logprobs per step.
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/model.h"
#include "model/routing_record.h"
#include "model/transformer.h"

namespace zerorl::model {

absl::Status Model::InferForward(const std::vector<KVCache*>& caches, const std::vector<std::vector<int32_t>>& toks,
                                 ops::Buf<float>* logits, bool all_logits, std::vector<int32_t>* routes) {
  const ModelConfig& c = config_;
  const int64_t S = static_cast<int64_t>(caches.size()), D = c.hidden_size, V = c.vocab_size;
  const int64_t Lyr = c.num_hidden_layers;
  if (static_cast<int64_t>(toks.size()) != S)
    return absl::InvalidArgumentError("InferForward: one token list per cache");
  std::vector<int64_t> start(S + 1, 0);
  for (int64_t i = 0; i < S; ++i) {
    if (!caches[i]) return absl::InvalidArgumentError("null KVCache");
    if (toks[i].empty()) return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " has no new tokens"));
    for (int32_t t : toks[i])
      if (t < 0 || t >= V)
        return absl::InvalidArgumentError(absl::StrCat("token ", t, " is outside the vocabulary of ", V));
    start[i + 1] = start[i] + static_cast<int64_t>(toks[i].size());
  }
  const int64_t N = start[S];
  std::vector<int32_t> ids(N), pos(N);
  for (int64_t i = 0; i < S; ++i)
    for (size_t j = 0; j < toks[i].size(); ++j) {
      ids[start[i] + j] = toks[i][j];
      pos[start[i] + j] = static_cast<int32_t>(caches[i]->len_ + static_cast<int64_t>(j));
    }
  if (!scratch_) {
    scratch_ = std::make_unique<internal::LayerActs>();
    scratch_->Bind(ops_);
  }
  internal::LayerActs& A = *scratch_;
  internal::Net n = net();
  const ops::AttnShape shape = internal::AttnShapeOf(c);
  ops::Buf<int32_t> ids_dev(ops_, "token ids"), pos_dev(ops_, "positions");
  ids_dev.upload(ids.data(), N);
  pos_dev.upload(pos.data(), N);
  ops::Buf<float> x(ops_, "activations");
  x.resize_discard(N * D);
  ops_->EmbeddingForward(x.data(), embed_, ids_dev.data(), N, D);
  std::vector<ops::AttnSeq> seqs(S);
  const std::vector<internal::SeqSpan> no_spans;
  bool fresh = true;  // every sequence starts empty: a prefill
  for (int64_t i = 0; i < S; ++i) {
    ZRL_RETURN_IF_ERROR(PrepareCache(caches[i]));
    fresh = fresh && caches[i]->len_ == 0;
  }
  // Latent MLA: a prefill attends in the expanded form among its own new
  // tokens (fewer MACs per query-key pair: H*(dk+dv) against H*(2*kvr+rd)) and
  // caches the latent rows; anything else attends over the latent cache with
  // the absorbed query.
  const bool latent = latent_cache(), absorbed = latent && !fresh;
  const ops::AttnShape lshape = latent ? internal::LatentAttnShapeOf(c) : ops::AttnShape{};
  const int64_t lrow = latent ? lshape.k_stride : 0;
  // Routing replay recording: each MoE layer's picks [N, K] land in
  // routes [N, moe_layers, K] (one download of N*K ids per MoE layer).
  const int64_t moe_layers = routes ? MoeLayerCount(c) : 0, K = c.num_experts_per_tok;
  if (routes) routes->assign(N * moe_layers * K, 0);
  std::vector<int32_t> picks;
  int64_t moe_index = 0;
  for (int64_t l = 0; l < Lyr; ++l) {
    const internal::Layer& L = *layers_[l];
    internal::AttnQkvForward(n, L, A, x.data(), pos_dev.data(), N, latent, /*expand_kv=*/!absorbed);
    if (absorbed) {
      internal::MlaAbsorbQuery(n, L, A, N);
      A.olat.resize_discard(N * lshape.out_stride);
    } else {
      A.attn.resize_discard(N * shape.out_stride);
    }
    for (int64_t i = 0; i < S; ++i) {
      KVCache& kv = *caches[i];
      const int64_t ni = start[i + 1] - start[i];
      auto& K = kv.k_[l];
      if (latent) {
        K.resize((kv.len_ + ni) * lrow);
        ops_->Copy(K.data() + kv.len_ * lrow, A.lat.data() + start[i] * lrow, ni * lrow * 4);
        if (absorbed) {
          seqs[i] = ops::AttnSeq{A.qlat.data() + start[i] * lshape.q_stride, K.data(), K.data(),
                                 A.olat.data() + start[i] * lshape.out_stride, nullptr, ni, kv.len_ + ni, kv.len_};
        } else {  // fresh: the new tokens' expanded K/V, contiguous in A.k / A.v
          seqs[i] = ops::AttnSeq{A.q.data() + start[i] * shape.q_stride, A.k.data() + start[i] * shape.k_stride,
                                 A.v.data() + start[i] * shape.v_stride, A.attn.data() + start[i] * shape.out_stride,
                                 nullptr, ni, ni, 0};
        }
        continue;
      }
      auto& Vc = kv.v_[l];
      K.resize((kv.len_ + ni) * shape.k_stride);
      Vc.resize((kv.len_ + ni) * shape.v_stride);
      ops_->Copy(K.data() + kv.len_ * shape.k_stride, A.k.data() + start[i] * shape.k_stride,
                 ni * shape.k_stride * 4);
      ops_->Copy(Vc.data() + kv.len_ * shape.v_stride, A.v.data() + start[i] * shape.v_stride,
                 ni * shape.v_stride * 4);
      seqs[i] = ops::AttnSeq{A.q.data() + start[i] * shape.q_stride, K.data(), Vc.data(),
                             A.attn.data() + start[i] * shape.out_stride, nullptr, ni, kv.len_ + ni, kv.len_};
    }
    if (absorbed) {
      ops_->AttentionForward(seqs.data(), S, lshape);
      internal::MlaAbsorbOutput(n, L, A, N);
    } else {
      ops_->AttentionForward(seqs.data(), S, shape);
    }
    A.x_mid.resize_discard(N * D);
    internal::AttnOutForward(n, L, A, x.data(), A.x_mid.data(), N);
    internal::MlpForward(n, L, A, A.x_mid.data(), x.data(), N, no_spans, nullptr);
    if (routes && L.moe) {
      picks.resize(N * K);
      ops_->Download(picks.data(), A.topk_idx.data(), N * K * static_cast<int64_t>(sizeof(int32_t)));
      for (int64_t t = 0; t < N; ++t)
        std::copy_n(picks.data() + t * K, K, routes->data() + (t * moe_layers + moe_index) * K);
      ++moe_index;
    }
  }
  for (int64_t i = 0; i < S; ++i) caches[i]->len_ += start[i + 1] - start[i];
  // Final norm + head on the rows asked for.
  std::vector<int32_t> rows;
  if (all_logits) {
    for (int64_t r = 0; r < N; ++r) rows.push_back(static_cast<int32_t>(r));
  } else {
    for (int64_t i = 0; i < S; ++i) rows.push_back(static_cast<int32_t>(start[i + 1] - 1));
  }
  const int64_t R = static_cast<int64_t>(rows.size());
  ops::Buf<int32_t> rows_dev(ops_, "row ids");
  rows_dev.upload(rows.data(), R);
  ops::Buf<float> h(ops_, "activations"), hn(ops_, "activations");
  h.resize_discard(R * D);
  hn.resize_discard(R * D);
  ops_->GatherRows(h.data(), x.data(), rows_dev.data(), R, D);
  ops_->RmsNormForward(hn.data(), nullptr, h.data(), norm_, R, D, D, D, static_cast<float>(c.rms_norm_eps));
  logits->bind(ops_, "logits");
  logits->resize_discard(R * V);
  ops_->LinearForward(logits->data(), hn.data(), lm_head_, R, D, V);
  return absl::OkStatus();
}

absl::Status Model::PrepareCache(KVCache* cache) {
  const KVCache::Layout want = latent_cache() ? KVCache::Layout::kLatent : KVCache::Layout::kKV;
  if (cache->layout_ != KVCache::Layout::kNone && cache->layout_ != want)
    return absl::FailedPreconditionError(absl::StrCat(
        "KV cache of ", cache->len_, " tokens was filled in the ",
        cache->layout_ == KVCache::Layout::kLatent ? "latent" : "expanded", " MLA layout; this model caches ",
        want == KVCache::Layout::kLatent ? "latent" : "expanded", " rows"));
  cache->layout_ = want;
  const int64_t Lyr = config_.num_hidden_layers;
  cache->k_.resize(Lyr);
  cache->v_.resize(want == KVCache::Layout::kLatent ? 0 : Lyr);
  for (auto& b : cache->k_) b.bind(ops_, "kv cache");
  for (auto& b : cache->v_) b.bind(ops_, "kv cache");
  return absl::OkStatus();
}

absl::Status Model::ReserveCache(KVCache* cache, int64_t tokens) {
  try {
    ZRL_RETURN_IF_ERROR(PrepareCache(cache));
    if (cache->layout_ == KVCache::Layout::kLatent) {
      const int64_t row = config_.kv_lora_rank + config_.qk_rope_head_dim;
      for (auto& b : cache->k_) b.reserve(tokens * row);
    } else {
      const ops::AttnShape s = internal::AttnShapeOf(config_);
      for (auto& b : cache->k_) b.reserve(tokens * s.k_stride);
      for (auto& b : cache->v_) b.reserve(tokens * s.v_stride);
    }
    return absl::OkStatus();
  } catch (const std::bad_alloc& e) {
    return internal::OutOfMemoryError("reserving a KV cache", e);
  }
}

int64_t KVCache::bytes() const {
  int64_t floats = 0;
  for (const auto& b : k_) floats += b.capacity();
  for (const auto& b : v_) floats += b.capacity();
  return floats * static_cast<int64_t>(sizeof(float));
}

KVCache KVCache::Fork() const {
  KVCache f;
  f.len_ = len_;
  f.layout_ = layout_;
  auto copy = [](const std::vector<ops::Buf<float>>& from, std::vector<ops::Buf<float>>* to) {
    to->resize(from.size());
    for (size_t l = 0; l < from.size(); ++l) {
      ops::Buf<float>& b = (*to)[l];
      if (!from[l].backend()) continue;
      b.bind(from[l].backend(), "kv cache");
      b.reserve(from[l].capacity());
      b.resize(from[l].size());
      if (b.size() > 0) b.backend()->Copy(b.data(), from[l].data(), b.size() * static_cast<int64_t>(sizeof(float)));
    }
  };
  copy(k_, &f.k_);
  copy(v_, &f.v_);
  return f;
}

absl::Status Model::InferToHost(const std::vector<KVCache*>& caches, const std::vector<std::vector<int32_t>>& toks,
                                std::vector<float>* logits, bool all_logits, std::vector<int32_t>* routes) {
  try {
    ops::Buf<float> dev(ops_, "logits");
    ZRL_RETURN_IF_ERROR(InferForward(caches, toks, &dev, all_logits, routes));
    logits->resize(dev.size());
    ops_->Download(logits->data(), dev.data(), dev.size() * 4);
    return absl::OkStatus();
  } catch (const std::bad_alloc& e) {
    return internal::OutOfMemoryError("in a forward pass", e);
  }
}

absl::Status Model::Prefill(const std::vector<int32_t>& tokens, KVCache* cache, std::vector<float>* logits,
                            bool all_logits, std::vector<int32_t>* routes) {
  return InferToHost({cache}, {tokens}, logits, all_logits, routes);
}

absl::Status Model::DecodeStep(const std::vector<KVCache*>& caches, const std::vector<int32_t>& tokens,
                               std::vector<float>* logits, std::vector<int32_t>* routes) {
  if (caches.size() != tokens.size())
    return absl::InvalidArgumentError(
        absl::StrCat("DecodeStep: ", caches.size(), " caches but ", tokens.size(), " tokens"));
  std::vector<std::vector<int32_t>> toks(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) toks[i] = {tokens[i]};
  return InferToHost(caches, toks, logits, false, routes);
}

absl::StatusOr<std::vector<GeneratedSample>> Model::Generate(const std::vector<std::vector<int32_t>>& prompts,
                                                             int64_t G, const SamplerParams& params, uint64_t seed,
                                                             const std::vector<int32_t>& stop_ids, int64_t max_new) {
  if (G < 1) return absl::InvalidArgumentError("Generate: G must be >= 1");
  if (max_new < 0) return absl::InvalidArgumentError("Generate: max_new must be >= 0");
  if (!params.greedy && !(params.temperature > 0.f))
    return absl::InvalidArgumentError("Generate: temperature must be > 0 (or use greedy)");
  if (!(params.top_p > 0.f && params.top_p <= 1.f)) return absl::InvalidArgumentError("Generate: top_p must be in (0, 1]");
  if (params.top_k < 0) return absl::InvalidArgumentError("Generate: top_k must be >= 0");
  std::vector<GeneratedSample> out(prompts.size() * G);
  if (prompts.empty() || max_new == 0) return out;
  for (size_t p = 0; p < prompts.size(); ++p) {
    if (prompts[p].empty()) return absl::InvalidArgumentError(absl::StrCat("Generate: prompt ", p, " is empty"));
    if (static_cast<int64_t>(prompts[p].size()) + max_new > config_.max_position_embeddings)
      return absl::InvalidArgumentError(absl::StrCat("Generate: prompt ", p, " (", prompts[p].size(),
                                                     " tokens) + max_new ", max_new, " exceeds the model's ",
                                                     config_.max_position_embeddings, " positions"));
  }
  try {
    ZRL_RETURN_IF_ERROR(GenerateImpl(prompts, G, params, seed, stop_ids, max_new, &out));
  } catch (const std::bad_alloc& e) {
    return internal::OutOfMemoryError("in Generate", e);
  }
  return out;
}

absl::Status Model::GenerateImpl(const std::vector<std::vector<int32_t>>& prompts, int64_t G,
                                 const SamplerParams& params, uint64_t seed, const std::vector<int32_t>& stop_ids,
                                 int64_t max_new, std::vector<GeneratedSample>* out_ptr) {
  std::vector<GeneratedSample>& out = *out_ptr;
  const int64_t P = static_cast<int64_t>(prompts.size()), V = config_.vocab_size;
  std::vector<KVCache> bases(P);
  std::vector<KVCache*> base_ptrs;
  for (auto& b : bases) base_ptrs.push_back(&b);
  ops::Buf<float> logits(ops_, "logits"), first(ops_, "logits");
  ZRL_RETURN_IF_ERROR(InferForward(base_ptrs, prompts, &logits, false));
  std::vector<KVCache> caches;
  std::vector<Sampler> samplers;
  caches.reserve(P * G);
  samplers.reserve(P * G);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t g = 0; g < G; ++g) {
      caches.push_back(g + 1 < G ? bases[p].Fork() : std::move(bases[p]));
      samplers.emplace_back(params, MixSeed(seed, static_cast<uint64_t>(p * G + g)));
    }
  // Sampling on the backend: uniforms from each sample's own stream (so the
  // draws do not depend on batching), tokens and logprobs back to the host.
  const ops::SampleParams sp = ToOpsParams(params);
  ops::Buf<int32_t> tok_dev(ops_, "sampled tokens");
  ops::Buf<float> lp_dev(ops_, "sampled logprobs"), slp_dev(ops_, "sampled logprobs");
  std::vector<double> u;
  std::vector<int32_t> tok;
  std::vector<float> lp, slp;
  auto draw = [&](const float* rows, const std::vector<int64_t>& who) {
    const int64_t n = static_cast<int64_t>(who.size());
    u.assign(n, 0.0);
    if (!params.greedy)
      for (int64_t j = 0; j < n; ++j) u[j] = samplers[who[j]].NextUniform();
    tok_dev.resize_discard(n);
    lp_dev.resize_discard(n);
    slp_dev.resize_discard(n);
    ops_->SampleRows(tok_dev.data(), lp_dev.data(), slp_dev.data(), rows, u.data(), n, V, sp);
    tok.resize(n);
    lp.resize(n);
    slp.resize(n);
    ops_->Download(tok.data(), tok_dev.data(), n * 4);
    ops_->Download(lp.data(), lp_dev.data(), n * 4);
    ops_->Download(slp.data(), slp_dev.data(), n * 4);
  };
  auto is_stop = [&](int32_t t) { return std::find(stop_ids.begin(), stop_ids.end(), t) != stop_ids.end(); };
  std::vector<int64_t> active, all(P * G);  // sample indices still decoding
  for (int64_t i = 0; i < P * G; ++i) all[i] = i;
  {
    // Each prompt's last-token logits, once per sample.
    std::vector<int32_t> rows(P * G);
    for (int64_t i = 0; i < P * G; ++i) rows[i] = static_cast<int32_t>(i / G);
    ops::Buf<int32_t> rows_dev(ops_, "row ids");
    rows_dev.upload(rows.data(), P * G);
    first.resize_discard(P * G * V);
    ops_->GatherRows(first.data(), logits.data(), rows_dev.data(), P * G, V);
    draw(first.data(), all);
  }
  for (int64_t i = 0; i < P * G; ++i) {
    out[i].tokens.push_back(tok[i]);
    out[i].logprobs.push_back(lp[i]);
    out[i].sampling_logprobs.push_back(slp[i]);
    if (is_stop(tok[i])) out[i].finish = FinishReason::kStop;
    else if (max_new > 1) active.push_back(i);
  }
  std::vector<std::vector<int32_t>> next;
  while (!active.empty()) {
    std::vector<KVCache*> cs;
    next.clear();
    for (int64_t i : active) {
      cs.push_back(&caches[i]);
      next.push_back({out[i].tokens.back()});
    }
    ZRL_RETURN_IF_ERROR(InferForward(cs, next, &logits, false));
    draw(logits.data(), active);
    std::vector<int64_t> still;
    for (size_t j = 0; j < active.size(); ++j) {
      const int64_t i = active[j];
      out[i].tokens.push_back(tok[j]);
      out[i].logprobs.push_back(lp[j]);
      out[i].sampling_logprobs.push_back(slp[j]);
      if (is_stop(tok[j])) out[i].finish = FinishReason::kStop;
      else if (static_cast<int64_t>(out[i].tokens.size()) < max_new) still.push_back(i);
    }
    active.swap(still);
  }
  return absl::OkStatus();
}

}  // namespace zerorl::model
