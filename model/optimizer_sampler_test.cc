// AdamW (against a hand-computed step, bit-exact save/restore), clipping, the
// LR schedule, and the sampler (determinism, greedy, top-k/top-p supports,
// logprob bookkeeping).
#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "model/optimizer.h"
#include "model/sampler.h"
#include "model/test_util.h"

namespace zerorl::model {
namespace {

TEST(AdamWTest, StepMatchesFormulaAndResumesBitExactly) {
  std::vector<float> w = {1.f, -2.f, 0.5f, 3.f}, g = {0.1f, -0.2f, 0.3f, 0.f};
  std::vector<TensorRef> p = {{"m", {2, 2}, w.data(), g.data(), 4, true}};
  AdamW opt({0.9f, 0.95f, 1e-8f, 0.1f});
  ASSERT_TRUE(opt.Step(p, 0.01f).ok());
  // Step 1: m_hat = g, v_hat = g^2 -> update = sign(g) (for g != 0), plus decay.
  EXPECT_NEAR(w[0], 1.f - 0.01f * (1.f + 0.1f * 1.f), 1e-6);
  EXPECT_NEAR(w[3], 3.f - 0.01f * (0.f + 0.1f * 3.f), 1e-6);
  const std::string state = opt.SerializeState();
  std::vector<float> w2 = w;
  std::vector<TensorRef> p2 = {{"m", {2, 2}, w2.data(), g.data(), 4, true}};
  AdamW resumed({0.9f, 0.95f, 1e-8f, 0.1f});
  ASSERT_TRUE(resumed.RestoreState(state).ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(opt.Step(p, 0.01f).ok());
    ASSERT_TRUE(resumed.Step(p2, 0.01f).ok());
  }
  EXPECT_EQ(0, std::memcmp(w.data(), w2.data(), 16));
  EXPECT_EQ(resumed.step(), 4);
  EXPECT_FALSE(resumed.RestoreState("garbage").ok());
  std::vector<float> w3(3), g3(3);
  EXPECT_EQ(opt.Step({{"x", {3}, w3.data(), g3.data(), 3, true}}, 0.1f).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(AdamWTest, ClipAndSchedule) {
  std::vector<float> w(2), g = {3.f, 4.f};
  std::vector<TensorRef> p = {{"v", {2}, w.data(), g.data(), 2, true}};
  EXPECT_FLOAT_EQ(ClipGradNorm(p, 1.f), 5.f);
  EXPECT_NEAR(std::hypot(g[0], g[1]), 1.f, 1e-5);
  LrSchedule s{1e-3f, 10, 110, 0.1f};
  EXPECT_NEAR(s.LrAt(0), 1e-4f, 1e-9);
  EXPECT_NEAR(s.LrAt(9), 1e-3f, 1e-9);
  EXPECT_NEAR(s.LrAt(60), 0.55e-3f, 1e-7);
  EXPECT_NEAR(s.LrAt(110), 1e-4f, 1e-9);
  EXPECT_NEAR(s.LrAt(500), 1e-4f, 1e-9);
}

TEST(SamplerTest, DeterministicGreedyAndTruncation) {
  const std::vector<float> logits = {2.f, 1.f, 0.5f, -1.f, 3.f};
  SamplerParams sp;
  Sampler a(sp, 9), b(sp, 9);
  std::map<int, int> counts;
  for (int i = 0; i < 2000; ++i) {
    TokenDraw x = a.Draw(logits.data(), 5), y = b.Draw(logits.data(), 5);
    ASSERT_EQ(x.token, y.token);
    EXPECT_FLOAT_EQ(x.logprob, x.sampling_logprob);  // T=1, no truncation
    ++counts[x.token];
  }
  EXPECT_EQ(counts.size(), 5u);
  SamplerParams greedy;
  greedy.greedy = true;
  TokenDraw g = Sampler(greedy, 1).Draw(logits.data(), 5);
  EXPECT_EQ(g.token, 4);
  EXPECT_FLOAT_EQ(g.sampling_logprob, 0.f);
  SamplerParams topk;
  topk.top_k = 2;
  topk.temperature = 0.5f;
  Sampler tk(topk, 3);
  for (int i = 0; i < 200; ++i) {
    TokenDraw d = tk.Draw(logits.data(), 5);
    ASSERT_TRUE(d.token == 4 || d.token == 0);
    // Two candidates at T=0.5: p(4) = 1/(1+e^-2), p(0) = 1/(1+e^2).
    const double want = d.token == 4 ? 1 / (1 + std::exp(-2.0)) : 1 / (1 + std::exp(2.0));
    EXPECT_NEAR(d.sampling_logprob, std::log(want), 1e-5);
  }
  SamplerParams topp;
  topp.top_p = 0.5f;  // softmax(logits)[4] ~ 0.61 covers it alone
  Sampler tp(topp, 4);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(tp.Draw(logits.data(), 5).token, 4);
}

}  // namespace
}  // namespace zerorl::model
