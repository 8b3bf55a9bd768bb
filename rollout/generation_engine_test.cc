// GenerationEngine on a tiny MoE: grouped sampling equals the model's own
// Generate, stop strings/tokens, continuous batching across concurrent calls,
// weight swaps during generation (each sample is exactly one version's
// output), corrupt and aborted transfers, drain; the KV-cache budget (waits,
// never exceeded, no sample lost, an impossible prompt refused) and the MLA
// cache layouts (latent equals expanded; qwen3_moe unaffected); routing
// replay records (prompt + completion - 1 tokens, the samples unchanged, the
// learner's own routing under the same weights, nothing when not asked).
#include "rollout/generation_engine.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "model/ops/detached_backend.h"
#include "model/routing_record.h"
#include "model/test_models.h"
#include "model/test_util.h"
#include "weights/model_weights.h"

namespace zerorl::rollout {
namespace {

using zerorl::v1::WeightChunk;

std::vector<WeightChunk> ChunksOf(model::Model& m, int64_t version) {
  auto chunks = WeightChunksOf(m, version, 1024);
  EXPECT_TRUE(chunks.ok()) << chunks.status();
  return chunks.ok() ? *std::move(chunks) : std::vector<WeightChunk>{};
}

absl::StatusOr<UpdateResult> Push(GenerationEngine& e, const std::vector<WeightChunk>& chunks) {
  size_t i = 0;
  return e.ReceiveWeights([&](WeightChunk* c) {
    if (i == chunks.size()) return false;
    *c = chunks[i++];
    return true;
  });
}

std::unique_ptr<GenerationEngine> Engine(uint64_t seed, int max_batch = 256) {
  GenerationEngine::Options o;
  o.max_batch_sequences = max_batch;
  return std::make_unique<GenerationEngine>(testing::TinyMoe(seed), testing::CharTokenizer(), o);
}

std::unique_ptr<GenerationEngine> BudgetEngine(std::unique_ptr<model::Model> m, int64_t kv_bytes,
                                               model::MlaCache mla = model::MlaCache::kLatent) {
  GenerationEngine::Options o;
  o.kv_cache_bytes = kv_bytes;
  o.mla_cache = mla;
  return std::make_unique<GenerationEngine>(std::move(m), testing::CharTokenizer(), o);
}

std::vector<std::vector<int32_t>> Prompts(const GenerationEngine& e, std::vector<std::string> texts) {
  std::vector<std::vector<int32_t>> p;
  for (auto& t : texts) p.push_back(e.tokenizer().EncodePrompt(t));
  return p;
}

GenerationParams Sampling(int max_new, uint64_t seed = 7) {
  GenerationParams p;
  p.max_new_tokens = max_new;
  p.seed = seed;
  return p;
}

GenerationParams Greedy(int max_new) {
  GenerationParams p = Sampling(max_new);
  p.sampler.greedy = true;
  return p;
}

TEST(GenerationEngineTest, GroupsMatchTheModelsOwnGenerate) {
  auto engine = Engine(1);
  const auto prompts = Prompts(*engine, {"ab", "hello"});
  auto out = engine->Generate(prompts, 3, Sampling(12));
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  auto reference = testing::TinyMoe(1);
  auto ref = reference->Generate(prompts, 3, {}, 7, {2}, 12);
  ASSERT_TRUE(ref.ok()) << ref.status();
  bool differ = false;
  for (int p = 0; p < 2; ++p) {
    ASSERT_EQ((*out)[p].size(), 3u);
    for (int g = 0; g < 3; ++g) {
      const GeneratedText& s = (*out)[p][g];
      const auto& r = (*ref)[p * 3 + g];
      EXPECT_EQ(s.tokens, r.tokens) << "prompt " << p << " sample " << g;
      ASSERT_EQ(s.logprobs.size(), s.tokens.size());
      for (size_t t = 0; t < s.tokens.size(); ++t) {
        EXPECT_LE(s.logprobs[t], 0.f);
        EXPECT_NEAR(s.logprobs[t], r.logprobs[t], 1e-4);
      }
      EXPECT_EQ(s.finish, s.tokens.back() == 2 ? SampleFinish::kStop : SampleFinish::kLength);
      EXPECT_EQ(s.policy_version, 0);
      if (s.tokens != (*out)[p][0].tokens) differ = true;
    }
  }
  EXPECT_TRUE(differ) << "the G samples of a prompt should not all be equal";
  auto again = engine->Generate(prompts, 3, Sampling(12));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[1][2].tokens, (*out)[1][2].tokens);  // seeded
}

TEST(GenerationEngineTest, RecordsRoutingOnlyWhenAskedAndTheLearnerReplaysItWithoutMismatch) {
  auto engine = Engine(5, /*max_batch=*/4);  // the groups decode together with the plain call's
  const auto prompts = Prompts(*engine, {"ab", "hello"});
  GenerationParams rec = Sampling(12);
  rec.record_routing = true;
  absl::StatusOr<std::vector<std::vector<GeneratedText>>> plain, recorded;
  std::thread other([&] { plain = engine->Generate(prompts, 3, Sampling(12)); });
  recorded = engine->Generate(prompts, 3, rec);
  other.join();
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  auto learner = testing::TinyMoe(5);  // the same weights
  const model::ModelConfig& cfg = learner->config();
  const int64_t per_token = model::MoeLayerCount(cfg) * cfg.num_experts_per_tok;
  ASSERT_GT(per_token, 0);
  for (size_t p = 0; p < prompts.size(); ++p)
    for (int g = 0; g < 3; ++g) {
      SCOPED_TRACE("prompt " + std::to_string(p) + " sample " + std::to_string(g));
      const GeneratedText& a = (*plain)[p][g];
      const GeneratedText& b = (*recorded)[p][g];
      EXPECT_EQ(a.tokens, b.tokens);  // recording changes nothing
      EXPECT_EQ(a.logprobs, b.logprobs);
      EXPECT_EQ(a.routing.ByteSizeLong(), 0u);
      const int64_t fed = static_cast<int64_t>(prompts[p].size() + b.tokens.size()) - 1;
      auto routes = model::UnpackRoutingRecord(b.routing, cfg, fed);
      ASSERT_TRUE(routes.ok()) << routes.status();
      std::vector<int32_t> seq = prompts[p];
      seq.insert(seq.end(), b.tokens.begin(), b.tokens.end());
      model::TrainBatch batch = model::testing::OneSequence(seq);
      ASSERT_EQ(batch.T, fed + 1);
      batch.routed_experts = *routes;
      batch.routed_experts.resize(batch.T * per_token, -1);  // the last token routes itself
      model::TrainOutput out;
      ASSERT_TRUE(learner->TrainForward(batch, {}, &out).ok());
      EXPECT_EQ(out.replayed_routes, fed * model::MoeLayerCount(cfg));
      EXPECT_EQ(out.mismatched_routes, 0);
      for (size_t t = 0; t < b.tokens.size(); ++t)
        EXPECT_NEAR(out.logp[prompts[p].size() - 1 + t], b.logprobs[t], 1e-4) << t;
    }
}

TEST(GenerationEngineTest, StopStringsAndStopTokens) {
  auto engine = Engine(3);
  const auto prompts = Prompts(*engine, {"xyz"});
  auto free_run = engine->Generate(prompts, 1, Greedy(20));
  ASSERT_TRUE(free_run.ok());
  const auto& toks = (*free_run)[0][0].tokens;
  ASSERT_GE(toks.size(), 4u) << "greedy run stopped too early to test stops";
  GenerationParams by_token = Greedy(20);
  by_token.stop_token_ids = {toks[2]};
  auto a = engine->Generate(prompts, 1, by_token);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)[0][0].finish, SampleFinish::kStop);
  const size_t first = std::find(toks.begin(), toks.end(), toks[2]) - toks.begin();
  EXPECT_EQ((*a)[0][0].tokens, std::vector<int32_t>(toks.begin(), toks.begin() + first + 1));
  const std::string piece = engine->tokenizer().DecodeToken(toks[3]);
  if (!piece.empty() && !engine->tokenizer().is_special(toks[3])) {
    GenerationParams by_string = Greedy(20);
    by_string.stop = {piece};
    auto b = engine->Generate(prompts, 1, by_string);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ((*b)[0][0].finish, SampleFinish::kStop);
    size_t first_piece = 0;
    while (engine->tokenizer().DecodeToken(toks[first_piece]) != piece) ++first_piece;
    EXPECT_EQ((*b)[0][0].tokens, std::vector<int32_t>(toks.begin(), toks.begin() + first_piece + 1));
  }
}

TEST(GenerationEngineTest, ConcurrentCallsShareOneBatchAndMatchSequentialResults) {
  auto engine = Engine(4, /*max_batch=*/4);
  auto sequential = Engine(4);
  const std::vector<std::vector<std::string>> texts = {{"a", "bb"}, {"ccc", "d"}, {"ee", "fff"}};
  std::vector<std::vector<std::vector<GeneratedText>>> got(texts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < texts.size(); ++i)
    threads.emplace_back([&, i] {
      auto r = engine->Generate(Prompts(*engine, texts[i]), 3, Greedy(10));
      ASSERT_TRUE(r.ok()) << r.status();
      got[i] = *r;
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < texts.size(); ++i) {
    auto want = sequential->Generate(Prompts(*sequential, texts[i]), 3, Greedy(10));
    ASSERT_TRUE(want.ok());
    for (size_t p = 0; p < want->size(); ++p)
      for (int g = 0; g < 3; ++g) EXPECT_EQ(got[i][p][g].tokens, (*want)[p][0].tokens) << i << "/" << p << "/" << g;
  }
}

TEST(GenerationEngineTest, SwapDuringGenerationEachSampleIsOneVersion) {
  auto engine = Engine(1, /*max_batch=*/4);
  std::vector<std::unique_ptr<model::Model>> versions;
  for (uint64_t s : {1, 2, 3}) versions.push_back(testing::TinyMoe(s));
  const auto prompts = Prompts(*engine, {"ab", "cd"});
  // What each version generates greedily, alone.
  std::vector<std::vector<std::vector<int32_t>>> want;
  for (uint64_t s : {1, 2, 3}) {
    auto e = Engine(s);
    auto r = e->Generate(prompts, 1, Greedy(16));
    ASSERT_TRUE(r.ok());
    want.push_back({(*r)[0][0].tokens, (*r)[1][0].tokens});
  }
  ASSERT_NE(want[0], want[1]);
  ASSERT_NE(want[1], want[2]);
  const auto chunks1 = ChunksOf(*versions[1], 1), chunks2 = ChunksOf(*versions[2], 2);
  std::atomic<bool> pushed{false};
  std::vector<std::vector<std::vector<GeneratedText>>> results;
  std::thread gen([&] {
    for (int i = 0; i < 200 && (i < 3 || !pushed.load()); ++i) {
      auto r = engine->Generate(prompts, 2, Greedy(16));
      ASSERT_TRUE(r.ok()) << r.status();
      results.push_back(*r);
    }
    auto r = engine->Generate(prompts, 2, Greedy(16));
    ASSERT_TRUE(r.ok());
    results.push_back(*r);
  });
  ASSERT_TRUE(Push(*engine, chunks1).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto r2 = Push(*engine, chunks2);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->version, 2);
  pushed = true;
  gen.join();
  EXPECT_EQ(engine->version(), 2);
  int seen_last = 0;
  for (const auto& res : results)
    for (size_t p = 0; p < res.size(); ++p)
      for (const GeneratedText& s : res[p]) {
        ASSERT_GE(s.policy_version, 0);
        ASSERT_LE(s.policy_version, 2);
        EXPECT_EQ(s.tokens, want[s.policy_version][p]) << "sample reports version " << s.policy_version
                                                       << " but was not generated by it alone";
        seen_last += s.policy_version == 2;
      }
  EXPECT_GT(seen_last, 0);
}

// Partial rollout: a weight update that lands mid-generation moves the
// sequences in flight to the new version. The tokens before the switch are the
// old version's, those after it are the new version's continuation of that
// prefix (its KV cache was recomputed, not mixed), and version_spans says
// where the switch happened. Without partial_rollout the same update leaves
// the sample to the version it was admitted with.
TEST(GenerationEngineTest, PartialRolloutContinuesInFlightSequencesUnderTheNewVersion) {
  const auto chunks1 = ChunksOf(*testing::TinyMoe(2), 1);
  constexpr int kNew = 24;
  // Greedy continuation of `context` by the model of `seed`, alone.
  auto alone = [](uint64_t seed, std::vector<int32_t> context, int max_new) {
    auto e = Engine(seed);
    auto r = e->Generate({std::move(context)}, 1, Greedy(max_new));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? (*r)[0][0] : GeneratedText{};
  };
  for (bool partial : {false, true}) {
    SCOPED_TRACE(partial ? "partial_rollout" : "whole samples");
    GenerationEngine::Options o;
    o.partial_rollout = partial;
    GenerationEngine* self = nullptr;
    o.before_iteration = [&](int64_t it) {
      if (it == 6) {
        ASSERT_TRUE(Push(*self, chunks1).ok());
      }
    };
    auto engine = std::make_unique<GenerationEngine>(testing::TinyMoe(1), testing::CharTokenizer(), o);
    self = engine.get();
    const auto prompts = Prompts(*engine, {"ab"});
    auto r = engine->Generate(prompts, 2, Greedy(kNew));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(engine->version(), 1);
    const GeneratedText old_alone = alone(1, prompts[0], kNew);
    for (const GeneratedText& s : (*r)[0]) {
      EXPECT_EQ(s.policy_version, 0);
      if (!partial) {
        EXPECT_EQ(s.version_spans, (std::vector<VersionSpan>{{0, 0}}));
        EXPECT_EQ(s.tokens, old_alone.tokens);
        continue;
      }
      ASSERT_EQ(s.version_spans.size(), 2u);
      EXPECT_EQ(s.version_spans[0], (VersionSpan{0, 0}));
      EXPECT_EQ(s.version_spans[1].version, 1);
      const int k = s.version_spans[1].first_token;
      ASSERT_GT(k, 0);
      ASSERT_LT(k, static_cast<int>(s.tokens.size()));
      EXPECT_TRUE(std::equal(s.tokens.begin(), s.tokens.begin() + k, old_alone.tokens.begin()))
          << "the tokens before the switch are not version 0's";
      std::vector<int32_t> context = prompts[0];
      context.insert(context.end(), s.tokens.begin(), s.tokens.begin() + k);
      const GeneratedText new_tail = alone(2, context, kNew - k), old_tail = alone(1, context, kNew - k);
      ASSERT_NE(new_tail.tokens, old_tail.tokens) << "pick another switch point: both versions continue alike";
      EXPECT_EQ(std::vector<int32_t>(s.tokens.begin() + k, s.tokens.end()), new_tail.tokens)
          << "the tokens after the switch are not version 1's continuation of the prefix";
      ASSERT_EQ(s.logprobs.size(), s.tokens.size());
      for (size_t i = 0; i < new_tail.logprobs.size() && k + i < s.logprobs.size(); ++i)
        EXPECT_NEAR(s.logprobs[k + i], new_tail.logprobs[i], 1e-4) << "token " << k + i;
    }
  }
}

TEST(GenerationEngineTest, CorruptOrAbortedTransferKeepsServingTheOldVersion) {
  auto engine = Engine(1);
  auto other = testing::TinyMoe(2);
  const auto prompts = Prompts(*engine, {"ab"});
  auto before = engine->Generate(prompts, 1, Greedy(8));
  ASSERT_TRUE(before.ok());

  auto corrupt = ChunksOf(*other, 1);
  std::string d = corrupt[5].data();
  d[0] ^= 0x10;
  corrupt[5].set_data(d);
  auto r = Push(*engine, corrupt);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_EQ(engine->version(), 0);

  auto truncated = ChunksOf(*other, 1);
  truncated.resize(truncated.size() / 2);
  r = Push(*engine, truncated);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  EXPECT_EQ(engine->version(), 0);

  auto after = engine->Generate(prompts, 1, Greedy(8));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ((*after)[0][0].tokens, (*before)[0][0].tokens);
  EXPECT_EQ((*after)[0][0].policy_version, 0);
  ASSERT_TRUE(Push(*engine, ChunksOf(*other, 1)).ok());  // a good transfer after bad ones
  EXPECT_EQ(engine->version(), 1);
}

// A model in device-style memory (the detached backend: the host cannot
// dereference it): streamed chunks land in host staging and arrive by one
// UploadParams per transfer, across transfers that reuse the retired model
// and the staging buffer; a corrupt one changes nothing.
TEST(GenerationEngineTest, DeviceResidentModelReceivesThroughHostStaging) {
  std::unique_ptr<model::ops::DetachedBackendHandle> dev = model::ops::NewDetachedBackend();
  auto cfg = model::ParseModelConfig(testing::TinyMoeConfigJson());
  ASSERT_TRUE(cfg.ok());
  auto on_device = model::Model::Create(*cfg, 1, dev->backend());
  ASSERT_TRUE(on_device.ok()) << on_device.status();
  const int64_t bytes = (*on_device)->NumParams() * 4;
  GenerationEngine engine(std::move(*on_device), testing::CharTokenizer(), GenerationEngine::Options{});
  EXPECT_FALSE(engine.weights_on_host());
  const auto prompts = Prompts(engine, {"ab"});
  for (uint64_t seed : {2, 3, 2}) {
    auto sender = testing::TinyMoe(seed);
    const int64_t version = engine.version() + 1;
    dev->ResetStats();
    auto r = Push(engine, ChunksOf(*sender, version));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(engine.version(), version);
    // One upload of the whole model; the first transfer also creates the
    // spare (its random init is uploaded too), later ones reuse the retired model.
    if (seed == 2 && version == 1) EXPECT_EQ(dev->stats().uploaded_bytes, 2 * bytes);
    else EXPECT_EQ(dev->stats().uploaded_bytes, bytes);
    EXPECT_EQ(dev->stats().downloaded_bytes, 0);
    auto got = engine.Generate(prompts, 1, Greedy(8));
    auto want = sender->Generate(prompts, 1, {true}, 7, {2}, 8);
    ASSERT_TRUE(got.ok() && want.ok());
    EXPECT_EQ((*got)[0][0].tokens, (*want)[0].tokens) << "seed " << seed;
    EXPECT_EQ((*got)[0][0].logprobs, (*want)[0].logprobs) << "seed " << seed;
  }
  auto corrupt = ChunksOf(*testing::TinyMoe(4), 9);
  std::string d = corrupt[3].data();
  d[1] ^= 0x40;
  corrupt[3].set_data(d);
  EXPECT_EQ(Push(engine, corrupt).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(engine.version(), 3);
}

// ReceiveWeightsInPlace (the NCCL path's swap) with a memcpy standing in for
// the broadcast: the spare has the serving config, its fill becomes the new
// version; a failing fill leaves the old version serving.
TEST(GenerationEngineTest, InPlaceReceiveSwapsOnlyWhenTheFillSucceeds) {
  auto engine = Engine(1);
  auto sender = testing::TinyMoe(5);
  const auto prompts = Prompts(*engine, {"ab"});
  auto before = engine->Generate(prompts, 1, Greedy(8));
  ASSERT_TRUE(before.ok());
  auto failed = engine->ReceiveWeightsInPlace(4, [](model::Model*) { return absl::InternalError("broadcast broke"); });
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(engine->version(), 0);
  auto r = engine->ReceiveWeightsInPlace(4, [&](model::Model* spare) {
    EXPECT_EQ(spare->NumParams(), sender->NumParams());
    std::copy(sender->param_data(), sender->param_data() + sender->NumParams(), spare->param_data());
    return absl::OkStatus();
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->version, 4);
  EXPECT_EQ(r->bytes, sender->NumParams() * 4);
  EXPECT_EQ(engine->version(), 4);
  auto got = engine->Generate(prompts, 1, Greedy(8));
  auto want = sender->Generate(prompts, 1, {true}, 7, {2}, 8);
  ASSERT_TRUE(got.ok() && want.ok());
  EXPECT_EQ((*got)[0][0].logprobs, (*want)[0].logprobs);
  EXPECT_EQ((*got)[0][0].policy_version, 4);
}

TEST(GenerationEngineTest, RejectsBadRequests) {
  auto engine = Engine(1);
  EXPECT_EQ(engine->Generate({}, 1, Greedy(4)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Generate({{}}, 1, Greedy(4)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Generate({{1, 5}}, 0, Greedy(4)).status().code(), absl::StatusCode::kInvalidArgument);
  auto oov = engine->Generate({{1, 500}}, 1, Greedy(4));
  EXPECT_NE(oov.status().message().find("outside the vocabulary"), std::string::npos);
  EXPECT_EQ(engine->Generate({{1, 5}}, 1, Greedy(1000)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Generate({{1, 5}}, 1, Greedy(4), /*min_policy_version=*/3).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(GenerationEngineTest, DrainAbortsInFlightWithAClearReason) {
  auto engine = Engine(5);
  const auto prompts = Prompts(*engine, {"ab"});
  absl::StatusOr<std::vector<std::vector<GeneratedText>>> out;
  GenerationParams p = Sampling(250);
  p.stop_token_ids = {};
  std::thread gen([&] { out = engine->Generate(prompts, 4, p); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  const DrainCounts c = engine->Drain(/*abort_in_flight=*/true);
  gen.join();
  ASSERT_TRUE(out.ok()) << out.status();
  int aborted = 0;
  for (const auto& s : (*out)[0]) aborted += s.finish == SampleFinish::kAbort;
  EXPECT_EQ(c.aborted, aborted);
  EXPECT_EQ(engine->Generate(prompts, 1, Greedy(4)).status().code(), absl::StatusCode::kUnavailable);
}

TEST(GenerationEngineKvBudgetTest, TheBudgetBoundsTheBatchAndEverySampleFinishes) {
  auto probe = testing::TinyMoe(5);
  const int64_t per_token = probe->KvBytesPerToken();
  EXPECT_EQ(per_token, model::KvCacheBytesPerToken(probe->config(), /*latent=*/true));
  auto unbounded = BudgetEngine(testing::TinyMoe(5), int64_t{1} << 30);
  const int G = 3, max_new = 10;
  const auto prompts = Prompts(*unbounded, {"abcd", "efgh", "ijkl", "mnop", "qrst", "uvwx"});
  const int64_t need = G * (static_cast<int64_t>(prompts[0].size()) + max_new) * per_token;  // one prompt
  auto bounded = BudgetEngine(testing::TinyMoe(5), 2 * need + need / 2);  // room for two prompts at a time
  EXPECT_EQ(bounded->kv_cache_budget(), 2 * need + need / 2);
  auto ref = unbounded->Generate(prompts, G, Greedy(max_new));
  ASSERT_TRUE(ref.ok()) << ref.status();
  // Three callers with two prompts each: six prompts compete for room for two.
  std::vector<absl::StatusOr<std::vector<std::vector<GeneratedText>>>> got(3);
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c)
    callers.emplace_back([&, c] {
      got[c] = bounded->Generate({prompts[2 * c], prompts[2 * c + 1]}, G, Greedy(max_new));
    });
  for (auto& t : callers) t.join();
  for (int c = 0; c < 3; ++c) {
    ASSERT_TRUE(got[c].ok()) << got[c].status();
    for (int i = 0; i < 2; ++i)
      for (int g = 0; g < G; ++g) {
        const GeneratedText& s = (*got[c])[i][g];
        EXPECT_NE(s.finish, SampleFinish::kAbort);
        EXPECT_EQ(s.tokens, (*ref)[2 * c + i][g].tokens) << "prompt " << 2 * c + i << " sample " << g;
      }
  }
  EXPECT_LE(bounded->kv_cache_peak(), bounded->kv_cache_budget());
  EXPECT_EQ(bounded->kv_cache_peak(), 2 * need) << "two prompts in flight at most, and at some point two";
  EXPECT_EQ(bounded->kv_cache_reserved(), 0) << "finished samples give their cache back";
  EXPECT_GE(unbounded->kv_cache_peak(), 6 * need) << "without a tight budget all six run together";
}

TEST(GenerationEngineKvBudgetTest, APromptThatCanNeverFitIsRefusedWithItsSizes) {
  auto probe = testing::TinyMoe(5);
  const int64_t per_token = probe->KvBytesPerToken();
  auto engine = BudgetEngine(testing::TinyMoe(5), 1000 * per_token);
  const auto prompts = Prompts(*engine, {"ok", std::string(200, 'x')});
  auto fits = engine->Generate({prompts[0]}, 4, Greedy(8));
  ASSERT_TRUE(fits.ok()) << fits.status();
  auto refused = engine->Generate(prompts, 4, Greedy(50));  // 4 x (200+ + 50) tokens > 1000
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  const std::string msg(refused.status().message());
  EXPECT_NE(msg.find("prompt 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rollout.kv_cache_mb"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(1000 * per_token)), std::string::npos) << msg;
  EXPECT_EQ(engine->kv_cache_reserved(), 0);
  auto after = engine->Generate({prompts[0]}, 4, Greedy(8));  // the engine still serves
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ((*after)[0][0].tokens, (*fits)[0][0].tokens);
}

TEST(GenerationEngineKvBudgetTest, LatentAndExpandedCachesGiveTheSameSamples) {
  for (const std::string& json : {zerorl::testing::TinyMoeConfigJson(), model::testing::TinyQwenJson(R"({"vocab_size":100})")}) {
    auto make = [&] {
      auto m = model::Model::Create(model::testing::MustParse(json), 11);
      EXPECT_TRUE(m.ok());
      return std::move(*m);
    };
    auto latent = BudgetEngine(make(), 0, model::MlaCache::kLatent);
    auto expanded = BudgetEngine(make(), 0, model::MlaCache::kExpanded);
    EXPECT_GT(latent->kv_cache_budget(), 0) << "0 means a share of the backend's memory";
    const auto prompts = Prompts(*latent, {"abc", "hello world"});
    const bool mla = latent->config().is_mla();
    auto a = latent->Generate(prompts, 4, Sampling(16));
    auto b = expanded->Generate(prompts, 4, Sampling(16));
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    for (int p = 0; p < 2; ++p)
      for (int g = 0; g < 4; ++g) {
        const GeneratedText &x = (*a)[p][g], &y = (*b)[p][g];
        ASSERT_EQ(x.tokens, y.tokens) << (mla ? "deepseek_v3" : "qwen3_moe") << " prompt " << p << " sample " << g;
        for (size_t t = 0; t < x.tokens.size(); ++t) {
          if (mla) EXPECT_NEAR(x.logprobs[t], y.logprobs[t], 2e-5);
          else EXPECT_EQ(x.logprobs[t], y.logprobs[t]) << "qwen3_moe keeps its K/V cache";
        }
      }
  }
}

}  // namespace
}  // namespace zerorl::rollout
