// KV-cache inference against the full forward: Prefill + DecodeStep logits
// equal the training forward's logits at every position (both families),
// batched decode of sequences of different lengths, cache forks, and
// deterministic seeded generation.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "model/model.h"
#include "model/test_util.h"

namespace zerorl::model {
namespace {

float MaxRel(const float* a, const float* b, int64_t n) {
  float md = 0, mb = 0;
  for (int64_t i = 0; i < n; ++i) {
    md = std::max(md, std::fabs(a[i] - b[i]));
    mb = std::max(mb, std::fabs(b[i]));
  }
  return md / mb;
}

std::unique_ptr<Model> Make(const std::string& json) {
  auto m = Model::Create(testing::MustParse(json), 99);
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(*m);
}

using testing::FullLogits;

class CacheTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CacheTest, DecodeWithCacheEqualsFullForwardAtEveryPosition) {
  auto m = Make(GetParam());
  const int64_t V = m->config().vocab_size;
  std::vector<int32_t> toks = {1, 5, 7, 3, 9, 11, 2, 30, 4, 8, 15, 16};
  std::vector<float> full = FullLogits(*m, toks);
  // Prefill 4 tokens, then decode one at a time.
  KVCache cache;
  std::vector<float> logits;
  ASSERT_TRUE(m->Prefill({toks.begin(), toks.begin() + 4}, &cache, &logits, /*all_logits=*/true).ok());
  ASSERT_EQ(logits.size(), 4u * V);
  EXPECT_LE(MaxRel(logits.data(), full.data(), 4 * V), 1e-5f);
  for (size_t t = 4; t < toks.size(); ++t) {
    ASSERT_TRUE(m->DecodeStep({&cache}, {toks[t]}, &logits).ok());
    EXPECT_LE(MaxRel(logits.data(), full.data() + t * V, V), 1e-5f) << "position " << t;
  }
  EXPECT_EQ(cache.length(), static_cast<int64_t>(toks.size()));
}

TEST_P(CacheTest, BatchedDecodeOfDifferentLengthsAndForks) {
  auto m = Make(GetParam());
  const int64_t V = m->config().vocab_size;
  std::vector<int32_t> a = {3, 4, 5, 6, 7, 8}, b = {9, 10};
  KVCache ca, cb;
  std::vector<float> la, lb, step;
  ASSERT_TRUE(m->Prefill({a.begin(), a.end() - 1}, &ca, &la).ok());
  ASSERT_TRUE(m->Prefill({b.begin(), b.end() - 1}, &cb, &lb).ok());
  KVCache fork = cb.Fork();
  ASSERT_TRUE(m->DecodeStep({&ca, &cb, &fork}, {a.back(), b.back(), 12}, &step).ok());
  std::vector<float> fa = FullLogits(*m, a), fb = FullLogits(*m, b), ff = FullLogits(*m, {9, 12});
  EXPECT_LE(MaxRel(step.data(), fa.data() + 5 * V, V), 1e-5f);
  EXPECT_LE(MaxRel(step.data() + V, fb.data() + 1 * V, V), 1e-5f);
  EXPECT_LE(MaxRel(step.data() + 2 * V, ff.data() + 1 * V, V), 1e-5f);
}

INSTANTIATE_TEST_SUITE_P(Families, CacheTest,
                         ::testing::Values(testing::TinyDeepseekJson(R"({"q_lora_rank":10})"),
                                           testing::TinyQwenJson()));

TEST(GenerateTest, SeededSamplingIsDeterministicAndLogprobsAreConsistent) {
  auto m = Make(testing::TinyDeepseekJson());
  SamplerParams sp;
  sp.temperature = 0.8f;
  sp.top_p = 0.9f;
  auto r1 = m->Generate({{1, 5, 7}, {1, 9}}, 3, sp, 42, {2}, 10);
  auto r2 = m->Generate({{1, 5, 7}, {1, 9}}, 3, sp, 42, {2}, 10);
  ASSERT_TRUE(r1.ok() && r2.ok());
  ASSERT_EQ(r1->size(), 6u);
  bool differ = false;
  for (size_t i = 0; i < r1->size(); ++i) {
    const auto& s = (*r1)[i];
    EXPECT_EQ(s.tokens, (*r2)[i].tokens);
    ASSERT_EQ(s.logprobs.size(), s.tokens.size());
    ASSERT_FALSE(s.tokens.empty());
    EXPECT_LE(s.tokens.size(), 10u);
    if (s.finish == FinishReason::kStop) EXPECT_EQ(s.tokens.back(), 2);
    else EXPECT_EQ(s.tokens.size(), 10u);
    if (i > 0 && s.tokens != (*r1)[0].tokens) differ = true;
    // The raw logprob of each token equals the full forward's log-softmax.
    const auto& prompt = i < 3 ? std::vector<int32_t>{1, 5, 7} : std::vector<int32_t>{1, 9};
    std::vector<int32_t> seq = prompt;
    seq.insert(seq.end(), s.tokens.begin(), s.tokens.end());
    const TrainBatch b = testing::OneSequence(seq);
    TrainOutput out;
    ASSERT_TRUE(m->TrainForward(b, {}, &out).ok());
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      EXPECT_NEAR(s.logprobs[t], out.logp[prompt.size() - 1 + t], 1e-4f);
      EXPECT_LE(s.logprobs[t], 0.f);
      EXPECT_LE(s.sampling_logprobs[t], 0.f);
    }
  }
  EXPECT_TRUE(differ) << "6 samples at temperature 0.8 were all identical";
  auto greedy = m->Generate({{1, 5, 7}}, 2, SamplerParams{true}, 1, {}, 5);
  ASSERT_TRUE(greedy.ok());
  EXPECT_EQ((*greedy)[0].tokens, (*greedy)[1].tokens);
  EXPECT_EQ((*greedy)[0].finish, FinishReason::kLength);
}

TEST(GenerateTest, BadInputIsAnError) {
  auto m = Make(testing::TinyQwenJson());
  EXPECT_FALSE(m->Generate({{}}, 1, {}, 1, {}, 4).ok());
  EXPECT_FALSE(m->Generate({{1, 999}}, 1, {}, 1, {}, 4).ok());
  SamplerParams bad;
  bad.temperature = 0.f;
  EXPECT_FALSE(m->Generate({{1}}, 1, bad, 1, {}, 4).ok());
  KVCache c;
  std::vector<float> l;
  EXPECT_FALSE(m->DecodeStep({&c}, {1, 2}, &l).ok());
}

}  // namespace
}  // namespace zerorl::model
