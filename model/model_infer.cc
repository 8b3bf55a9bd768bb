// Model inference: Prefill / DecodeStep over per-sequence KV caches (one
// batched pass over all new tokens of all sequences; attention per sequence
// against its cache), and Generate (shared prefill, forked caches, sampling).
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "model/model.h"
#include "model/transformer.h"

namespace zerorl::model {

absl::Status Model::InferForward(const std::vector<KVCache*>& caches, const std::vector<std::vector<int32_t>>& toks,
                                 std::vector<float>* logits, bool all_logits) {
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
  if (!scratch_) scratch_ = std::make_unique<internal::LayerActs>();
  internal::LayerActs& A = *scratch_;
  internal::Net n = net();
  const ops::AttnShape shape = internal::AttnShapeOf(c);
  std::vector<float> x(N * D);
  ops_->EmbeddingForward(x.data(), embed_, ids.data(), N, D);
  std::vector<ops::AttnSeq> seqs(S);
  const std::vector<internal::SeqSpan> no_spans;
  for (int64_t i = 0; i < S; ++i) {
    caches[i]->k_.resize(Lyr);
    caches[i]->v_.resize(Lyr);
  }
  for (int64_t l = 0; l < Lyr; ++l) {
    const internal::Layer& L = *layers_[l];
    internal::AttnQkvForward(n, L, A, x.data(), pos.data(), N);
    A.attn.resize(N * shape.out_stride);
    for (int64_t i = 0; i < S; ++i) {
      KVCache& kv = *caches[i];
      const int64_t ni = start[i + 1] - start[i];
      auto& K = kv.k_[l];
      auto& Vc = kv.v_[l];
      K.resize((kv.len_ + ni) * shape.k_stride);
      Vc.resize((kv.len_ + ni) * shape.v_stride);
      std::memcpy(K.data() + kv.len_ * shape.k_stride, A.k.data() + start[i] * shape.k_stride,
                  ni * shape.k_stride * 4);
      std::memcpy(Vc.data() + kv.len_ * shape.v_stride, A.v.data() + start[i] * shape.v_stride,
                  ni * shape.v_stride * 4);
      seqs[i] = ops::AttnSeq{A.q.data() + start[i] * shape.q_stride, K.data(), Vc.data(),
                             A.attn.data() + start[i] * shape.out_stride, nullptr, ni, kv.len_ + ni, kv.len_};
    }
    ops_->AttentionForward(seqs.data(), S, shape);
    A.x_mid.resize(N * D);
    internal::AttnOutForward(n, L, A, x.data(), A.x_mid.data(), N);
    internal::MlpForward(n, L, A, A.x_mid.data(), x.data(), N, no_spans, nullptr);
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
  std::vector<float> h(R * D), hn(R * D);
  ops_->GatherRows(h.data(), x.data(), rows.data(), R, D);
  ops_->RmsNormForward(hn.data(), nullptr, h.data(), norm_, R, D, D, D, static_cast<float>(c.rms_norm_eps));
  logits->resize(R * V);
  ops_->LinearForward(logits->data(), hn.data(), lm_head_, R, D, V);
  return absl::OkStatus();
}

absl::Status Model::Prefill(const std::vector<int32_t>& tokens, KVCache* cache, std::vector<float>* logits,
                            bool all_logits) {
  return InferForward({cache}, {tokens}, logits, all_logits);
}

absl::Status Model::DecodeStep(const std::vector<KVCache*>& caches, const std::vector<int32_t>& tokens,
                               std::vector<float>* logits) {
  if (caches.size() != tokens.size())
    return absl::InvalidArgumentError(
        absl::StrCat("DecodeStep: ", caches.size(), " caches but ", tokens.size(), " tokens"));
  std::vector<std::vector<int32_t>> toks(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) toks[i] = {tokens[i]};
  return InferForward(caches, toks, logits, false);
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
  const int64_t P = static_cast<int64_t>(prompts.size()), V = config_.vocab_size;
  std::vector<GeneratedSample> out(P * G);
  if (P == 0 || max_new == 0) return out;
  for (int64_t p = 0; p < P; ++p)
    if (prompts[p].empty()) return absl::InvalidArgumentError(absl::StrCat("Generate: prompt ", p, " is empty"));
  std::vector<KVCache> bases(P);
  std::vector<KVCache*> base_ptrs;
  for (auto& b : bases) base_ptrs.push_back(&b);
  std::vector<float> logits;
  if (auto s = InferForward(base_ptrs, prompts, &logits, false); !s.ok()) return s;
  std::vector<KVCache> caches;
  std::vector<Sampler> samplers;
  caches.reserve(P * G);
  samplers.reserve(P * G);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t g = 0; g < G; ++g) {
      caches.push_back(g + 1 < G ? bases[p].Fork() : std::move(bases[p]));
      samplers.emplace_back(params, MixSeed(seed, static_cast<uint64_t>(p * G + g)));
    }
  auto is_stop = [&](int32_t t) { return std::find(stop_ids.begin(), stop_ids.end(), t) != stop_ids.end(); };
  std::vector<int64_t> active;  // sample indices still decoding
  std::vector<int32_t> next;
  for (int64_t i = 0; i < P * G; ++i) {
    TokenDraw d = samplers[i].Draw(logits.data() + (i / G) * V, V);
    out[i].tokens.push_back(d.token);
    out[i].logprobs.push_back(d.logprob);
    out[i].sampling_logprobs.push_back(d.sampling_logprob);
    if (is_stop(d.token)) out[i].finish = FinishReason::kStop;
    else if (max_new > 1) active.push_back(i);
  }
  while (!active.empty()) {
    std::vector<KVCache*> cs;
    next.clear();
    for (int64_t i : active) {
      cs.push_back(&caches[i]);
      next.push_back(out[i].tokens.back());
    }
    if (auto s = DecodeStep(cs, next, &logits); !s.ok()) return s;
    std::vector<int64_t> still;
    for (size_t j = 0; j < active.size(); ++j) {
      const int64_t i = active[j];
      TokenDraw d = samplers[i].Draw(logits.data() + j * V, V);
      out[i].tokens.push_back(d.token);
      out[i].logprobs.push_back(d.logprob);
      out[i].sampling_logprobs.push_back(d.sampling_logprob);
      if (is_stop(d.token)) out[i].finish = FinishReason::kStop;
      else if (static_cast<int64_t>(out[i].tokens.size()) < max_new) still.push_back(i);
    }
    active.swap(still);
  }
  return out;
}

}  // namespace zerorl::model
