// GrpoTrainer: exact resume (N steps after Restore == N steps uninterrupted,
// bit for bit), malformed groups, dynamic sampling. The learning test with a
// real GenerationEngine is tests/integration/grpo_learning_test.cc.
#include "learner/grpo_trainer.h"

#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "learner/test_util.h"
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

}  // namespace
}  // namespace zerorl::learner
