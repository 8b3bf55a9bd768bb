// Routing replay records: pack, check + unpack, summary (see routing_record.h).
#include "model/routing_record.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace zerorl::model {

int64_t MoeLayerCount(const ModelConfig& c) {
  int64_t n = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) n += c.IsMoeLayer(l) ? 1 : 0;
  return n;
}

int BytesPerExpertId(int64_t n_experts) { return n_experts <= 256 ? 1 : 2; }

zerorl::v1::RoutingRecord PackRoutingRecord(const ModelConfig& c, const std::vector<int32_t>& ids) {
  zerorl::v1::RoutingRecord rec;
  const int64_t layers = MoeLayerCount(c), K = c.num_experts_per_tok, E = c.n_routed_experts;
  rec.set_moe_layers(static_cast<int32_t>(layers));
  rec.set_top_k(static_cast<int32_t>(K));
  rec.set_n_experts(static_cast<int32_t>(E));
  const int64_t per_token = layers * K;
  rec.set_tokens(per_token > 0 ? static_cast<int32_t>(static_cast<int64_t>(ids.size()) / per_token) : 0);
  const int width = BytesPerExpertId(E);
  std::string* out = rec.mutable_expert_ids();
  out->resize(ids.size() * width);
  for (size_t i = 0; i < ids.size(); ++i) {
    const uint32_t v = static_cast<uint32_t>(ids[i]);
    (*out)[i * width] = static_cast<char>(v & 0xff);
    if (width == 2) (*out)[i * width + 1] = static_cast<char>((v >> 8) & 0xff);
  }
  return rec;
}

absl::StatusOr<std::vector<int32_t>> UnpackRoutingRecord(const zerorl::v1::RoutingRecord& rec, const ModelConfig& c,
                                                         int64_t expected_tokens) {
  const int64_t layers = MoeLayerCount(c), K = c.num_experts_per_tok, E = c.n_routed_experts;
  if (rec.moe_layers() != layers || rec.top_k() != K || rec.n_experts() != E)
    return absl::InvalidArgumentError(absl::StrCat(
        "routing record is for ", rec.moe_layers(), " MoE layers x top-", rec.top_k(), " of ", rec.n_experts(),
        " experts; the model has ", layers, " x top-", K, " of ", E));
  if (rec.tokens() != expected_tokens)
    return absl::InvalidArgumentError(absl::StrCat("routing record covers ", rec.tokens(),
                                                   " tokens; expected prompt + completion - 1 = ", expected_tokens));
  const int width = BytesPerExpertId(E);
  const int64_t n = expected_tokens * layers * K;
  if (static_cast<int64_t>(rec.expert_ids().size()) != n * width)
    return absl::InvalidArgumentError(absl::StrCat("routing record expert_ids has ", rec.expert_ids().size(),
                                                   " bytes; expected ", n * width, " (", expected_tokens, " tokens x ",
                                                   layers, " layers x ", K, " x ", width, " bytes)"));
  const auto* b = reinterpret_cast<const uint8_t*>(rec.expert_ids().data());
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t v = width == 1 ? b[i] : static_cast<int32_t>(b[2 * i] | (b[2 * i + 1] << 8));
    if (v >= E)
      return absl::InvalidArgumentError(absl::StrCat("routing record: token ", i / (layers * K), " MoE layer ",
                                                     (i / K) % layers, " has expert id ", v, ", the model has ", E,
                                                     " experts"));
    ids[i] = v;
  }
  for (int64_t s = 0; s < n; s += K)
    for (int64_t k = 1; k < K; ++k)
      if (std::find(ids.begin() + s, ids.begin() + s + k, ids[s + k]) != ids.begin() + s + k)
        return absl::InvalidArgumentError(absl::StrCat("routing record: token ", s / (layers * K), " MoE layer ",
                                                       (s / K) % layers, " picks expert ", ids[s + k], " twice"));
  return ids;
}

}  // namespace zerorl::model
