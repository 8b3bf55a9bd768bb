// Bad and edge input to RewardSpec (issue 16): an explicit 0 is kept (or
// refused by name) for every option whose default is not 0, an explicit
// `accuracy: false` counts, non-finite numbers are refused.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/config.h"
#include "reward/reward_spec.h"
#include "reward/spec_test_env.h"

namespace zerorl::reward {
namespace {

using ::testing::HasSubstr;
using zerorl::v1::RewardSpec;
using zerorl::v1::ScoreItem;

absl::StatusOr<std::shared_ptr<const CompiledSpec>> Compile(const std::string& yaml) {
  auto spec = ParseRewardSpecYaml(yaml, "spec.yaml");
  if (!spec.ok()) return spec.status();
  return CompiledSpec::Compile(*spec, TestSpecEnvironment());
}

// nums {2, 5, 6}, target 20.
ScoreItem Countdown(const std::string& answer) {
  ScoreItem it;
  it.set_completion("<think>x</think> <answer>" + answer + "</answer>");
  auto* t = it.mutable_answer()->mutable_countdown();
  t->add_nums(2), t->add_nums(5), t->add_nums(6), t->set_target(20);
  return it;
}

// The finding: `well_formed: 0.0` became 0.1, so wrong answers still earned 0.1.
TEST(RewardSpecInput, CountdownWellFormedZeroStaysZero) {
  auto dflt = Compile("terms:\n  - {kind: countdown}\n");
  ASSERT_TRUE(dflt.ok()) << dflt.status();
  EXPECT_DOUBLE_EQ((*dflt)->Score(Countdown("2 + 5 + 6")).reward(), 0.1);  // unset: the default
  auto zero = Compile("terms:\n  - kind: countdown\n    countdown: {correct: 2.0, well_formed: 0.0}\n");
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_DOUBLE_EQ((*zero)->spec().terms(0).countdown().well_formed(), 0.0);
  EXPECT_DOUBLE_EQ((*zero)->Score(Countdown("2 + 5 + 6")).reward(), 0.0);
  EXPECT_DOUBLE_EQ((*zero)->Score(Countdown("(6 - 2) * 5")).reward(), 2.0);
}

// `weight: 0` switches a term off (it became 1.0).
TEST(RewardSpecInput, WeightZeroSwitchesATermOff) {
  auto c = Compile("terms:\n  - {kind: countdown}\n  - {kind: format, weight: 0}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ((*c)->spec().terms(0).weight(), 1.0);  // unset: the default
  EXPECT_DOUBLE_EQ((*c)->spec().terms(1).weight(), 0.0);
  auto r = (*c)->Score(Countdown("(6 - 2) * 5"));
  EXPECT_DOUBLE_EQ(r.terms(1).value(), 1.0);  // well formatted, but weighs nothing
  EXPECT_DOUBLE_EQ(r.reward(), 1.0);
}

// A compiled spec echoes an explicit zero back (what `zerorlctl reward set` prints).
TEST(RewardSpecInput, ExplicitZeroSurvivesTheYamlRoundTrip) {
  auto c = Compile("terms:\n  - kind: countdown\n    weight: 0\n    countdown: {well_formed: 0}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  auto back = ParseRewardSpecYaml(MessageToYaml((*c)->spec()), "echo.yaml");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->terms(0).has_weight());
  EXPECT_DOUBLE_EQ(back->terms(0).weight(), 0.0);
  EXPECT_DOUBLE_EQ(back->terms(0).countdown().well_formed(), 0.0);
}

// Every option with a non-zero default, written as 0: kept as 0, or refused
// with an error naming it — never silently the default.
TEST(RewardSpecInput, AnExplicitZeroIsKeptOrRefusedForEveryOption) {
  struct Case {
    std::string term;   // YAML of one term
    std::string field;  // what an error must name
    std::function<double(const zerorl::v1::RewardTerm&)> value;
  };
  const std::vector<Case> cases = {
      {"{kind: math, weight: 0}", "weight", [](const auto& t) { return t.weight(); }},
      {"{kind: math, math: {rel_tolerance: 0}}", "rel_tolerance", [](const auto& t) { return t.math().rel_tolerance(); }},
      {"{kind: countdown, countdown: {correct: 0, well_formed: 0}}", "correct",
       [](const auto& t) { return t.countdown().correct(); }},
      {"{kind: countdown, countdown: {well_formed: 0}}", "well_formed",
       [](const auto& t) { return t.countdown().well_formed(); }},
      {"{kind: countdown, countdown: {correct: 0}}", "correct", [](const auto& t) { return t.countdown().correct(); }},
      {"{kind: overlong, overlong: {max_tokens: 0}}", "max_tokens", [](const auto& t) { return t.overlong().max_tokens(); }},
      {"{kind: overlong, overlong: {max_tokens: 100, buffer_tokens: 0}}", "buffer_tokens",
       [](const auto& t) { return t.overlong().buffer_tokens(); }},
      {"{kind: length, length: {per_token: 0}}", "per_token", [](const auto& t) { return t.length().per_token(); }},
      {"{kind: python, python: {file: /nonexistent.py, timeout_s: 0}}", "timeout_s",
       [](const auto& t) { return t.python().timeout_s(); }},
  };
  int kept = 0, refused = 0;
  for (const Case& c : cases) {
    auto compiled = Compile("terms:\n  - " + c.term + "\n");
    if (compiled.ok()) {
      EXPECT_EQ(c.value((*compiled)->spec().terms(0)), 0.0) << c.term;
      ++kept;
    } else {
      EXPECT_THAT(compiled.status().message(), HasSubstr(c.field)) << c.term;
      ++refused;
    }
  }
  EXPECT_GE(kept, 4);
  EXPECT_GE(refused, 3);
}

// `accuracy: false` on a countdown term was the same as unset (countdown decides).
TEST(RewardSpecInput, ExplicitAccuracyFalseCounts) {
  auto dflt = Compile("terms:\n  - {kind: countdown}\n  - {kind: format}\n");
  ASSERT_TRUE(dflt.ok()) << dflt.status();
  EXPECT_TRUE((*dflt)->Score(Countdown("(6 - 2) * 5")).correct());
  auto off = Compile("terms:\n  - {kind: countdown, accuracy: false}\n  - {kind: format}\n");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE((*off)->Score(Countdown("(6 - 2) * 5")).correct());
  auto fmt = Compile("terms:\n  - {kind: countdown}\n  - {kind: format, accuracy: true}\n");
  ASSERT_TRUE(fmt.ok()) << fmt.status();
  EXPECT_TRUE((*fmt)->Score(Countdown("2 + 5 + 6")).correct());  // format decides alone
}

TEST(RewardSpecInput, NonFiniteNumbersAreRefusedByName) {
  for (const char* v : {".nan", "-nan", ".inf", "-.inf"}) {
    auto c = Compile(std::string("terms:\n  - {kind: countdown, weight: ") + v + "}\n");
    ASSERT_FALSE(c.ok()) << v;
    EXPECT_THAT(c.status().message(), HasSubstr("terms[0].weight")) << v;
  }
  RewardSpec spec;
  auto* t = spec.add_terms();
  t->set_kind(zerorl::v1::TERM_KIND_COUNTDOWN);
  t->mutable_countdown()->set_well_formed(std::nan(""));
  auto c = CompiledSpec::Compile(spec, TestSpecEnvironment());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("terms[0].countdown.well_formed: must be a finite number"));
}

}  // namespace
}  // namespace zerorl::reward
