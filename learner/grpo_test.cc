// GRPO math against the PyTorch reference (tests/reference/grpo/grpo_reference.py):
// advantages, loss, metrics and dloss/dlogp for every aggregation mode, with and
// without KL and with clipping active or not. Plus micro-batch additivity.
#include "learner/grpo.h"

#include <cmath>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/testing/subprocess.h"

namespace zerorl::grpo {
namespace {

struct Case {
  std::vector<std::vector<double>> rewards;
  std::vector<std::vector<float>> logp, old, ref;
  LossOptions loss;
  AdvantageOptions adv;
  std::string agg_name;
};

Case RandomCase(uint64_t seed, Aggregation agg, double beta, bool clip) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::normal_distribution<double> n(0.0, 1.0);
  Case c;
  c.loss.aggregation = agg;
  c.loss.beta = beta;
  c.loss.clip_low = clip ? 0.2 : 1e6;
  c.loss.clip_high = clip ? 0.28 : 1e6;
  c.loss.max_new_tokens = 12;
  c.agg_name = agg == Aggregation::kGrpo ? "grpo" : agg == Aggregation::kDapo ? "dapo" : "dr_grpo";
  for (int g = 0; g < 3; ++g) {
    c.rewards.emplace_back();
    for (int i = 0; i < 4; ++i) {
      c.rewards.back().push_back(std::round(u(rng) * 3) / 3.0);
      const int len = 1 + static_cast<int>(u(rng) * 12);
      std::vector<float> lp, ol, rf;
      for (int t = 0; t < len; ++t) {
        const double x = -0.05 - 3.0 * u(rng);
        lp.push_back(static_cast<float>(x));
        ol.push_back(static_cast<float>(x + 0.35 * n(rng)));
        rf.push_back(static_cast<float>(x + 0.25 * n(rng)));
      }
      c.logp.push_back(lp);
      c.old.push_back(ol);
      c.ref.push_back(rf);
    }
  }
  return c;
}

nlohmann::json ToJson(const Case& c) {
  return {{"logp", c.logp},
          {"logp_old", c.old},
          {"logp_ref", c.ref},
          {"rewards", c.rewards},
          {"clip_low", c.loss.clip_low},
          {"clip_high", c.loss.clip_high},
          {"beta", c.loss.beta},
          {"aggregation", c.agg_name},
          {"max_new_tokens", c.loss.max_new_tokens},
          {"std_normalize", c.adv.std_normalize},
          {"batch_normalize", c.adv.batch_normalize},
          {"adv_eps", c.adv.eps}};
}

struct Result {
  std::vector<double> adv;
  LossSums sums;
  std::vector<std::vector<float>> grad;
};

Result RunOurs(const Case& c) {
  Result r;
  auto adv = GroupAdvantages(c.rewards, c.adv);
  EXPECT_TRUE(adv.ok()) << adv.status();
  for (auto& g : *adv) r.adv.insert(r.adv.end(), g.begin(), g.end());
  std::vector<int> lengths;
  for (auto& l : c.logp) lengths.push_back(static_cast<int>(l.size()));
  auto w = SequenceWeights(lengths, c.loss);
  EXPECT_TRUE(w.ok()) << w.status();
  std::vector<SequenceView> seqs;
  std::vector<float*> d;
  r.grad.resize(c.logp.size());
  for (size_t i = 0; i < c.logp.size(); ++i) {
    r.grad[i].assign(c.logp[i].size(), 0.f);
    seqs.push_back({c.logp[i].data(), c.old[i].data(), c.ref[i].data(), lengths[i], r.adv[i], (*w)[i]});
    d.push_back(r.grad[i].data());
  }
  auto s = TokenLoss(seqs, c.loss, d);
  EXPECT_TRUE(s.ok()) << s.status();
  r.sums = *s;
  return r;
}

// One python run for every case (importing torch dominates the cost).
nlohmann::json RunReference(const std::vector<Case>& cases) {
  nlohmann::json in = nlohmann::json::array();
  for (auto& c : cases) in.push_back(ToJson(c));
  const std::string dir = testing::MakeTempDir("grpo_ref");
  const std::string path = dir + "/cases.json";
  std::ofstream(path) << in.dump();
  std::string out;
  const int rc = testing::RunCommand(
      {"/usr/bin/python3", testing::SourceDir() + "/tests/reference/grpo/grpo_reference.py", path}, &out);
  EXPECT_EQ(rc, 0) << out;
  return nlohmann::json::parse(out);
}

TEST(GrpoTest, MatchesPyTorchForEveryModeWithAndWithoutKlAndClipping) {
  std::vector<Case> cases;
  uint64_t seed = 1;
  for (Aggregation agg : {Aggregation::kGrpo, Aggregation::kDapo, Aggregation::kDrGrpo})
    for (double beta : {0.0, 0.1})
      for (bool clip : {true, false}) cases.push_back(RandomCase(seed++, agg, beta, clip));
  // Advantage variants ride along on the dapo case.
  cases.push_back(RandomCase(100, Aggregation::kDapo, 0.04, true));
  cases.back().adv.std_normalize = false;
  cases.push_back(RandomCase(101, Aggregation::kGrpo, 0.04, true));
  cases.back().adv.batch_normalize = true;

  const nlohmann::json ref = RunReference(cases);
  ASSERT_EQ(ref.size(), cases.size());
  for (size_t k = 0; k < cases.size(); ++k) {
    SCOPED_TRACE("case " + std::to_string(k) + " " + cases[k].agg_name + " beta=" +
                 std::to_string(cases[k].loss.beta) + " clip_low=" + std::to_string(cases[k].loss.clip_low));
    const Result ours = RunOurs(cases[k]);
    const auto& r = ref[k];
    for (size_t i = 0; i < ours.adv.size(); ++i) EXPECT_NEAR(ours.adv[i], r["advantages"][i].get<double>(), 1e-9);
    const double tol = 1e-6;
    EXPECT_NEAR(ours.sums.loss, r["loss"].get<double>(), tol);
    EXPECT_NEAR(ours.sums.pg_loss, r["pg_loss"].get<double>(), tol);
    EXPECT_NEAR(ours.sums.kl, r["kl"].get<double>(), tol);
    EXPECT_NEAR(ours.sums.clipped / ours.sums.tokens, r["clip_frac"].get<double>(), 1e-12);
    if (cases[k].loss.beta > 0) {
      EXPECT_GT(ours.sums.kl, 0.0);
    }
    if (cases[k].loss.clip_low < 1) {
      EXPECT_GT(ours.sums.clipped, 0.0) << "clipping never active: weak case";
    } else {
      EXPECT_EQ(ours.sums.clipped, 0.0);
    }
    double gmax = 0;
    for (size_t i = 0; i < ours.grad.size(); ++i)
      for (size_t t = 0; t < ours.grad[i].size(); ++t) {
        const double g = r["grad"][i][t].get<double>();
        gmax = std::max(gmax, std::fabs(g));
        EXPECT_NEAR(ours.grad[i][t], g, 1e-6 * std::max(1.0, std::fabs(g))) << "seq " << i << " tok " << t;
      }
    EXPECT_GT(gmax, 0.0);
  }
}

TEST(GrpoTest, MicroBatchesAddUpToTheBatch) {
  Case c = RandomCase(7, Aggregation::kGrpo, 0.1, true);
  const Result full = RunOurs(c);
  std::vector<int> lengths;
  for (auto& l : c.logp) lengths.push_back(static_cast<int>(l.size()));
  auto w = SequenceWeights(lengths, c.loss);
  ASSERT_TRUE(w.ok());
  LossSums total;
  for (size_t start = 0; start < c.logp.size(); start += 5) {
    std::vector<SequenceView> seqs;
    std::vector<std::vector<float>> g;
    std::vector<float*> d;
    for (size_t i = start; i < std::min(c.logp.size(), start + 5); ++i) {
      g.emplace_back(c.logp[i].size());
      seqs.push_back({c.logp[i].data(), c.old[i].data(), c.ref[i].data(), lengths[i], full.adv[i], (*w)[i]});
    }
    for (auto& x : g) d.push_back(x.data());
    auto s = TokenLoss(seqs, c.loss, d);
    ASSERT_TRUE(s.ok());
    total.Add(*s);
    for (size_t i = start; i < start + seqs.size(); ++i) EXPECT_EQ(g[i - start], full.grad[i]);
  }
  EXPECT_NEAR(total.loss, full.sums.loss, 1e-12);
  EXPECT_EQ(total.tokens, full.sums.tokens);
}

TEST(GrpoTest, AdvantagesAndFilters) {
  auto adv = GroupAdvantages({{1, 0, 0, 1}, {2, 2}}, {});
  ASSERT_TRUE(adv.ok());
  EXPECT_GT((*adv)[0][0], 0);
  EXPECT_LT((*adv)[0][1], 0);
  EXPECT_EQ((*adv)[1][0], 0);
  EXPECT_TRUE(GroupIsUniform({2, 2}));
  EXPECT_FALSE(GroupIsUniform({1, 0, 0, 1}));
  EXPECT_FALSE(GroupAdvantages({{}}, {}).ok());
  EXPECT_FALSE(GroupAdvantages({{1, NAN}}, {}).ok());
  // Overlong: free up to max - buffer, linear ramp, full penalty beyond.
  EXPECT_EQ(OverlongPenalty(10, 100, 20, 1.0), 0.0);
  EXPECT_EQ(OverlongPenalty(80, 100, 20, 1.0), 0.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(90, 100, 20, 1.0), -0.5);
  EXPECT_DOUBLE_EQ(OverlongPenalty(100, 100, 20, 0.5), -0.5);
  EXPECT_EQ(OverlongPenalty(101, 100, 20, 1.0), -1.0);
  LossOptions dr;
  dr.aggregation = Aggregation::kDrGrpo;
  EXPECT_FALSE(SequenceWeights({3, 4}, dr).ok());
  EXPECT_FALSE(SequenceWeights({}, {}).ok());
  EXPECT_FALSE(SequenceWeights({0, 0}, {}).ok());
}

TEST(GrpoTest, RejectsMissingReferenceWhenKlIsOn) {
  std::vector<float> lp = {-1.f}, g = {0.f};
  LossOptions o;
  o.beta = 0.1;
  auto s = TokenLoss({{lp.data(), lp.data(), nullptr, 1, 1.0, 1.0}}, o, {g.data()});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("reference"), std::string::npos);
}

}  // namespace
}  // namespace zerorl::grpo
