// Finite-difference checks of the hand-written backward on a few parameters
// (router, attention, expert, embedding, norm) and of the entropy gradient,
// plus the router bias update and expert load counts.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "model/model.h"
#include "model/test_util.h"

namespace zerorl::model {
namespace {

struct Rig {
  std::unique_ptr<Model> m;
  TrainBatch b;
  std::vector<float> w;  // objective weights on logp
};

Rig MakeSetup(const std::string& json) {
  Rig s;
  s.m = std::move(*Model::Create(testing::MustParse(json), 5));
  s.b.B = 2;
  s.b.T = 7;
  s.b.lengths = {7, 5};
  std::mt19937 rng(3);
  for (int i = 0; i < 14; ++i) s.b.tokens.push_back(static_cast<int32_t>(rng() % 40));
  s.w.resize(12);
  for (auto& v : s.w) v = static_cast<float>(rng() % 1000) / 1000.f - 0.5f;
  return s;
}

double Objective(Rig& s) {
  TrainOutput out;
  EXPECT_TRUE(s.m->TrainForward(s.b, {}, &out).ok());
  double o = 0;
  for (size_t i = 0; i < s.w.size(); ++i) o += double(s.w[i]) * out.logp[i];
  return o;
}

class GradCheck : public ::testing::TestWithParam<std::string> {};

TEST_P(GradCheck, BackwardMatchesCentralDifferences) {
  Rig s = MakeSetup(GetParam());
  s.m->ZeroGrad();
  TrainOutput out;
  ASSERT_TRUE(s.m->TrainForward(s.b, {}, &out).ok());
  ASSERT_TRUE(s.m->TrainBackward(s.w.data()).ok());
  int checked = 0;
  for (auto& r : s.m->Parameters()) {
    const bool pick = r.name.find("layers.1.mlp.gate.weight") != std::string::npos ||
                      r.name.find("layers.0.self_attn.o_proj") != std::string::npos ||
                      r.name.find("kv_a_proj") != std::string::npos || r.name.find("k_proj") != std::string::npos ||
                      r.name.find("experts.3.down_proj") != std::string::npos ||
                      r.name == "model.embed_tokens.weight" || r.name == "model.norm.weight";
    if (!pick) continue;
    // The element with the largest analytic gradient (best signal to noise).
    int64_t best = 0;
    for (int64_t i = 1; i < r.size; ++i)
      if (std::fabs(r.grad[i]) > std::fabs(r.grad[best])) best = i;
    const float g = r.grad[best], orig = r.data[best], eps = 1e-2f;
    r.data[best] = orig + eps;
    double up = Objective(s);
    r.data[best] = orig - eps;
    double down = Objective(s);
    r.data[best] = orig;
    const double fd = (up - down) / (2 * eps);
    EXPECT_NEAR(fd, g, 0.03 * std::fabs(g) + 1e-4) << r.name << "[" << best << "]";
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

INSTANTIATE_TEST_SUITE_P(Families, GradCheck,
                         ::testing::Values(testing::TinyDeepseekJson(R"({"q_lora_rank":10,"n_group":2})"),
                                           testing::TinyQwenJson()));

TEST(GradCheck, EntropyGradientMatchesCentralDifferences) {
  Rig s = MakeSetup(testing::TinyQwenJson());
  s.m->ZeroGrad();
  TrainOptions o;
  o.entropy = true;
  TrainOutput out;
  ASSERT_TRUE(s.m->TrainForward(s.b, o, &out).ok());
  std::vector<float> zero(12, 0.f);
  ASSERT_TRUE(s.m->TrainBackward(zero.data(), s.w.data()).ok());
  auto params = s.m->Parameters();
  TensorRef& r = params.back();  // lm_head
  int64_t best = 0;
  for (int64_t i = 1; i < r.size; ++i)
    if (std::fabs(r.grad[i]) > std::fabs(r.grad[best])) best = i;
  auto obj = [&] {
    TrainOutput o2;
    EXPECT_TRUE(s.m->TrainForward(s.b, o, &o2).ok());
    double v = 0;
    for (int i = 0; i < 12; ++i) v += double(s.w[i]) * o2.entropy[i];
    return v;
  };
  const float orig = r.data[best], eps = 1e-2f;
  r.data[best] = orig + eps;
  double up = obj();
  r.data[best] = orig - eps;
  double down = obj();
  r.data[best] = orig;
  EXPECT_NEAR((up - down) / (2 * eps), r.grad[best], 0.03 * std::fabs(r.grad[best]) + 1e-4);
}

TEST(RouterBias, LoadsCountRealTokensAndBiasMovesTowardBalance) {
  Rig s = MakeSetup(testing::TinyDeepseekJson());
  TrainOutput out;
  ASSERT_TRUE(s.m->TrainForward(s.b, {}, &out).ok());
  const auto& loads = s.m->ExpertLoads();
  ASSERT_EQ(loads.size(), 2u);
  EXPECT_TRUE(loads[0].empty());  // dense first layer
  int64_t total = 0;
  for (int64_t v : loads[1]) total += v;
  EXPECT_EQ(total, (7 + 5) * 2);  // real tokens x top-2
  auto params = s.m->Parameters();
  float* bias = nullptr;
  for (auto& r : params)
    if (r.name == "model.layers.1.mlp.gate.e_score_correction_bias") {
      bias = r.data;
      EXPECT_FALSE(r.trainable);
    }
  ASSERT_NE(bias, nullptr);
  std::vector<float> before(bias, bias + 8);
  s.m->UpdateRouterBias(0.01f);
  const double mean = total / 8.0;
  for (int e = 0; e < 8; ++e) {
    const float want = loads[1][e] < mean ? 0.01f : loads[1][e] > mean ? -0.01f : 0.f;
    EXPECT_FLOAT_EQ(bias[e] - before[e], want) << e;
  }
}

}  // namespace
}  // namespace zerorl::model
