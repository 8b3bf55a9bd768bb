// Tests of RewardSpec parsing/validation, scoring, the example specs, python
// reward terms (including crash and timeout restarts) and `zerorl score`.
#include "reward/reward_spec.h"
#include "reward/spec_test_env.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "reward/python_term.h"

namespace zerorl::reward {
namespace {

using zerorl::v1::RewardSpec;
using zerorl::v1::ScoreItem;

std::shared_ptr<const CompiledSpec> CompileYaml(const std::string& yaml) {
  auto spec = ParseRewardSpecYaml(yaml, "test.yaml");
  EXPECT_TRUE(spec.ok()) << spec.status();
  auto c = CompiledSpec::Compile(*spec, TestSpecEnvironment());
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : nullptr;
}

ScoreItem MathItem(const std::string& completion, const std::string& gold) {
  ScoreItem it;
  it.set_completion(completion);
  it.mutable_answer()->set_math(gold);
  return it;
}

std::string WriteTemp(const std::string& name, const std::string& content) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << content;
  return path;
}

TEST(RewardSpec, ExampleSpecsLoadAndValidate) {
  for (const char* f : {"math", "r1zero-math", "countdown", "code"}) {
    auto spec = LoadRewardSpecFile(std::string(ZERORL_SOURCE_DIR) + "/examples/rewards/" + f + ".yaml");
    ASSERT_TRUE(spec.ok()) << f << ": " << spec.status();
    auto c = CompiledSpec::Compile(*spec, TestSpecEnvironment());
    EXPECT_TRUE(c.ok()) << f << ": " << c.status();
  }
}

TEST(RewardSpec, WeightedSumAndCorrectness) {
  auto c = CompileYaml("name: t\nterms:\n  - {kind: math, weight: 1.0}\n  - {kind: format, weight: 0.5}\n");
  ASSERT_NE(c, nullptr);
  auto r = c->Score(MathItem("x </think> <answer>\\boxed{18}</answer>", "18"));
  EXPECT_DOUBLE_EQ(r.reward(), 1.5);
  EXPECT_TRUE(r.correct());
  ASSERT_EQ(r.terms_size(), 2);
  EXPECT_EQ(r.terms(0).name(), "math");
  EXPECT_EQ(r.terms(0).verdict(), "correct");
  auto wrong = c->Score(MathItem("\\boxed{17}", "18"));
  EXPECT_DOUBLE_EQ(wrong.reward(), 0.0);
  EXPECT_FALSE(wrong.correct());
  // Wrong answer type: the term reports an error, scoring goes on.
  ScoreItem cd;
  cd.set_completion("<answer>1+2</answer>");
  cd.mutable_answer()->mutable_countdown()->add_nums(1);
  auto mismatch = c->Score(cd);
  EXPECT_EQ(mismatch.terms(0).verdict(), "error");
}

TEST(RewardSpec, ValidationNamesTheProblem) {
  auto bad = [](const std::string& yaml) {
    auto spec = ParseRewardSpecYaml(yaml, "bad.yaml");
    if (!spec.ok()) return std::string(spec.status().message());
    auto c = CompiledSpec::Compile(*spec, TestSpecEnvironment());
    return c.ok() ? std::string("OK") : std::string(c.status().message());
  };
  EXPECT_NE(bad("name: x\n").find("no terms"), std::string::npos);
  EXPECT_NE(bad("terms:\n  - {weight: 1}\n").find("terms[0].kind"), std::string::npos);
  EXPECT_NE(bad("terms:\n  - {kind: math, math: {extractors: [regex]}}\n").find("unknown extractor"), std::string::npos);
  EXPECT_NE(bad("terms:\n  - {kind: math}\n  - {kind: math}\n").find("duplicate"), std::string::npos);
  EXPECT_NE(bad("terms:\n  - {kind: language_consistency, language: {script: elvish}}\n").find("unknown script"),
            std::string::npos);
  EXPECT_NE(bad("terms:\n  - {kind: python, python: {file: /nonexistent.py}}\n").find("nonexistent"), std::string::npos);
  EXPECT_NE(bad("terms:\n  - {kind: mth}\n").find("kind"), std::string::npos);
  EXPECT_NE(bad("terms:\n  - {kind: math, wieght: 2}\n").find("wieght"), std::string::npos);
}

TEST(RewardSpec, ShapingTerms) {
  auto c = CompileYaml(
      "terms:\n  - {kind: overlong, overlong: {max_tokens: 100, buffer_tokens: 20}}\n"
      "  - {kind: length, length: {target_tokens: 50, per_token: 0.01}}\n"
      "  - {kind: language_consistency, weight: 0.5}\n");
  ASSERT_NE(c, nullptr);
  ScoreItem it = MathItem("<think>pure english</think><answer>1</answer>", "1");
  it.set_completion_tokens(90);
  auto r = c->Score(it);
  EXPECT_DOUBLE_EQ(r.terms(0).value(), -0.5);
  EXPECT_DOUBLE_EQ(r.terms(1).value(), -0.4);
  EXPECT_DOUBLE_EQ(r.terms(2).value(), 1.0);
  EXPECT_DOUBLE_EQ(r.reward(), -0.5 - 0.4 + 0.5);
}

TEST(RewardSpec, CountdownAndCodeTerms) {
  auto c = CompileYaml("terms:\n  - {kind: countdown}\n");
  ScoreItem it;
  it.set_completion("<answer>(6 - 2) * 5</answer>");
  auto* t = it.mutable_answer()->mutable_countdown();
  t->add_nums(2), t->add_nums(5), t->add_nums(6), t->set_target(20);
  EXPECT_DOUBLE_EQ(c->Score(it).reward(), 1.0);
  auto code = CompileYaml("terms:\n  - {kind: code}\n");
  ScoreItem ci;
  ci.set_completion("```python\nprint(int(input()) + 1)\n```");
  ci.mutable_answer()->set_code_tests_json(R"({"inputs": ["1\n", "5\n"], "outputs": ["2\n", "7\n"]})");
  auto r = code->Score(ci);
  EXPECT_DOUBLE_EQ(r.reward(), 0.5);
  EXPECT_EQ(r.terms(0).test_verdicts_size(), 2);
  EXPECT_FALSE(r.correct());
}

TEST(PythonTerm, ScoresAndSurvivesCrashAndTimeout) {
  std::string file = WriteTemp("user_reward.py",
                               "import os, time\n"
                               "def reward(prompt, completion, answer, **meta):\n"
                               "    print('noise to stdout')\n"
                               "    if completion == 'crash':\n        os._exit(3)\n"
                               "    if completion == 'hang':\n        time.sleep(30)\n"
                               "    if completion == 'raise':\n        raise RuntimeError('nope')\n"
                               "    return len(completion) + (1 if answer == 'gold' else 0) + meta['completion_tokens']\n");
  auto sb = TestSpecEnvironment().sandbox->Get();
  ASSERT_TRUE(sb.ok());
  auto term = PythonTerm::Create(*sb, file, 0.5, 2, SandboxLimits());
  ASSERT_TRUE(term.ok()) << term.status();
  auto v = (*term)->Call("p", "abc", "\"gold\"", R"({"completion_tokens": 10})");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_DOUBLE_EQ(*v, 14.0);
  EXPECT_EQ((*term)->Call("p", "crash", "null", "{}").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ((*term)->Call("p", "hang", "null", "{}").status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*term)->Call("p", "raise", "null", "{}").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*term)->restarts(), 2);
  auto again = (*term)->Call("p", "ab", "null", R"({"completion_tokens": 0})");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_DOUBLE_EQ(*again, 2.0);
}

TEST(PythonTerm, BadFileIsRefused) {
  std::string file = WriteTemp("broken_reward.py", "def reward(:\n");
  auto sb = TestSpecEnvironment().sandbox->Get();
  ASSERT_TRUE(sb.ok());
  auto term = PythonTerm::Create(*sb, file, 1, 1, SandboxLimits());
  EXPECT_EQ(term.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(term.status().message().find("SyntaxError"), std::string::npos);
  std::string nofn = WriteTemp("nofn_reward.py", "x = 1\n");
  EXPECT_FALSE(PythonTerm::Create(*sb, nofn, 1, 1, SandboxLimits()).ok());
}

TEST(PythonTerm, InSpec) {
  std::string file = WriteTemp("len_reward.py", "def reward(prompt, completion, answer, **meta):\n    return 0.25\n");
  auto c = CompileYaml("terms:\n  - {kind: python, weight: 2, python: {file: " + file + "}}\n");
  ASSERT_NE(c, nullptr);
  EXPECT_DOUBLE_EQ(c->Score(MathItem("x", "1")).reward(), 0.5);
}

}  // namespace
}  // namespace zerorl::reward
