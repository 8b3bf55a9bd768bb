// The latent MLA cache (MlaCache::kLatent: c_kv + roped k_pe per token and
// layer, weight-absorbed decode) against the expanded K/V cache on the six
// reference configs: greedy tokens equal, logprobs within float tolerance,
// GQA models bit-identical under either setting (they always cache K/V).
// Also: prefill into a non-empty latent cache against the full forward, the
// cache's bytes per token, ReserveCache / Fork capacity, a cache filled under
// one layout refused under the other, and what the latent cache changes in the
// countdown demo's first rollout (its base checkpoint, its sampling).
#include <cmath>
#include <cstdio>

#include <gtest/gtest.h>

#include "model/model.h"
#include "model/test_util.h"
#include "model/tokenizer.h"

namespace zerorl::model {
namespace {

std::unique_ptr<Model> Make(const std::string& json) {
  auto m = Model::Create(testing::MustParse(json), 99);
  EXPECT_TRUE(m.ok()) << m.status();
  // Sharper logits than the N(0, 0.02) init gives, so greedy picks are not near-ties.
  std::vector<float> w(m.ok() ? (*m)->NumParams() : 0);
  if (m.ok()) {
    (*m)->DownloadParams(w.data());
    for (auto& x : w) x *= 4.f;
    (*m)->UploadParams(w.data());
  }
  return m.ok() ? std::move(*m) : nullptr;
}

class LatentCacheTest : public ::testing::TestWithParam<testing::NamedConfig> {};

TEST_P(LatentCacheTest, GenerationEqualsTheExpandedCache) {
  auto m = Make(GetParam().json);
  ASSERT_TRUE(m);
  const std::vector<std::vector<int32_t>> prompts = {{1, 5, 7, 3, 9}, {1, 9}, {4, 8, 15, 16, 23, 30, 11, 6}};
  SamplerParams greedy;
  greedy.greedy = true;
  SamplerParams sampled;
  sampled.temperature = 1.f;
  for (const SamplerParams& sp : {greedy, sampled}) {
    m->set_mla_cache(MlaCache::kExpanded);
    auto e = m->Generate(prompts, 3, sp, 7, {}, 40);
    m->set_mla_cache(MlaCache::kLatent);
    auto l = m->Generate(prompts, 3, sp, 7, {}, 40);
    ASSERT_TRUE(e.ok() && l.ok()) << e.status() << l.status();
    ASSERT_EQ(e->size(), l->size());
    float max_diff = 0.f;
    for (size_t i = 0; i < e->size(); ++i) {
      ASSERT_EQ((*e)[i].tokens, (*l)[i].tokens) << "sample " << i << (sp.greedy ? " (greedy)" : " (sampled)");
      for (size_t t = 0; t < (*e)[i].logprobs.size(); ++t) {
        max_diff = std::max(max_diff, std::fabs((*e)[i].logprobs[t] - (*l)[i].logprobs[t]));
        max_diff = std::max(max_diff, std::fabs((*e)[i].sampling_logprobs[t] - (*l)[i].sampling_logprobs[t]));
      }
    }
    std::printf("%s %s: max |logprob latent - expanded| = %.3g\n", GetParam().name.c_str(),
                sp.greedy ? "greedy" : "sampled", max_diff);
    if (m->config().is_mla()) EXPECT_LE(max_diff, 2e-5f);
    else EXPECT_EQ(max_diff, 0.f) << "GQA ignores the MLA cache setting";
  }
}

TEST_P(LatentCacheTest, PrefillIntoAFilledCacheEqualsTheFullForward) {
  auto m = Make(GetParam().json);
  ASSERT_TRUE(m);
  const int64_t V = m->config().vocab_size;
  const std::vector<int32_t> toks = {1, 5, 7, 3, 9, 11, 2, 30, 4, 8, 15, 16, 22};
  const std::vector<float> full = testing::FullLogits(*m, toks);
  // 4 tokens (a prefill), 1 (decode), 5 at once over the filled cache, then 3 decodes.
  KVCache cache;
  std::vector<float> logits;
  float max_rel = 0.f, max_ref = 0.f;
  auto check = [&](size_t from, size_t n) {
    for (size_t i = 0; i < n * V; ++i) {
      max_rel = std::max(max_rel, std::fabs(logits[i] - full[from * V + i]));
      max_ref = std::max(max_ref, std::fabs(full[from * V + i]));
    }
  };
  ASSERT_TRUE(m->Prefill({toks.begin(), toks.begin() + 4}, &cache, &logits, true).ok());
  check(0, 4);
  ASSERT_TRUE(m->DecodeStep({&cache}, {toks[4]}, &logits).ok());
  check(4, 1);
  ASSERT_TRUE(m->Prefill({toks.begin() + 5, toks.begin() + 10}, &cache, &logits, true).ok());
  check(5, 5);
  for (size_t t = 10; t < toks.size(); ++t) {
    ASSERT_TRUE(m->DecodeStep({&cache}, {toks[t]}, &logits).ok());
    check(t, 1);
  }
  EXPECT_LE(max_rel / max_ref, 1e-5f);
  EXPECT_EQ(cache.length(), static_cast<int64_t>(toks.size()));
}

TEST_P(LatentCacheTest, BytesPerTokenReserveAndFork) {
  auto m = Make(GetParam().json);
  ASSERT_TRUE(m);
  const ModelConfig& c = m->config();
  const int64_t expanded = c.num_hidden_layers * c.kv_heads() * (c.qk_head_dim() + c.v_dim()) * 4;
  EXPECT_EQ(KvCacheBytesPerToken(c, false), expanded);
  if (c.is_mla()) {
    EXPECT_EQ(m->KvBytesPerToken(), c.num_hidden_layers * (c.kv_lora_rank + c.qk_rope_head_dim) * 4);
    EXPECT_LT(m->KvBytesPerToken() * 4, expanded);
  } else {
    EXPECT_EQ(m->KvBytesPerToken(), expanded);
  }
  for (MlaCache mode : {MlaCache::kLatent, MlaCache::kExpanded}) {
    m->set_mla_cache(mode);
    KVCache cache;
    ASSERT_TRUE(m->ReserveCache(&cache, 30).ok());
    EXPECT_EQ(cache.bytes(), 30 * m->KvBytesPerToken());
    std::vector<float> logits;
    ASSERT_TRUE(m->Prefill({1, 2, 3, 4, 5, 6}, &cache, &logits).ok());
    KVCache fork = cache.Fork();
    for (int t = 0; t < 20; ++t) {
      ASSERT_TRUE(m->DecodeStep({&cache, &fork}, {7, 8}, &logits).ok());
    }
    EXPECT_EQ(cache.bytes(), 30 * m->KvBytesPerToken()) << "no growth within the reservation";
    EXPECT_EQ(fork.bytes(), 30 * m->KvBytesPerToken()) << "a fork keeps the reservation";
    EXPECT_EQ(fork.length(), 26);
  }
}

TEST(LatentCacheLayoutTest, ACacheFilledUnderOneLayoutIsRefusedUnderTheOther) {
  auto m = Make(testing::TinyDeepseekJson());
  ASSERT_TRUE(m);
  m->set_mla_cache(MlaCache::kExpanded);
  KVCache cache;
  std::vector<float> logits;
  ASSERT_TRUE(m->Prefill({1, 2, 3}, &cache, &logits).ok());
  m->set_mla_cache(MlaCache::kLatent);
  absl::Status st = m->DecodeStep({&cache}, {4}, &logits);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("expanded"), std::string::npos) << st;
  m->set_mla_cache(MlaCache::kExpanded);
  EXPECT_TRUE(m->DecodeStep({&cache}, {4}, &logits).ok());
}

// DeepSeek-V3's own attention shape (its config.json; the weights are not needed):
// 61 layers, 128 heads, kv_lora_rank 512, rope 64, nope 128, v 128.
TEST(LatentCacheLayoutTest, DeepseekV3ShapeCachesAbout71TimesLess) {
  ModelConfig c = testing::MustParse(testing::TinyDeepseekJson(
      R"({"num_hidden_layers":61,"num_attention_heads":128,"num_key_value_heads":128,"kv_lora_rank":512,
          "qk_rope_head_dim":64,"qk_nope_head_dim":128,"v_head_dim":128,"q_lora_rank":1536})"));
  const double ratio =
      static_cast<double>(KvCacheBytesPerToken(c, true)) / static_cast<double>(KvCacheBytesPerToken(c, false));
  EXPECT_EQ(KvCacheBytesPerToken(c, true), 61 * 576 * 4);
  EXPECT_NEAR(1.0 / ratio, 71.1, 0.1);
}

// The demo's step-0 rollout shape (16 prompts x 16 samples, temperature 1,
// 80 new tokens) on its base checkpoint under both layouts: the latent cache
// changes logprobs only by float rounding, and a sampled token only when a
// draw falls within that rounding of a CDF boundary.
TEST(LatentCacheDemoTest, CountdownBaseRolloutChangesOnlyByRounding) {
  auto m = Model::Load(std::string(ZERORL_SOURCE_DIR) + "/examples/countdown/base");
  ASSERT_TRUE(m.ok()) << m.status();
  auto tok = Tokenizer::CharVocabulary();
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 16; ++i)
    prompts.push_back(tok->EncodePrompt("nums " + std::to_string(1 + i % 12) + " " + std::to_string(1 + (i * 5) % 12) +
                                        " target " + std::to_string(2 + i) + "\n<think>"));
  SamplerParams sp;
  sp.temperature = 1.f;
  std::vector<int32_t> stop = {static_cast<int32_t>(tok->eos_id())};
  (*m)->set_mla_cache(MlaCache::kExpanded);
  auto e = (*m)->Generate(prompts, 16, sp, 1, stop, 80);
  (*m)->set_mla_cache(MlaCache::kLatent);
  auto l = (*m)->Generate(prompts, 16, sp, 1, stop, 80);
  ASSERT_TRUE(e.ok() && l.ok());
  int64_t tokens = 0, same_samples = 0;
  float max_diff = 0.f;
  for (size_t i = 0; i < e->size(); ++i) {
    const auto &a = (*e)[i], &b = (*l)[i];
    same_samples += a.tokens == b.tokens;
    for (size_t t = 0; t < std::min(a.tokens.size(), b.tokens.size()); ++t) {
      ++tokens;
      max_diff = std::max(max_diff, std::fabs(a.logprobs[t] - b.logprobs[t]));
      if (a.tokens[t] != b.tokens[t]) break;  // past a divergence the contexts differ
    }
  }
  std::printf("countdown base, 256 samples: %lld identical, max |logprob latent - expanded| = %.3g over %lld tokens\n",
              static_cast<long long>(same_samples), max_diff, static_cast<long long>(tokens));
  EXPECT_LE(max_diff, 1e-4f);
  EXPECT_GE(same_samples, 250);
}

INSTANTIATE_TEST_SUITE_P(ReferenceConfigs, LatentCacheTest, ::testing::ValuesIn(testing::ReferenceConfigs()),
                         [](const ::testing::TestParamInfo<testing::NamedConfig>& i) { return i.param.name; });

}  // namespace
}  // namespace zerorl::model
