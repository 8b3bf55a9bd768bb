// The learner and a rollout engine together: a tiny MoE policy, sampled by a
// GenerationEngine and trained with GRPO by a GrpoTrainer whose weights go back
// to the engine through the weight-transfer protocol after every step, learns to
// emit a chosen character; with TIS it still learns when the engine gets the
// weights only every second step (samples one version stale); and the same with
// routing replay (the engine records every token's experts, the learner replays
// them: no mismatch under the same weights, and it still learns).
#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "learner/grpo_trainer.h"
#include "learner/test_util.h"
#include "model/test_models.h"
#include "rollout/generation_engine.h"
#include "weights/weight_transfer.h"

namespace zerorl::learner {
namespace {

struct LearningRun {
  std::vector<double> rewards;  // [step] mean reward of the step's samples
  std::vector<Metrics> metrics;  // [step] the trainer's
};

// 50 GRPO steps of a tiny MoE policy sampled by a GenerationEngine. Reward:
// the fraction of completion tokens that are the character 'a'. The engine
// gets the trainer's weights (through the weight-transfer protocol) after
// every `publish_every`-th step, so with publish_every > 1 the rollout lags
// the learner by up to publish_every − 1 versions.
void RunLearning(TrainerOptions o, int publish_every, LearningRun* run) {
  auto tokenizer = testing::CharTokenizer();
  const int32_t target = tokenizer->Encode("a")[0];
  o.grpo.set_epochs(1);
  o.grpo.set_micro_batch(16);
  o.grpo.set_router_bias_gamma(0.001);
  o.optimizer.set_lr(1e-2);
  o.max_new_tokens = 8;
  o.total_steps = 50;
  const bool replay = o.grpo.routing_replay();
  auto trainer = GrpoTrainer::Create(testing::TinyMoe(5), tokenizer, o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  rollout::GenerationEngine engine(testing::TinyMoe(5), tokenizer, {});
  const std::vector<std::string> texts = {"q:", "x=", "hi", "ok"};
  std::vector<std::vector<int32_t>> prompts;
  for (auto& t : texts) prompts.push_back(tokenizer->EncodePrompt(t));
  for (int step = 0; step < 50; ++step) {
    rollout::GenerationParams p;
    p.max_new_tokens = 8;
    p.seed = 1000 + step;
    p.record_routing = replay;
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
        *tr->mutable_sample()->mutable_routing() = s.routing;
        const double r = static_cast<double>(std::count(s.tokens.begin(), s.tokens.end(), target)) / s.tokens.size();
        tr->mutable_reward()->set_reward(r);
        sum += r;
      }
    }
    run->rewards.push_back(sum / (prompts.size() * 8));
    auto m = (*trainer)->Step(groups);
    ASSERT_TRUE(m.ok()) << m.status();
    run->metrics.push_back(*m);
    if (replay && publish_every == 1) {
      // The engine serves the weights the learner starts each step with.
      EXPECT_EQ((*m)["router_mismatch_frac"], 0) << "step " << step;
      EXPECT_GT((*m)["router_replayed_pairs"], 0) << "step " << step;
      EXPECT_EQ((*m)["routing_replay_missing"], 0) << "step " << step;
    } else if (!replay) {
      EXPECT_EQ(m->count("router_mismatch_frac"), 0u);
    }
    if ((step + 1) % publish_every != 0) continue;
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
}

// Mean reward of the first and of the last five steps.
std::pair<double, double> FirstAndLast(const LearningRun& run) {
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += run.rewards[i] / 5, last += run.rewards[45 + i] / 5;
  std::printf("mean reward: first 5 steps %.3f, last 5 steps %.3f\n", first, last);
  return {first, last};
}

TEST(GrpoTrainerTest, TinyMoePolicyLearnsToEmitAChosenCharacter) {
  LearningRun run;
  ASSERT_NO_FATAL_FAILURE(RunLearning(zerorl::testing::BaseTrainerOptions(), 1, &run));
  for (const Metrics& m : run.metrics)
    EXPECT_LT(m.at("train_rollout_logprob_gap"), 1e-3) << "rollout and learner disagree on logprobs";
  const auto [first, last] = FirstAndLast(run);
  EXPECT_GT(last, first + 0.5) << "GRPO did not raise the reward";
}

// Off-policy: weights reach the engine every second step, so every other
// step trains on samples of the previous policy version. TIS sees the
// staleness (rollout_train_kl > 0, weights truncated on those steps only) and
// the policy still learns.
TEST(GrpoTrainerTest, TinyMoePolicyLearnsUnderRoutingReplay) {
  TrainerOptions o = zerorl::testing::BaseTrainerOptions();
  o.grpo.set_routing_replay(true);
  LearningRun run;
  ASSERT_NO_FATAL_FAILURE(RunLearning(o, 1, &run));
  for (const Metrics& m : run.metrics)
    EXPECT_LT(m.at("train_rollout_logprob_gap"), 1e-3) << "rollout and learner disagree on logprobs";
  const auto [first, last] = FirstAndLast(run);
  EXPECT_GT(last, first + 0.5) << "GRPO under routing replay did not raise the reward";
}

TEST(GrpoTrainerTest, TinyMoePolicyLearnsWithTisFromAStaleRollout) {
  TrainerOptions o = zerorl::testing::BaseTrainerOptions();
  o.grpo.set_is_correction(zerorl::v1::IMPORTANCE_CORRECTION_TIS);
  o.grpo.set_is_level(zerorl::v1::IMPORTANCE_LEVEL_TOKEN);
  o.grpo.set_is_cap(2.0);
  o.grpo.set_is_mask_low(0.5);
  LearningRun run;
  ASSERT_NO_FATAL_FAILURE(RunLearning(o, 2, &run));
  double stale_kl = 0, clipped = 0;
  for (size_t s = 0; s < run.metrics.size(); ++s) {
    const Metrics& m = run.metrics[s];
    if (s % 2 == 0) {  // the engine has the learner's current weights
      EXPECT_LT(m.at("rollout_train_logprob_abs_diff_max"), 1e-3) << "step " << s;
      EXPECT_EQ(m.at("is_clip_frac"), 0.0) << "step " << s;
    } else {
      stale_kl += m.at("rollout_train_kl");
      clipped += m.at("is_clip_frac");
    }
  }
  EXPECT_GT(stale_kl, 0.0);
  std::printf("stale steps: mean rollout_train_kl %.4f, mean is_clip_frac %.4f\n", stale_kl / 25, clipped / 25);
  const auto [first, last] = FirstAndLast(run);
  EXPECT_GT(last, first + 0.5) << "GRPO with TIS on a stale rollout did not raise the reward";
}

}  // namespace
}  // namespace zerorl::learner
