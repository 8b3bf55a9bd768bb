// GrpoTrainer: exact resume (N steps after Restore == N steps uninterrupted,
// bit for bit), malformed groups, dynamic sampling, routing replay records
// (used, counted, refused when malformed). The learning test with a
// real GenerationEngine is tests/integration/grpo_learning_test.cc.
#include "learner/grpo_trainer.h"

#include <cmath>
#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "learner/test_util.h"
#include "model/routing_record.h"
#include "model/test_models.h"
#include "tests/testing/subprocess.h"

namespace zerorl::learner {
namespace {

TrainerOptions ResumeOptions() {
  TrainerOptions o = zerorl::testing::BaseTrainerOptions();
  auto& g = o.grpo;
  g.set_beta(0.05);
  g.set_epochs(2);
  g.set_micro_batch(3);
  g.set_router_bias_gamma(0.01);
  auto& op = o.optimizer;
  op.set_lr(3e-2);
  op.set_weight_decay(0.01);
  op.set_warmup_steps(1);
  op.set_cosine(true);
  op.set_min_lr_ratio(0.1);
  o.max_new_tokens = 10;
  o.total_steps = 10;
  o.seed = 3;
  return o;
}

TEST(GrpoTrainerTest, ResumeIsBitExact) {
  std::vector<std::vector<zerorl::v1::Group>> data;
  for (int s = 0; s < 5; ++s) data.push_back(zerorl::testing::RandomGroups(100 + s, 3, 4));
  auto a = GrpoTrainer::Create(testing::TinyMoe(11), testing::CharTokenizer(), ResumeOptions());
  ASSERT_TRUE(a.ok()) << a.status();
  const std::string dir = zerorl::testing::MakeTempDir("resume");
  std::vector<Metrics> metrics_a;
  for (int s = 0; s < 5; ++s) {
    if (s == 2) {
      ASSERT_TRUE((*a)->Save(dir, "cursor-2").ok());
    }
    auto m = (*a)->Step(data[s]);
    ASSERT_TRUE(m.ok()) << m.status();
    metrics_a.push_back(*m);
  }
  EXPECT_GT(metrics_a[1]["kl"], 0.0);
  EXPECT_GT(metrics_a[1]["clip_frac"], 0.0) << "second epoch should clip some ratios";

  // A trainer built from a different random init, restored from the checkpoint.
  auto b = GrpoTrainer::Create(testing::TinyMoe(99), testing::CharTokenizer(), ResumeOptions());
  ASSERT_TRUE(b.ok());
  auto cursor = (*b)->Restore(dir);
  ASSERT_TRUE(cursor.ok()) << cursor.status();
  EXPECT_EQ(*cursor, "cursor-2");
  EXPECT_EQ((*b)->step(), 2);
  EXPECT_EQ((*b)->version(), 2);
  for (int s = 2; s < 5; ++s) {
    auto m = (*b)->Step(data[s]);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ((*m)["loss"], metrics_a[s]["loss"]) << "step " << s;
    EXPECT_EQ((*m)["grad_norm"], metrics_a[s]["grad_norm"]) << "step " << s;
  }
  model::Model& pa = (*a)->policy();
  model::Model& pb = (*b)->policy();
  ASSERT_EQ(pa.NumParams(), pb.NumParams());
  EXPECT_EQ(std::memcmp(pa.param_data(), pb.param_data(), pa.NumParams() * sizeof(float)), 0)
      << "weights after resume differ from the uninterrupted run";
}

TEST(GrpoTrainerTest, RejectsMalformedGroups) {
  auto t = GrpoTrainer::Create(testing::TinyMoe(1), testing::CharTokenizer(), ResumeOptions());
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE((*t)->Step({}).ok());
  auto groups = zerorl::testing::RandomGroups(1, 2, 2);
  groups[1].mutable_trajectories(0)->mutable_sample()->set_token_ids(0, 5000);
  auto s = (*t)->Step(groups);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("outside the vocabulary"), std::string::npos) << s.status();
  EXPECT_EQ((*t)->version(), 0);
}

TEST(GrpoTrainerTest, DynamicSamplingDropsUniformGroups) {
  TrainerOptions o = ResumeOptions();
  o.grpo.set_dynamic_sampling(true);
  auto t = GrpoTrainer::Create(testing::TinyMoe(1), testing::CharTokenizer(), o);
  ASSERT_TRUE(t.ok());
  auto groups = zerorl::testing::RandomGroups(2, 4, 3);
  for (auto& tr : *groups[0].mutable_trajectories()) tr.mutable_reward()->set_reward(1.0);
  for (auto& tr : *groups[1].mutable_trajectories()) tr.mutable_reward()->set_reward(0.0);
  groups[2].mutable_trajectories(0)->mutable_reward()->set_reward(1.0);
  groups[2].mutable_trajectories(1)->mutable_reward()->set_reward(0.0);
  auto m = (*t)->Step(groups);
  ASSERT_TRUE(m.ok());
  EXPECT_GE((*m)["dynamic_sampling_dropped_frac"], 0.5);
  EXPECT_LT((*m)["dynamic_sampling_dropped_frac"], 1.0);
  EXPECT_EQ((*t)->version(), 1);
}

// Every rollout logprob set to `value`.
std::vector<zerorl::v1::Group> WithRolloutLogprobs(std::vector<zerorl::v1::Group> groups, float value) {
  for (auto& g : groups)
    for (auto& t : *g.mutable_trajectories())
      for (float& lp : *t.mutable_sample()->mutable_logprobs()) lp = value;
  return groups;
}

TrainerOptions CorrectionOptions(zerorl::v1::ImportanceCorrection c) {
  TrainerOptions o = ResumeOptions();
  o.grpo.set_beta(0);
  o.grpo.set_router_bias_gamma(0);
  o.optimizer.set_weight_decay(0);
  o.grpo.set_is_correction(c);
  o.grpo.set_is_level(zerorl::v1::IMPORTANCE_LEVEL_TOKEN);
  o.grpo.set_is_cap(2.0);
  o.grpo.set_is_mask_low(0.5);
  return o;
}

// none: the rollout logprobs feed the mismatch metrics only; the step is
// bit-identical to one on the same groups without them.
TEST(GrpoTrainerTest, OffPolicyCorrectionNoneLeavesTheStepUnchanged) {
  const auto groups = zerorl::testing::RandomGroups(40, 3, 4);
  auto without = groups;
  for (auto& g : without)
    for (auto& t : *g.mutable_trajectories()) t.mutable_sample()->clear_logprobs();
  auto a = GrpoTrainer::Create(testing::TinyMoe(5), testing::CharTokenizer(), ResumeOptions());
  auto b = GrpoTrainer::Create(testing::TinyMoe(5), testing::CharTokenizer(), ResumeOptions());
  ASSERT_TRUE(a.ok() && b.ok());
  auto ma = (*a)->Step(groups);
  auto mb = (*b)->Step(without);
  ASSERT_TRUE(ma.ok() && mb.ok()) << ma.status() << mb.status();
  EXPECT_EQ((*ma)["loss"], (*mb)["loss"]);
  EXPECT_EQ((*ma)["grad_norm"], (*mb)["grad_norm"]);
  EXPECT_EQ(zerorl::testing::Weights((*a)->policy()), zerorl::testing::Weights((*b)->policy()));
  EXPECT_GT((*ma)["rollout_train_kl"], 0.0) << "diagnostics are computed without a correction";
  EXPECT_GT((*ma)["rollout_train_logprob_abs_diff_max"], 0.0);
  EXPECT_EQ((*ma)["rollout_train_logprob_abs_diff_max"], (*ma)["train_rollout_logprob_gap_max"]);
  EXPECT_EQ((*ma)["is_clip_frac"], 0.0);
  EXPECT_EQ((*mb)["rollout_train_kl"], 0.0) << "no rollout logprobs, nothing to compare";
}

// The tiny model's logprobs are about -log(100) = -4.6: against rollout
// logprobs of 0 every ratio π_old / π_rollout is far below 0.5 (mis masks them all:
// no gradient, the policy stays); against -30 every ratio is > e^20 (tis
// truncates all at 2: the policy-gradient loss doubles exactly).
TEST(GrpoTrainerTest, OffPolicyCorrectionTruncatesAndMasksInTheStep) {
  const auto groups = zerorl::testing::RandomGroups(41, 3, 4);
  auto none = GrpoTrainer::Create(testing::TinyMoe(6), testing::CharTokenizer(),
                                  CorrectionOptions(zerorl::v1::IMPORTANCE_CORRECTION_NONE));
  auto tis = GrpoTrainer::Create(testing::TinyMoe(6), testing::CharTokenizer(),
                                 CorrectionOptions(zerorl::v1::IMPORTANCE_CORRECTION_TIS));
  auto mis = GrpoTrainer::Create(testing::TinyMoe(6), testing::CharTokenizer(),
                                 CorrectionOptions(zerorl::v1::IMPORTANCE_CORRECTION_MIS));
  ASSERT_TRUE(none.ok() && tis.ok() && mis.ok());
  const std::vector<float> before = zerorl::testing::Weights((*mis)->policy());

  auto m_mis = (*mis)->Step(WithRolloutLogprobs(groups, 0.f));
  ASSERT_TRUE(m_mis.ok()) << m_mis.status();
  EXPECT_EQ((*m_mis)["is_clip_frac"], 1.0);
  EXPECT_EQ((*m_mis)["pg_loss"], 0.0);
  EXPECT_EQ((*m_mis)["grad_norm"], 0.0);
  EXPECT_EQ(zerorl::testing::Weights((*mis)->policy()), before) << "every token masked, yet the policy moved";
  EXPECT_GT((*m_mis)["rollout_train_kl"], 1.0);
  EXPECT_GT((*m_mis)["rollout_train_logprob_abs_diff_max"], 3.0);

  auto m_none = (*none)->Step(WithRolloutLogprobs(groups, -30.f));
  auto m_tis = (*tis)->Step(WithRolloutLogprobs(groups, -30.f));
  ASSERT_TRUE(m_none.ok() && m_tis.ok()) << m_none.status() << m_tis.status();
  EXPECT_EQ((*m_tis)["is_clip_frac"], 1.0);
  EXPECT_EQ((*m_none)["is_clip_frac"], 0.0);
  EXPECT_NE((*m_none)["pg_loss"], 0.0);
  EXPECT_EQ((*m_tis)["pg_loss"], 2 * (*m_none)["pg_loss"]);
  EXPECT_EQ((*m_tis)["rollout_train_kl"], (*m_none)["rollout_train_kl"]);
}

TEST(GrpoTrainerTest, OffPolicyCorrectionRefusesMissingRolloutLogprobsAndBadBounds) {
  auto t = GrpoTrainer::Create(testing::TinyMoe(7), testing::CharTokenizer(),
                               CorrectionOptions(zerorl::v1::IMPORTANCE_CORRECTION_TIS));
  ASSERT_TRUE(t.ok());
  auto groups = zerorl::testing::RandomGroups(42, 2, 2);
  groups[1].mutable_trajectories(1)->mutable_sample()->clear_logprobs();
  auto s = (*t)->Step(groups);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("group 1 sample 1 has 0 rollout logprobs"), std::string::npos) << s.status();
  groups = zerorl::testing::RandomGroups(42, 2, 2);
  groups[0].mutable_trajectories(0)->mutable_sample()->set_logprobs(0, std::nanf(""));
  s = (*t)->Step(groups);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("group 0 sample 0 token 0 has a non-finite rollout logprob"), std::string::npos)
      << s.status();
  EXPECT_EQ((*t)->version(), 0);

  TrainerOptions o = CorrectionOptions(zerorl::v1::IMPORTANCE_CORRECTION_TIS);
  o.grpo.set_is_cap(0);
  auto bad = GrpoTrainer::Create(testing::TinyMoe(7), testing::CharTokenizer(), o);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("learner.grpo.is_cap"), std::string::npos) << bad.status();
  o = CorrectionOptions(zerorl::v1::IMPORTANCE_CORRECTION_MIS);
  o.grpo.set_is_mask_low(2.0);
  bad = GrpoTrainer::Create(testing::TinyMoe(7), testing::CharTokenizer(), o);
  EXPECT_NE(bad.status().message().find("learner.grpo.is_mask_low"), std::string::npos) << bad.status();
}

// Gives every sample a routing record of random (distinct) experts for its
// prompt + completion - 1 fed tokens.
void AddRandomRoutes(const model::ModelConfig& cfg, uint64_t seed, std::vector<zerorl::v1::Group>* groups) {
  std::mt19937_64 rng(seed);
  const int64_t per_token = model::MoeLayerCount(cfg), K = cfg.num_experts_per_tok;
  for (auto& g : *groups)
    for (auto& tr : *g.mutable_trajectories()) {
      const int64_t fed = g.prompt().token_ids_size() + tr.sample().token_ids_size() - 1;
      std::vector<int32_t> ids;
      std::vector<int32_t> experts(cfg.n_routed_experts);
      for (int64_t i = 0; i < fed * per_token; ++i) {
        std::iota(experts.begin(), experts.end(), 0);
        std::shuffle(experts.begin(), experts.end(), rng);
        ids.insert(ids.end(), experts.begin(), experts.begin() + K);
      }
      *tr.mutable_sample()->mutable_routing() = model::PackRoutingRecord(cfg, ids);
    }
}

TEST(GrpoTrainerTest, RoutingReplayUsesRecordsCountsMissingOnesAndRefusesBadOnes) {
  TrainerOptions o = ResumeOptions();
  o.grpo.set_routing_replay(true);
  auto t = GrpoTrainer::Create(testing::TinyMoe(1), testing::CharTokenizer(), o);
  ASSERT_TRUE(t.ok());
  const model::ModelConfig cfg = (*t)->policy().config();
  auto groups = zerorl::testing::RandomGroups(3, 3, 4);
  AddRandomRoutes(cfg, 9, &groups);
  groups[2].mutable_trajectories(3)->mutable_sample()->clear_routing();  // generated without recording

  auto bad = groups;  // one token short
  auto* rec = bad[1].mutable_trajectories(0)->mutable_sample()->mutable_routing();
  rec->set_tokens(rec->tokens() - 1);
  auto s = (*t)->Step(bad);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("group 1 sample 0"), std::string::npos) << s.status();
  EXPECT_NE(s.status().message().find("prompt + completion - 1"), std::string::npos) << s.status();
  bad = groups;  // an expert id past the model's
  (*bad[0].mutable_trajectories(1)->mutable_sample()->mutable_routing()->mutable_expert_ids())[0] =
      static_cast<char>(cfg.n_routed_experts);
  s = (*t)->Step(bad);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("has expert id"), std::string::npos) << s.status();
  EXPECT_EQ((*t)->version(), 0) << "a refused step must not train";

  auto m = (*t)->Step(groups);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)["routing_replay_missing"], 1);
  EXPECT_GT((*m)["router_mismatch_frac"], 0.2) << "random experts should mostly differ from the router's";
  EXPECT_LE((*m)["router_mismatch_frac"], 1.0);
  EXPECT_GT((*m)["router_replayed_pairs"], 0);
  EXPECT_EQ((*t)->version(), 1);

  // Off: the records are ignored and no replay metric is reported.
  auto plain = GrpoTrainer::Create(testing::TinyMoe(1), testing::CharTokenizer(), ResumeOptions());
  ASSERT_TRUE(plain.ok());
  auto pm = (*plain)->Step(groups);
  ASSERT_TRUE(pm.ok());
  EXPECT_EQ(pm->count("router_mismatch_frac"), 0u);
  EXPECT_NE((*pm)["entropy"], (*m)["entropy"]) << "the replayed routing should change the forward";
}

// The aux-loss-free bias update follows the replayed loads: every token
// replayed to the last K experts makes them the loaded ones, so their bias
// falls by γ and every other expert's rises by γ.
TEST(GrpoTrainerTest, RoutingReplayMovesTheRouterBiasByTheReplayedLoads) {
  TrainerOptions o = ResumeOptions();
  o.grpo.set_routing_replay(true);
  o.grpo.set_epochs(1);
  auto t = GrpoTrainer::Create(testing::TinyMoe(1), testing::CharTokenizer(), o);
  ASSERT_TRUE(t.ok());
  const model::ModelConfig cfg = (*t)->policy().config();
  const int64_t E = cfg.n_routed_experts, K = cfg.num_experts_per_tok, layers = model::MoeLayerCount(cfg);
  auto groups = zerorl::testing::RandomGroups(4, 2, 4);
  for (auto& g : groups)
    for (auto& tr : *g.mutable_trajectories()) {
      const int64_t fed = g.prompt().token_ids_size() + tr.sample().token_ids_size() - 1;
      std::vector<int32_t> ids;
      for (int64_t i = 0; i < fed * layers; ++i)
        for (int64_t k = 0; k < K; ++k) ids.push_back(static_cast<int32_t>(E - 1 - k));
      *tr.mutable_sample()->mutable_routing() = model::PackRoutingRecord(cfg, ids);
    }
  auto bias_of = [&](int64_t layer) {
    for (const model::TensorRef& r : (*t)->policy().Parameters())
      if (r.name == "model.layers." + std::to_string(layer) + ".mlp.gate.e_score_correction_bias")
        return std::vector<float>(r.data, r.data + r.size);
    return std::vector<float>();
  };
  int checked = 0;
  std::vector<std::vector<float>> before;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) before.push_back(bias_of(l));
  ASSERT_TRUE((*t)->Step(groups).ok());
  const float gamma = static_cast<float>(o.grpo.router_bias_gamma());
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const std::vector<float> after = bias_of(l);
    if (after.empty()) continue;
    for (int64_t e = 0; e < E; ++e)
      EXPECT_FLOAT_EQ(after[e] - before[l][e], e >= E - K ? -gamma : gamma) << "layer " << l << " expert " << e;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace zerorl::learner
