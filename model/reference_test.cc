// The C++ model against the PyTorch reference (tests/reference/ref_model.py)
// on tiny random configs of both families: logits, logp, entropy, balance
// loss and the gradient of every parameter, per tensor
// max|C++ - ref| / max|ref| <= 1e-4; and the same under routing replay
// (recorded experts forced on most (token, layer) pairs), plus the replayed
// and mismatched pair counts.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "model/routing_record.h"
#include "model/test_util.h"
#include "tests/testing/subprocess.h"

namespace zerorl::model {
namespace {

using testing::TinyDeepseekJson;
using testing::TinyQwenJson;

struct Case {
  std::string name;
  std::string config;
  float alpha = 0.f;
  bool entropy = false;
};

float RelErr(const float* a, const float* ref, int64_t n) {
  float md = 0.f, mr = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    md = std::max(md, std::fabs(a[i] - ref[i]));
    mr = std::max(mr, std::fabs(ref[i]));
  }
  return mr == 0.f ? md : md / mr;
}

class ReferenceTest : public ::testing::TestWithParam<Case> {};

// replay: force random recorded experts (distinct, ignoring group limits) on
// ~70% of the (token, MoE layer) pairs, the rest route themselves.
void CheckAgainstReference(const Case& tc, bool replay) {
  auto model = Model::Create(testing::MustParse(tc.config), 1234);
  ASSERT_TRUE(model.ok()) << model.status();
  Model& m = **model;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (auto& r : m.Parameters())  // make norms, biases non-trivial so their paths are tested
    if (r.shape.size() == 1)
      for (int64_t i = 0; i < r.size; ++i)
        r.data[i] = r.name.find("correction_bias") != std::string::npos ? 0.05f * u(rng) : 1.f + 0.2f * u(rng);
  const std::string dir = zerorl::testing::MakeTempDir((replay ? "ref-replay-" : "ref-") + tc.name);
  ASSERT_TRUE(m.Save(dir + "/model").ok());

  TrainBatch batch;
  batch.B = 3;
  batch.T = 9;
  batch.lengths = {9, 6, 2};
  std::uniform_int_distribution<int> tok(0, static_cast<int>(m.config().vocab_size) - 1);
  for (int64_t i = 0; i < batch.B * batch.T; ++i) batch.tokens.push_back(tok(rng));
  std::vector<float> dlogp(batch.B * (batch.T - 1)), dent(dlogp.size());
  for (auto& v : dlogp) v = u(rng);
  for (auto& v : dent) v = u(rng);
  nlohmann::json bj = {{"B", batch.B}, {"T", batch.T}, {"tokens", batch.tokens}, {"lengths", batch.lengths},
                       {"dlogp", dlogp}, {"alpha", tc.alpha}};
  if (tc.entropy) bj["dentropy"] = dent;
  if (replay) {
    const int64_t layers = MoeLayerCount(m.config()), K = m.config().num_experts_per_tok;
    const int64_t E = m.config().n_routed_experts;
    std::vector<int32_t> experts(E);
    std::bernoulli_distribution use(0.7);
    for (int64_t s = 0; s < batch.B * batch.T * layers; ++s) {
      std::iota(experts.begin(), experts.end(), 0);
      std::shuffle(experts.begin(), experts.end(), rng);
      const bool forced = use(rng);
      for (int64_t k = 0; k < K; ++k) batch.routed_experts.push_back(forced ? experts[k] : -1);
    }
    bj["routed_experts"] = batch.routed_experts;
  }
  std::ofstream(dir + "/batch.json") << bj.dump();

  TrainOptions opt;
  opt.entropy = true;
  opt.keep_logits = true;
  opt.balance_alpha = tc.alpha;
  TrainOutput out;
  m.ZeroGrad();
  ASSERT_TRUE(m.TrainForward(batch, opt, &out).ok());
  ASSERT_TRUE(m.TrainBackward(dlogp.data(), tc.entropy ? dent.data() : nullptr).ok());

  std::string log;
  ASSERT_EQ(testing::RunReference({"check", "--model", dir + "/model", "--batch", dir + "/batch.json", "--out",
                                   dir + "/ref.safetensors"},
                                  &log),
            0)
      << log;
  auto ref = SafetensorsReader::Open(dir + "/ref.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status();
  auto compare = [&](const std::string& name, const std::vector<int64_t>& shape, const float* ours) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<float> r(n);
    ASSERT_TRUE((*ref)->ReadF32(name, shape, r.data()).ok()) << name;
    EXPECT_LE(RelErr(ours, r.data(), n), 1e-4f) << name;
  };
  const int64_t V = m.config().vocab_size;
  compare("logits", {batch.B, batch.T, V}, out.logits.data());
  compare("logp", {batch.B, batch.T - 1}, out.logp.data());
  compare("entropy", {batch.B, batch.T - 1}, out.entropy.data());
  if (tc.alpha > 0) {
    EXPECT_GT(out.balance_loss, 0.f);
    compare("balance_loss", {1}, &out.balance_loss);
  }
  int checked = 0;
  for (const auto& r : m.Parameters()) {
    if (!r.trainable) continue;
    compare("grad." + r.name, r.shape, r.grad);
    ++checked;
  }
  EXPECT_GT(checked, 10);
  if (replay) {
    float replayed = 0, mismatched = 0;
    ASSERT_TRUE((*ref)->ReadF32("replayed", {1}, &replayed).ok());
    ASSERT_TRUE((*ref)->ReadF32("mismatched", {1}, &mismatched).ok());
    EXPECT_EQ(out.replayed_routes, static_cast<int64_t>(replayed));
    EXPECT_EQ(out.mismatched_routes, static_cast<int64_t>(mismatched));
    EXPECT_GT(out.mismatched_routes, 0);  // random picks differ from the router's
    EXPECT_GT(out.replayed_routes, out.mismatched_routes / 2);
  }
}

TEST_P(ReferenceTest, LogitsLossAndEveryGradientMatchPyTorch) {
  if (!testing::HaveTorch()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
  CheckAgainstReference(GetParam(), /*replay=*/false);
}

TEST_P(ReferenceTest, ReplayedRoutingMatchesPyTorch) {
  if (!testing::HaveTorch()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
  CheckAgainstReference(GetParam(), /*replay=*/true);
}

INSTANTIATE_TEST_SUITE_P(
    Configs, ReferenceTest,
    ::testing::Values(
        Case{"mla_sigmoid_shared", TinyDeepseekJson()},
        Case{"mla_qlora_softmax_groups_noshared",
             TinyDeepseekJson(R"({"q_lora_rank":10,"scoring_func":"softmax","n_shared_experts":0,"n_group":4,
               "topk_group":2,"norm_topk_prob":false,"routed_scaling_factor":2.5,"first_k_dense_replace":0})"),
             0.f, true},
        Case{"mla_groups_balance_loss",
             TinyDeepseekJson(R"({"q_lora_rank":10,"n_group":2,"topk_group":1,"num_experts_per_tok":3})"), 0.01f},
        Case{"mla_greedy_top1", TinyDeepseekJson(R"({"topk_method":"greedy","num_experts_per_tok":1})")},
        Case{"gqa_norm_topk", TinyQwenJson(), 0.f, true},
        Case{"gqa_tied_sparse_step", TinyQwenJson(R"({"tie_word_embeddings":true,"norm_topk_prob":false,
               "decoder_sparse_step":2,"num_hidden_layers":4,"mlp_only_layers":[3]})"),
             0.02f}),
    [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

}  // namespace
}  // namespace zerorl::model
