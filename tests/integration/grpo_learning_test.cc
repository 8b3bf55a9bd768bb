// The learner and a rollout engine together: a tiny MoE policy, sampled by a
// GenerationEngine and trained with GRPO by a GrpoTrainer whose weights go back
// to the engine through the weight-transfer protocol after every step, learns to
// emit a chosen character; and the same with routing replay (the engine records
// every token's experts, the learner replays them: no mismatch under the same
// weights, and it still learns).
#include <algorithm>
#include <cstdio>

#include <gtest/gtest.h>

#include "learner/grpo_trainer.h"
#include "learner/test_util.h"
#include "model/test_models.h"
#include "rollout/generation_engine.h"
#include "weights/weight_transfer.h"

namespace zerorl::learner {
namespace {

// Reward: the fraction of completion tokens that are the character 'a'.
// Returns the mean reward of each step.
std::vector<double> LearnToEmitA(bool routing_replay) {
  auto tokenizer = testing::CharTokenizer();
  const int32_t target = tokenizer->Encode("a")[0];
  TrainerOptions o = zerorl::testing::BaseTrainerOptions();
  o.grpo.set_epochs(1);
  o.grpo.set_micro_batch(16);
  o.grpo.set_router_bias_gamma(0.001);
  o.optimizer.set_lr(1e-2);
  o.max_new_tokens = 8;
  o.total_steps = 50;
  o.grpo.set_routing_replay(routing_replay);
  auto trainer = GrpoTrainer::Create(testing::TinyMoe(5), tokenizer, o);
  EXPECT_TRUE(trainer.ok());
  if (!trainer.ok()) return {};
  rollout::GenerationEngine engine(testing::TinyMoe(5), tokenizer, {});
  const std::vector<std::string> texts = {"q:", "x=", "hi", "ok"};
  std::vector<std::vector<int32_t>> prompts;
  for (auto& t : texts) prompts.push_back(tokenizer->EncodePrompt(t));
  std::vector<double> rewards;
  for (int step = 0; step < 50; ++step) {
    rollout::GenerationParams p;
    p.max_new_tokens = 8;
    p.seed = 1000 + step;
    p.record_routing = routing_replay;
    auto out = engine.Generate(prompts, 8, p);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return {};
    std::vector<zerorl::v1::Group> groups(prompts.size());
    double sum = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      for (int32_t t : prompts[i]) groups[i].mutable_prompt()->add_token_ids(t);
      for (const auto& s : (*out)[i]) {
        auto* tr = groups[i].add_trajectories();
        tr->mutable_sample()->mutable_token_ids()->Add(s.tokens.begin(), s.tokens.end());
        tr->mutable_sample()->mutable_logprobs()->Add(s.logprobs.begin(), s.logprobs.end());
        *tr->mutable_sample()->mutable_routing() = s.routing;
        const double r = static_cast<double>(std::count(s.tokens.begin(), s.tokens.end(), target)) / s.tokens.size();
        tr->mutable_reward()->set_reward(r);
        sum += r;
      }
    }
    rewards.push_back(sum / (prompts.size() * 8));
    auto m = (*trainer)->Step(groups);
    EXPECT_TRUE(m.ok()) << m.status();
    if (!m.ok()) return {};
    EXPECT_LT((*m)["train_rollout_logprob_gap"], 1e-3) << "rollout and learner disagree on logprobs";
    if (routing_replay) {
      // The engine serves the weights the learner starts each step with.
      EXPECT_EQ((*m)["router_mismatch_frac"], 0) << "step " << step;
      EXPECT_GT((*m)["router_replayed_pairs"], 0) << "step " << step;
      EXPECT_EQ((*m)["routing_replay_missing"], 0) << "step " << step;
    } else {
      EXPECT_EQ(m->count("router_mismatch_frac"), 0u);
    }
    size_t next = 0;
    std::vector<zerorl::v1::WeightChunk> chunks;
    ChunkOptions co;
    co.version = (*trainer)->version();
    EXPECT_TRUE(ForEachWeightChunk((*trainer)->WeightTensors(), co, [&](const zerorl::v1::WeightChunk& c) {
                  chunks.push_back(c);
                  return true;
                }).ok());
    auto up = engine.ReceiveWeights([&](zerorl::v1::WeightChunk* c) {
      if (next == chunks.size()) return false;
      *c = chunks[next++];
      return true;
    });
    EXPECT_TRUE(up.ok()) << up.status();
    if (!up.ok()) return {};
  }
  return rewards;
}

void ExpectRewardRose(const std::vector<double>& rewards, const char* what) {
  ASSERT_EQ(rewards.size(), 50u);
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += rewards[i] / 5, last += rewards[45 + i] / 5;
  std::printf("%s: mean reward first 5 steps %.3f, last 5 steps %.3f\n", what, first, last);
  EXPECT_GT(last, first + 0.5) << "GRPO did not raise the reward";
}

TEST(GrpoTrainerTest, TinyMoePolicyLearnsToEmitAChosenCharacter) {
  ExpectRewardRose(LearnToEmitA(/*routing_replay=*/false), "routing replay off");
}

TEST(GrpoTrainerTest, TinyMoePolicyLearnsUnderRoutingReplay) {
  ExpectRewardRose(LearnToEmitA(/*routing_replay=*/true), "routing replay on");
}

}  // namespace
}  // namespace zerorl::learner
