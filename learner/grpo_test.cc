// GRPO math against the PyTorch reference (tests/reference/grpo/grpo_reference.py):
// advantages, loss, metrics and dloss/dlogp for every aggregation mode, with and
// without KL and with clipping active or not, and with the off-policy
// correction (tis / mis, token / sequence level). Plus micro-batch
// additivity and hand-checked truncation and masking.
#include "learner/grpo.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/testing/subprocess.h"

namespace zerorl::grpo {
namespace {

struct Case {
  std::vector<std::vector<double>> rewards;
  std::vector<std::vector<float>> logp, old, ref;
  std::vector<std::vector<float>> rollout;  // empty: no off-policy correction inputs
  LossOptions loss;
  AdvantageOptions adv;
  IsOptions is;
  std::string agg_name;
};

const char* IsName(IsCorrection c) {
  return c == IsCorrection::kTis ? "tis" : c == IsCorrection::kMis ? "mis" : "none";
}

// Rollout logprobs = old + N(0, sigma) per token (the engine mismatch).
void AddRollout(Case* c, uint64_t seed, double sigma, IsCorrection corr, IsLevel level, double cap, double low) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(0.0, sigma);
  c->rollout.clear();
  for (const auto& row : c->old) {
    std::vector<float> r;
    for (float x : row) r.push_back(static_cast<float>(x + n(rng)));
    c->rollout.push_back(r);
  }
  c->is.correction = corr;
  c->is.level = level;
  c->is.cap = cap;
  c->is.mask_low = low;
}

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

nlohmann::json ToJsonWithCorrection(const Case& c) {
  nlohmann::json j = ToJson(c);
  if (c.rollout.empty()) return j;
  j["logp_rollout"] = c.rollout;
  j["is_correction"] = IsName(c.is.correction);
  j["is_level"] = c.is.level == IsLevel::kSequence ? "sequence" : "token";
  j["is_cap"] = c.is.cap;
  j["is_mask_low"] = c.is.mask_low;
  return j;
}

struct Result {
  std::vector<double> adv;
  LossSums sums;
  MismatchSums mismatch;
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
  std::vector<std::vector<double>> is_weight(c.logp.size());
  r.grad.resize(c.logp.size());
  for (size_t i = 0; i < c.logp.size(); ++i) {
    r.grad[i].assign(c.logp[i].size(), 0.f);
    seqs.push_back({c.logp[i].data(), c.old[i].data(), c.ref[i].data(), lengths[i], r.adv[i], (*w)[i]});
    d.push_back(r.grad[i].data());
    if (c.rollout.empty()) continue;
    // As the trainer does: the weights feed the loss only when a correction is on.
    is_weight[i].resize(lengths[i]);
    const absl::Status st =
        RolloutCorrection(c.old[i].data(), c.rollout[i].data(), lengths[i], c.is, is_weight[i].data(), &r.mismatch);
    EXPECT_TRUE(st.ok()) << st;
    if (c.is.correction != IsCorrection::kNone) seqs.back().is_weight = is_weight[i].data();
  }
  auto s = TokenLoss(seqs, c.loss, d);
  EXPECT_TRUE(s.ok()) << s.status();
  r.sums = *s;
  return r;
}

// One python run for every case (importing torch dominates the cost).
// dloss/dlogp of every token against the reference's "grad" (relative 1e-6),
// and not all zero.
void ExpectGradientMatches(const Result& ours, const nlohmann::json& r) {
  double gmax = 0;
  for (size_t i = 0; i < ours.grad.size(); ++i)
    for (size_t t = 0; t < ours.grad[i].size(); ++t) {
      const double g = r["grad"][i][t].get<double>();
      gmax = std::max(gmax, std::fabs(g));
      EXPECT_NEAR(ours.grad[i][t], g, 1e-6 * std::max(1.0, std::fabs(g))) << "seq " << i << " tok " << t;
    }
  EXPECT_GT(gmax, 0.0);
}

nlohmann::json RunReference(const std::vector<Case>& cases) {
  nlohmann::json in = nlohmann::json::array();
  for (auto& c : cases) in.push_back(ToJsonWithCorrection(c));
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
    ExpectGradientMatches(ours, r);
  }
}

// Loss, gradient and diagnostics with tis and mis at token and sequence level
// (plus none with rollout logprobs given) against the reference.
TEST(GrpoTest, OffPolicyCorrectionMatchesPyTorch) {
  std::vector<Case> cases;
  uint64_t seed = 200;
  for (IsCorrection corr : {IsCorrection::kTis, IsCorrection::kMis})
    for (IsLevel level : {IsLevel::kToken, IsLevel::kSequence})
      for (Aggregation agg : {Aggregation::kGrpo, Aggregation::kDapo, Aggregation::kDrGrpo}) {
        cases.push_back(RandomCase(seed, agg, agg == Aggregation::kDapo ? 0.1 : 0.0, true));
        // Token ratios spread around 1 so the default bounds truncate or mask
        // some tokens; at sequence level the products spread much wider, so
        // tighter bounds leave some sequences inside them.
        if (level == IsLevel::kToken)
          AddRollout(&cases.back(), seed, 0.5, corr, level, 2.0, 0.5);
        else
          AddRollout(&cases.back(), seed, 0.25, corr, level, 1.5, 0.7);
        ++seed;
      }
  cases.push_back(RandomCase(300, Aggregation::kDapo, 0.1, true));
  AddRollout(&cases.back(), 300, 0.5, IsCorrection::kNone, IsLevel::kToken, 2.0, 0.5);

  const nlohmann::json ref = RunReference(cases);
  ASSERT_EQ(ref.size(), cases.size());
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    SCOPED_TRACE(absl::StrCat("case ", k, " ", IsName(c.is.correction), " ",
                              c.is.level == IsLevel::kSequence ? "sequence" : "token", " ", c.agg_name,
                              " beta=", c.loss.beta));
    const Result ours = RunOurs(c);
    const auto& r = ref[k];
    EXPECT_NEAR(ours.sums.loss, r["loss"].get<double>(), 1e-6);
    EXPECT_NEAR(ours.sums.pg_loss, r["pg_loss"].get<double>(), 1e-6);
    EXPECT_NEAR(ours.sums.kl, r["kl"].get<double>(), 1e-6);
    EXPECT_NEAR(ours.mismatch.k3 / ours.mismatch.tokens, r["rollout_train_kl"].get<double>(), 1e-9);
    EXPECT_NEAR(ours.mismatch.abs_diff_max, r["rollout_train_logprob_abs_diff_max"].get<double>(), 1e-9);
    const double frac = ours.mismatch.corrected / ours.mismatch.tokens;
    EXPECT_NEAR(frac, r["is_clip_frac"].get<double>(), 1e-12);
    if (c.is.correction == IsCorrection::kNone) {
      EXPECT_EQ(frac, 0.0);
    } else {
      EXPECT_GT(frac, 0.0) << "no weight truncated or masked: weak case";
      EXPECT_LT(frac, 1.0) << "every weight truncated or masked: weak case";
    }
    ExpectGradientMatches(ours, r);
  }
  // none: the rollout logprobs only feed the diagnostics; the loss and the
  // gradient are bit-identical to a run without them.
  Case plain = cases.back();
  plain.rollout.clear();
  const Result with = RunOurs(cases.back()), without = RunOurs(plain);
  EXPECT_EQ(with.sums.loss, without.sums.loss);
  EXPECT_EQ(with.grad, without.grad);
  EXPECT_GT(with.mismatch.k3, 0.0);
}

// One sequence of three tokens, π_old / π_rollout = 0.3, 1, 3 (token level)
// and a second of one token at 1.25: hand-computed weights.
TEST(GrpoTest, OffPolicyCorrectionTruncatesAndMasksWhereItShould) {
  const std::vector<float> old = {-1.f, -2.f, -0.5f};
  const std::vector<float> rollout = {static_cast<float>(-1.0 - std::log(0.3)), -2.f,
                                      static_cast<float>(-0.5 - std::log(3.0))};
  auto weights = [&](IsCorrection c, IsLevel l, MismatchSums* m) {
    IsOptions o;
    o.correction = c;
    o.level = l;
    std::vector<double> w(3, -1.0);
    EXPECT_TRUE(RolloutCorrection(old.data(), rollout.data(), 3, o, w.data(), m).ok());
    return w;
  };
  MismatchSums tis, mis, none, seq;
  std::vector<double> w = weights(IsCorrection::kTis, IsLevel::kToken, &tis);
  EXPECT_NEAR(w[0], 0.3, 1e-6);
  EXPECT_NEAR(w[1], 1.0, 1e-12);
  EXPECT_EQ(w[2], 2.0) << "3 is truncated at the cap";
  EXPECT_EQ(tis.corrected, 1);
  w = weights(IsCorrection::kMis, IsLevel::kToken, &mis);
  EXPECT_EQ(w[0], 0.0) << "0.3 is below is_mask_low 0.5";
  EXPECT_NEAR(w[1], 1.0, 1e-12);
  EXPECT_EQ(w[2], 0.0) << "3 is above is_cap 2";
  EXPECT_EQ(mis.corrected, 2);
  w = weights(IsCorrection::kNone, IsLevel::kToken, &none);
  EXPECT_EQ(w, std::vector<double>(3, 1.0));
  EXPECT_EQ(none.corrected, 0);
  EXPECT_EQ(none.tokens, 3);
  EXPECT_NEAR(none.abs_diff_max, -std::log(0.3), 1e-5);  // |log 0.3| = 1.204 > |log 3| = 1.099
  // k3 = Σ (w − log w − 1) over the three tokens.
  EXPECT_NEAR(none.k3, (0.3 - std::log(0.3) - 1) + (3 - std::log(3.0) - 1), 1e-5);
  // Sequence level: one weight, 0.3·1·3 = 0.9, inside every bound.
  w = weights(IsCorrection::kMis, IsLevel::kSequence, &seq);
  for (double x : w) EXPECT_NEAR(x, 0.9, 1e-5);
  EXPECT_EQ(seq.corrected, 0);
  // A sequence whose product, 3·3 = 9, is out of bounds: all its tokens go.
  const std::vector<float> hi = {static_cast<float>(-1.0 - std::log(3.0)), static_cast<float>(-2.0 - std::log(3.0)),
                                 -0.5f};
  IsOptions o;
  o.correction = IsCorrection::kMis;
  o.level = IsLevel::kSequence;
  std::vector<double> wm(3);
  MismatchSums m;
  ASSERT_TRUE(RolloutCorrection(old.data(), hi.data(), 3, o, wm.data(), &m).ok());
  EXPECT_EQ(wm, std::vector<double>(3, 0.0));
  EXPECT_EQ(m.corrected, 3);
  o.correction = IsCorrection::kTis;
  ASSERT_TRUE(RolloutCorrection(old.data(), hi.data(), 3, o, wm.data(), &m).ok());
  EXPECT_EQ(wm, std::vector<double>(3, 2.0));

  // In the loss: a masked token gets no policy gradient, a kept one ω times
  // the uncorrected gradient, a truncated one cap times it.
  std::vector<float> g_plain(3), g_mis(3), g_tis(3);
  std::vector<double> w_mis = weights(IsCorrection::kMis, IsLevel::kToken, &m);
  std::vector<double> w_tis = weights(IsCorrection::kTis, IsLevel::kToken, &m);
  LossOptions lo;
  SequenceView v{old.data(), old.data(), nullptr, 3, 1.0, 1.0 / 3};
  ASSERT_TRUE(TokenLoss({v}, lo, {g_plain.data()}).ok());
  v.is_weight = w_mis.data();
  auto s_mis = TokenLoss({v}, lo, {g_mis.data()});
  v.is_weight = w_tis.data();
  ASSERT_TRUE(TokenLoss({v}, lo, {g_tis.data()}).ok());
  ASSERT_TRUE(s_mis.ok());
  EXPECT_EQ(g_mis[0], 0.f);
  EXPECT_EQ(g_mis[1], g_plain[1]);
  EXPECT_EQ(g_mis[2], 0.f);
  EXPECT_NEAR(s_mis->loss, -1.0 / 3, 1e-12) << "only the kept token (ratio 1, A = 1) counts";
  EXPECT_NEAR(g_tis[0], 0.3 * g_plain[0], 1e-6);
  EXPECT_EQ(g_tis[2], 2 * g_plain[2]);
}

TEST(GrpoTest, OffPolicyCorrectionRefusesNonFiniteLogprobs) {
  const std::vector<float> old = {-1.f, -2.f}, rollout = {-1.f, -std::numeric_limits<float>::infinity()};
  std::vector<double> w(2);
  MismatchSums m;
  IsOptions o;
  o.correction = IsCorrection::kTis;
  const absl::Status st = RolloutCorrection(old.data(), rollout.data(), 2, o, w.data(), &m);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("token 1"), std::string::npos) << st;
  EXPECT_EQ(m.tokens, 0) << "a refused sequence adds nothing";
  EXPECT_FALSE(RolloutCorrection(old.data(), nullptr, 2, o, w.data(), &m).ok());
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
