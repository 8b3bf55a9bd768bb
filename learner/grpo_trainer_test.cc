// GrpoTrainer: exact resume (N steps after Restore == N steps uninterrupted,
// bit for bit), and a learning test: a tiny MoE policy, sampled by a
// GenerationEngine and trained with GRPO, learns to emit a chosen character.
#include "learner/grpo_trainer.h"

#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "rollout/generation_engine.h"
#include "learner/test_util.h"
#include "rollout/test_models.h"
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

// Reward: the fraction of completion tokens that are the character 'a'.
TEST(GrpoTrainerTest, TinyMoePolicyLearnsToEmitAChosenCharacter) {
  auto tokenizer = testing::CharTokenizer();
  const int32_t target = tokenizer->Encode("a")[0];
  TrainerOptions o = zerorl::testing::BaseTrainerOptions();
  o.grpo.set_epochs(1);
  o.grpo.set_micro_batch(16);
  o.grpo.set_router_bias_gamma(0.001);
  o.optimizer.set_lr(1e-2);
  o.max_new_tokens = 8;
  o.total_steps = 50;
  auto trainer = GrpoTrainer::Create(testing::TinyMoe(5), tokenizer, o);
  ASSERT_TRUE(trainer.ok());
  rollout::GenerationEngine engine(testing::TinyMoe(5), tokenizer, {});
  const std::vector<std::string> texts = {"q:", "x=", "hi", "ok"};
  std::vector<std::vector<int32_t>> prompts;
  for (auto& t : texts) prompts.push_back(rollout::GenerationEngine::PromptIds(*tokenizer, t));
  std::vector<double> rewards;
  for (int step = 0; step < 50; ++step) {
    rollout::GenerationParams p;
    p.max_new_tokens = 8;
    p.seed = 1000 + step;
    auto out = engine.Generate(prompts, 8, p);
    ASSERT_TRUE(out.ok()) << out.status();
    std::vector<zerorl::v1::Group> groups(prompts.size());
    double sum = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      for (int32_t t : prompts[i]) groups[i].mutable_prompt()->add_token_ids(t);
      for (const auto& s : (*out)[i]) {
        auto* tr = groups[i].add_trajectories();
        tr->mutable_sample()->mutable_token_ids()->Add(s.tokens.begin(), s.tokens.end());
        tr->mutable_sample()->mutable_logprobs()->Add(s.logprobs.begin(), s.logprobs.end());
        const double r = static_cast<double>(std::count(s.tokens.begin(), s.tokens.end(), target)) / s.tokens.size();
        tr->mutable_reward()->set_reward(r);
        sum += r;
      }
    }
    rewards.push_back(sum / (prompts.size() * 8));
    auto m = (*trainer)->Step(groups);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_LT((*m)["train_rollout_logprob_gap"], 1e-3) << "rollout and learner disagree on logprobs";
    size_t next = 0;
    std::vector<zerorl::v1::WeightChunk> chunks;
    ChunkOptions co;
    co.version = (*trainer)->version();
    ASSERT_TRUE(ForEachWeightChunk((*trainer)->WeightTensors(), co, [&](const zerorl::v1::WeightChunk& c) {
                  chunks.push_back(c);
                  return true;
                }).ok());
    auto up = engine.ReceiveWeights([&](zerorl::v1::WeightChunk* c) {
      if (next == chunks.size()) return false;
      *c = chunks[next++];
      return true;
    });
    ASSERT_TRUE(up.ok()) << up.status();
  }
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += rewards[i] / 5, last += rewards[45 + i] / 5;
  std::printf("mean reward: first 5 steps %.3f, last 5 steps %.3f\n", first, last);
  EXPECT_GT(last, first + 0.5) << "GRPO did not raise the reward";
}

}  // namespace
}  // namespace zerorl::learner
