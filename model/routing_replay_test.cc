// Routing replay (R3) in the model: the routes Prefill records, replayed in
// TrainForward, change nothing and mismatch nowhere under the same weights;
// other routes are followed by the forward (loads), the backward (expert
// gradients) and counted as mismatches; malformed routes and records are
// refused with errors naming what is wrong. (The numerics against PyTorch:
// model_reference_test's ReplayedRoutingMatchesPyTorch.)
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/model.h"
#include "model/routing_record.h"
#include "model/test_util.h"

namespace zerorl::model {
namespace {

using testing::MustParse;
using testing::TinyDeepseekJson;

std::unique_ptr<Model> MakeModel(const std::string& extra = "") {
  auto m = Model::Create(MustParse(TinyDeepseekJson(extra)), 99);
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(*m);
}

TrainBatch RandomBatch(const Model& m, int64_t B, int64_t T, std::vector<int32_t> lengths, uint32_t seed) {
  TrainBatch b;
  b.B = B;
  b.T = T;
  b.lengths = std::move(lengths);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> tok(0, static_cast<int>(m.config().vocab_size) - 1);
  for (int64_t i = 0; i < B * T; ++i) b.tokens.push_back(tok(rng));
  return b;
}

// The routes Prefill records for each sequence's real tokens, laid out as
// TrainBatch::routed_experts (padding rows -1).
std::vector<int32_t> RecordedRoutes(Model& m, const TrainBatch& b) {
  const int64_t per_token = MoeLayerCount(m.config()) * m.config().num_experts_per_tok;
  std::vector<int32_t> all(b.B * b.T * per_token, -1);
  for (int64_t s = 0; s < b.B; ++s) {
    KVCache cache;
    std::vector<float> logits;
    std::vector<int32_t> routes;
    std::vector<int32_t> toks(b.tokens.begin() + s * b.T, b.tokens.begin() + s * b.T + b.lengths[s]);
    EXPECT_TRUE(m.Prefill(toks, &cache, &logits, false, &routes).ok());
    EXPECT_EQ(static_cast<int64_t>(routes.size()), b.lengths[s] * per_token);
    std::copy(routes.begin(), routes.end(), all.begin() + s * b.T * per_token);
  }
  return all;
}

TEST(RoutingReplay, OwnRecordedRoutesReplayWithoutMismatchAndChangeNothing) {
  auto m = MakeModel();
  TrainBatch batch = RandomBatch(*m, 3, 12, {12, 7, 3}, 1);
  TrainOutput plain, replayed;
  ASSERT_TRUE(m->TrainForward(batch, {}, &plain).ok());
  const auto plain_loads = m->ExpertLoads();
  batch.routed_experts = RecordedRoutes(*m, batch);
  ASSERT_TRUE(m->TrainForward(batch, {}, &replayed).ok());
  const int64_t layers = MoeLayerCount(m->config());
  ASSERT_GT(layers, 0);
  EXPECT_EQ(replayed.replayed_routes, (12 + 7 + 3) * layers);
  EXPECT_EQ(replayed.mismatched_routes, 0);
  EXPECT_EQ(plain.replayed_routes, 0);
  ASSERT_EQ(plain.logp.size(), replayed.logp.size());
  for (size_t i = 0; i < plain.logp.size(); ++i) EXPECT_NEAR(plain.logp[i], replayed.logp[i], 1e-6) << i;
  EXPECT_EQ(plain_loads, m->ExpertLoads());
}

TEST(RoutingReplay, ForcedExpertsDriveLoadsAndGradientsAndCountAsMismatch) {
  auto m = MakeModel();
  const ModelConfig& c = m->config();
  const int64_t layers = MoeLayerCount(c), K = c.num_experts_per_tok, E = c.n_routed_experts;
  ASSERT_GE(E, 4);
  TrainBatch batch = RandomBatch(*m, 2, 10, {10, 6}, 2);
  // Every token of every MoE layer to the last K experts.
  for (int64_t i = 0; i < batch.B * batch.T * layers; ++i)
    for (int64_t k = 0; k < K; ++k) batch.routed_experts.push_back(static_cast<int32_t>(E - 1 - k));
  TrainOutput out;
  m->ZeroGrad();
  ASSERT_TRUE(m->TrainForward(batch, {}, &out).ok());
  EXPECT_EQ(out.replayed_routes, 16 * layers);
  EXPECT_GT(out.mismatched_routes, 0);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const auto& loads = m->ExpertLoads()[l];
    if (loads.empty()) continue;
    for (int64_t e = 0; e < E; ++e) EXPECT_EQ(loads[e], e >= E - K ? 16 : 0) << "layer " << l << " expert " << e;
  }
  std::vector<float> dlogp(out.logp.size(), -0.1f);
  ASSERT_TRUE(m->TrainBackward(dlogp.data()).ok());
  auto abs_sum = [](const TensorRef& t) {
    double s = 0;
    for (int64_t i = 0; i < t.size; ++i) s += std::fabs(t.grad[i]);
    return s;
  };
  int routed_checked = 0, router_checked = 0;
  for (const TensorRef& t : m->Parameters()) {
    const auto pos = t.name.find(".mlp.experts.");
    if (pos != std::string::npos) {
      const int e = std::stoi(t.name.substr(pos + 13));
      if (e >= E - K) EXPECT_GT(abs_sum(t), 0) << t.name;
      else EXPECT_EQ(abs_sum(t), 0) << t.name << " was not replayed, yet has a gradient";
      ++routed_checked;
    }
    if (t.name.find(".mlp.gate.weight") != std::string::npos) {
      EXPECT_GT(abs_sum(t), 0) << t.name << ": the router must still learn under replay";
      ++router_checked;
    }
  }
  EXPECT_GT(routed_checked, 0);
  EXPECT_GT(router_checked, 0);
}

TEST(RoutingReplay, MalformedRoutesAreRefusedByName) {
  auto m = MakeModel();
  const ModelConfig& c = m->config();
  const int64_t layers = MoeLayerCount(c), K = c.num_experts_per_tok, E = c.n_routed_experts;
  TrainBatch batch = RandomBatch(*m, 1, 6, {6}, 3);
  batch.routed_experts = RecordedRoutes(*m, batch);
  TrainOutput out;
  auto expect_refused = [&](std::vector<int32_t> routes, const std::string& needle) {
    TrainBatch b = batch;
    b.routed_experts = std::move(routes);
    const absl::Status s = m->TrainForward(b, {}, &out);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(std::string(s.message()).find(needle), std::string::npos) << s;
  };
  std::vector<int32_t> r = batch.routed_experts;
  r.pop_back();
  expect_refused(r, "expected B*T*moe_layers*K");
  r = batch.routed_experts;
  r[K * layers * 2] = static_cast<int32_t>(E);  // token 2, first MoE layer
  expect_refused(r, "token 2 MoE layer 0 has id " + std::to_string(E));
  r = batch.routed_experts;
  r[1] = r[0];
  expect_refused(r, "twice");
  r = batch.routed_experts;
  r[0] = -1;  // half own, half forced
  expect_refused(r, "or K times -1");
  // The model still trains after the refusals.
  EXPECT_TRUE(m->TrainForward(batch, {}, &out).ok());
  EXPECT_EQ(out.mismatched_routes, 0);
}

TEST(RoutingRecord, PacksAndUnpacksBothWidthsAndRefusesBadRecords) {
  for (int64_t E : {8, 300}) {
    const ModelConfig c = MustParse(TinyDeepseekJson("{\"n_routed_experts\":" + std::to_string(E) + "}"));
    const int64_t layers = MoeLayerCount(c), K = c.num_experts_per_tok, tokens = 5;
    std::vector<int32_t> ids;
    for (int64_t i = 0; i < tokens * layers; ++i)
      for (int64_t k = 0; k < K; ++k) ids.push_back(static_cast<int32_t>((i * 7 + k * 131) % E));
    const zerorl::v1::RoutingRecord rec = PackRoutingRecord(c, ids);
    EXPECT_EQ(rec.tokens(), tokens);
    EXPECT_EQ(static_cast<int64_t>(rec.expert_ids().size()), tokens * layers * K * (E <= 256 ? 1 : 2));
    auto back = UnpackRoutingRecord(rec, c, tokens);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, ids);

    auto refused = [&](const zerorl::v1::RoutingRecord& bad, int64_t expect_tokens, const std::string& needle) {
      auto r = UnpackRoutingRecord(bad, c, expect_tokens);
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_NE(std::string(r.status().message()).find(needle), std::string::npos) << r.status();
    };
    refused(rec, tokens + 1, "covers 5 tokens");
    zerorl::v1::RoutingRecord bad = rec;
    bad.mutable_expert_ids()->pop_back();
    refused(bad, tokens, "bytes; expected");
    bad = rec;
    bad.set_top_k(static_cast<int32_t>(K + 1));
    refused(bad, tokens, "the model has");
    bad = rec;
    std::vector<int32_t> high = ids;
    high[3] = static_cast<int32_t>(E <= 256 ? 255 : 65535);  // >= E in either width
    bad.set_expert_ids(PackRoutingRecord(c, high).expert_ids());
    refused(bad, tokens, "experts");
  }
}

}  // namespace
}  // namespace zerorl::model
