// The model's device code path, checked on a machine without a GPU: a model
// on ops::DetachedBackend (backend memory the host cannot dereference; every
// op forwards to the CPU kernels) must give bit-identical results to the same
// model on the CPU backend — training forward/backward, routing loads, the
// balance loss, clipping + AdamW, router-bias updates, KV-cache decode, forks,
// sampled generation, save/load — and Generate must not move logits to the
// host. Any host dereference of backend memory in model/*.cc segfaults here.
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/model.h"
#include "model/ops/detached_backend.h"
#include "model/optimizer.h"
#include "model/test_util.h"

namespace zerorl::model {
namespace {

std::vector<float> Params(const Model& m) {
  std::vector<float> h(m.NumParams());
  m.DownloadParams(h.data());
  return h;
}

std::vector<float> Grads(Model& m) {
  std::vector<float> h(m.NumParams());
  m.backend()->Download(h.data(), m.grad_data(), m.NumParams() * 4);
  return h;
}

TrainBatch Batch(int64_t V) {
  TrainBatch b;
  b.B = 3;
  b.T = 9;
  b.lengths = {9, 6, 4};
  for (int64_t i = 0; i < b.B * b.T; ++i) b.tokens.push_back(static_cast<int32_t>((i * 37 + 11) % V));
  return b;
}

struct Pair {
  std::unique_ptr<ops::DetachedBackendHandle> dev = ops::NewDetachedBackend();
  std::unique_ptr<Model> cpu, det;
};

Pair Make(const std::string& json) {
  Pair p;
  const ModelConfig c = testing::MustParse(json);
  auto a = Model::Create(c, 5);
  auto b = Model::Create(c, 5, p.dev->backend());
  EXPECT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(b.ok()) << b.status();
  p.cpu = std::move(*a);
  p.det = std::move(*b);
  return p;
}

class DevicePathTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DevicePathTest, TrainingStepIsBitIdenticalToTheCpuBackend) {
  Pair p = Make(GetParam());
  ASSERT_FALSE(p.det->on_host());
  ASSERT_TRUE(p.cpu->on_host());
  ASSERT_EQ(Params(*p.cpu), Params(*p.det)) << "random init differs between backends";
  const TrainBatch batch = Batch(p.cpu->config().vocab_size);
  TrainOptions o;
  o.entropy = true;
  o.keep_logits = true;
  o.balance_alpha = 0.01f;
  AdamWConfig ac;
  ac.weight_decay = 0.1f;
  AdamW opt_cpu(ac), opt_det(ac);
  for (int step = 0; step < 2; ++step) {
    TrainOutput a, b;
    ASSERT_TRUE(p.cpu->TrainForward(batch, o, &a).ok());
    ASSERT_TRUE(p.det->TrainForward(batch, o, &b).ok());
    EXPECT_EQ(a.logp, b.logp);
    EXPECT_EQ(a.entropy, b.entropy);
    EXPECT_EQ(a.logits, b.logits);
    EXPECT_EQ(a.balance_loss, b.balance_loss);
    EXPECT_GT(a.balance_loss, 0.f);
    EXPECT_EQ(p.cpu->ExpertLoads(), p.det->ExpertLoads());
    std::vector<float> dlogp(a.logp.size()), dent(a.logp.size());
    for (size_t i = 0; i < dlogp.size(); ++i) {
      dlogp[i] = -0.01f * static_cast<float>(i % 7);
      dent[i] = 0.001f;
    }
    p.cpu->ZeroGrad();
    p.det->ZeroGrad();
    ASSERT_TRUE(p.cpu->TrainBackward(dlogp.data(), dent.data()).ok());
    ASSERT_TRUE(p.det->TrainBackward(dlogp.data(), dent.data()).ok());
    const std::vector<float> ga = Grads(*p.cpu), gb = Grads(*p.det);
    EXPECT_EQ(ga, gb);
    double gsum = 0;
    for (float g : ga) gsum += std::fabs(g);
    EXPECT_GT(gsum, 0.0);
    EXPECT_EQ(ClipGradNorm(p.cpu->Parameters(), 0.05f), ClipGradNorm(p.det->Parameters(), 0.05f));
    ASSERT_TRUE(opt_cpu.Step(p.cpu->Parameters(), 1e-3f).ok());
    ASSERT_TRUE(opt_det.Step(p.det->Parameters(), 1e-3f).ok());
    p.cpu->UpdateRouterBias(0.01f);
    p.det->UpdateRouterBias(0.01f);
    EXPECT_EQ(Params(*p.cpu), Params(*p.det)) << "step " << step;
  }
  EXPECT_EQ(opt_cpu.SerializeState(), opt_det.SerializeState());
  // The optimizer state restores onto the device model and goes on identically.
  AdamW restored(ac);
  ASSERT_TRUE(restored.RestoreState(opt_det.SerializeState()).ok());
  EXPECT_EQ(restored.SerializeState(), opt_det.SerializeState());
}

// Routing replay on device memory: the recorded routes and a replayed
// forward/backward (the picks shifted by one expert) match the CPU backend.
TEST_P(DevicePathTest, RoutingReplayRecordsAndReplaysBitIdentically) {
  Pair p = Make(GetParam());
  TrainBatch batch = Batch(p.cpu->config().vocab_size);
  const int64_t E = p.cpu->config().n_routed_experts, K = p.cpu->config().num_experts_per_tok;
  for (int64_t b = 0; b < batch.B; ++b) {
    std::vector<int32_t> toks(batch.tokens.begin() + b * batch.T, batch.tokens.begin() + (b + 1) * batch.T);
    KVCache ca, cb;
    std::vector<float> la, lb;
    std::vector<int32_t> ra, rb;
    ASSERT_TRUE(p.cpu->Prefill(toks, &ca, &la, false, &ra).ok());
    ASSERT_TRUE(p.det->Prefill(toks, &cb, &lb, false, &rb).ok());
    ASSERT_FALSE(ra.empty());
    EXPECT_EQ(ra, rb);
    for (size_t i = 0; i < ra.size(); i += K)  // every pick moved to the next expert (still distinct)
      for (int64_t k = 0; k < K; ++k) batch.routed_experts.push_back(static_cast<int32_t>((ra[i + k] + 1) % E));
  }
  TrainOutput a, b;
  ASSERT_TRUE(p.cpu->TrainForward(batch, {}, &a).ok());
  ASSERT_TRUE(p.det->TrainForward(batch, {}, &b).ok());
  EXPECT_EQ(a.logp, b.logp);
  EXPECT_EQ(p.cpu->ExpertLoads(), p.det->ExpertLoads());
  EXPECT_GT(a.mismatched_routes, 0);
  EXPECT_EQ(a.replayed_routes, b.replayed_routes);
  EXPECT_EQ(a.mismatched_routes, b.mismatched_routes);
  std::vector<float> dlogp(a.logp.size(), -0.05f);
  p.cpu->ZeroGrad();
  p.det->ZeroGrad();
  ASSERT_TRUE(p.cpu->TrainBackward(dlogp.data()).ok());
  ASSERT_TRUE(p.det->TrainBackward(dlogp.data()).ok());
  EXPECT_EQ(Grads(*p.cpu), Grads(*p.det));
}

TEST_P(DevicePathTest, GenerationIsBitIdenticalAndKeepsLogitsOnTheDevice) {
  Pair p = Make(GetParam());
  const int64_t V = p.cpu->config().vocab_size;
  SamplerParams sp;
  sp.temperature = 0.9f;
  sp.top_p = 0.95f;
  sp.top_k = 50;
  const std::vector<std::vector<int32_t>> prompts = {{1, 5, 9, 3}, {4, 4, 8}};
  const int64_t G = 3, max_new = 12;
  auto a = p.cpu->Generate(prompts, G, sp, 17, {2}, max_new);
  p.dev->ResetStats();
  auto b = p.det->Generate(prompts, G, sp, 17, {2}, max_new);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(a->size(), b->size());
  int64_t tokens = 0;
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].tokens, (*b)[i].tokens) << "sample " << i;
    EXPECT_EQ((*a)[i].logprobs, (*b)[i].logprobs);
    EXPECT_EQ((*a)[i].sampling_logprobs, (*b)[i].sampling_logprobs);
    tokens += static_cast<int64_t>((*a)[i].tokens.size());
  }
  // Per drawn token: the token and two logprobs (12 bytes) plus the per-layer
  // expert counts of each step — never a logits row (V floats).
  const int64_t downloaded = p.dev->stats().downloaded_bytes;
  EXPECT_GT(downloaded, 12 * tokens - 1);
  EXPECT_LT(downloaded, tokens * V * 4 / 4) << "Generate downloaded " << downloaded << " bytes for " << tokens
                                             << " tokens of a " << V << "-token vocabulary";
  // Greedy too.
  SamplerParams g;
  g.greedy = true;
  auto ga = p.cpu->Generate(prompts, 1, g, 0, {}, 8);
  auto gb = p.det->Generate(prompts, 1, g, 0, {}, 8);
  ASSERT_TRUE(ga.ok() && gb.ok());
  for (size_t i = 0; i < ga->size(); ++i) EXPECT_EQ((*ga)[i].tokens, (*gb)[i].tokens);
}

TEST_P(DevicePathTest, CacheForksDecodeAndPrefillMatch) {
  Pair p = Make(GetParam());
  KVCache ca, cb;
  std::vector<float> la, lb;
  ASSERT_TRUE(p.cpu->Prefill({1, 2, 3, 4, 5}, &ca, &la, true).ok());
  ASSERT_TRUE(p.det->Prefill({1, 2, 3, 4, 5}, &cb, &lb, true).ok());
  EXPECT_EQ(la, lb);
  KVCache fa = ca.Fork(), fb = cb.Fork();
  ASSERT_TRUE(p.cpu->DecodeStep({&ca, &fa}, {7, 9}, &la).ok());
  ASSERT_TRUE(p.det->DecodeStep({&cb, &fb}, {7, 9}, &lb).ok());
  EXPECT_EQ(la, lb);
  EXPECT_EQ(fb.length(), 6);
  EXPECT_EQ(cb.length(), 6);
}

TEST_P(DevicePathTest, SaveLoadAndCopyAcrossBackends) {
  Pair p = Make(GetParam());
  const std::string dir = ::testing::TempDir() + "/device_path_" + std::to_string(getpid());
  ASSERT_TRUE(p.det->Save(dir).ok());
  auto back = Model::Load(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(Params(**back), Params(*p.det));
  auto dev2 = ops::NewDetachedBackend();
  auto onto = Model::Load(dir, dev2->backend());
  ASSERT_TRUE(onto.ok()) << onto.status();
  EXPECT_EQ(Params(**onto), Params(*p.cpu));
  auto fresh = Model::Create(p.cpu->config(), 77, dev2->backend());
  ASSERT_TRUE(fresh.ok());
  ASSERT_TRUE((*fresh)->CopyWeightsFrom(*p.cpu).ok());
  EXPECT_EQ(Params(**fresh), Params(*p.cpu));
  ASSERT_TRUE(p.cpu->CopyWeightsFrom(**onto).ok());
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Families, DevicePathTest,
    ::testing::Values(testing::TinyDeepseekJson(R"({"vocab_size":512,"n_routed_experts":8,"n_group":4,"topk_group":2})"),
                      testing::TinyDeepseekJson(R"({"vocab_size":512,"scoring_func":"softmax","q_lora_rank":8})"),
                      testing::TinyQwenJson(R"({"vocab_size":512})")),
    [](const ::testing::TestParamInfo<std::string>& i) {
      return std::string(i.index == 2 ? "qwen3_moe" : i.index == 1 ? "mla_qlora_softmax" : "mla_grouped");
    });

TEST(DevicePathErrors, OutOfMemoryIsAnErrorNamingTheBuffer) {
  auto dev = ops::NewDetachedBackend();
  ops::Buf<float> b(dev->backend(), "kv cache");
  try {
    b.resize(int64_t{1} << 50);
    FAIL() << "a 4 PiB allocation succeeded";
  } catch (const ops::OutOfMemory& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("\"kv cache\""), std::string::npos) << m;
    EXPECT_NE(m.find("asked for 4503599627370496 bytes"), std::string::npos) << m;
  }
  EXPECT_EQ(dev->live_allocations(), 0);
  // A model too large for memory (256 TiB of weights, beyond the address space
  // whatever the overcommit policy): RESOURCE_EXHAUSTED, not a crash.
  auto huge = Model::Create(
      testing::MustParse(testing::TinyQwenJson(R"({"vocab_size":67108864,"hidden_size":1048576,"head_dim":262144})")), 1,
      dev->backend());
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted) << huge.status();
  EXPECT_NE(std::string(huge.status().message()).find("model weights"), std::string::npos) << huge.status();
}

}  // namespace
}  // namespace zerorl::model
