// Dataset loaders, templates, splits and the seeded prompt sampler.
#include "orchestrator/dataset.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

namespace zerorl {
namespace {

using zerorl::v1::DatasetConfig;

std::string WriteTemp(const std::string& name, const std::string& text) {
  std::string dir = ::testing::TempDir() + "/dataset_test";
  std::filesystem::create_directories(dir);
  std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(DatasetTest, Gsm8kTakesTheFinalAnswerWithoutSeparators) {
  auto p = ParseExample(R"({"question": "How many?", "answer": "3 * 4 = 12\n#### 1,234"})",
                        zerorl::v1::DATASET_KIND_GSM8K, "x:1");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->answer().math(), "1234");
  EXPECT_EQ(p->question(), "How many?");
}

TEST(DatasetTest, MathUsesAnswerOrTheLastBoxedOfTheSolution) {
  auto a = ParseExample(R"({"problem": "p", "answer": "\\frac{1}{2}"})", zerorl::v1::DATASET_KIND_MATH, "m:1");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->answer().math(), "\\frac{1}{2}");
  auto b = ParseExample(R"({"problem": "p", "solution": "so \\boxed{1} or \\boxed{\\frac{3}{4}}."})",
                        zerorl::v1::DATASET_KIND_MATH, "m:2");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->answer().math(), "\\frac{3}{4}");
}

TEST(DatasetTest, CountdownAndCode) {
  auto c = ParseExample(R"({"nums": [3, 8], "target": 24})", zerorl::v1::DATASET_KIND_COUNTDOWN, "c:1");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->answer().countdown().nums_size(), 2);
  EXPECT_EQ(c->answer().countdown().target(), 24);
  EXPECT_NE(c->question().find("[3, 8]"), std::string::npos);
  auto code = ParseExample(R"({"question": "q", "input_output": "{\"inputs\": [\"1\"], \"outputs\": [\"2\"]}"})",
                           zerorl::v1::DATASET_KIND_CODE, "k:1");
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_NE(code->answer().code_tests_json().find("inputs"), std::string::npos);
}

TEST(DatasetTest, ErrorsNameFileAndLine) {
  std::string path = WriteTemp("bad.jsonl", "{\"nums\": [1, 2], \"target\": 3}\n\n{\"nums\": \"x\", \"target\": 3}\n");
  auto r = LoadJsonl(path, zerorl::v1::DATASET_KIND_COUNTDOWN);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("bad.jsonl:3"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("nums"), std::string::npos);

  std::string g = WriteTemp("g.jsonl", "{\"question\": \"q\", \"answer\": \"no final\"}\n");
  auto r2 = LoadJsonl(g, zerorl::v1::DATASET_KIND_GSM8K);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.status().message().find("g.jsonl:1"), std::string::npos);
  EXPECT_NE(r2.status().message().find("####"), std::string::npos);

  std::string j = WriteTemp("j.jsonl", "not json\n");
  EXPECT_NE(LoadJsonl(j, zerorl::v1::DATASET_KIND_GSM8K).status().message().find("not valid JSON"),
            std::string::npos);
  EXPECT_EQ(LoadJsonl("/nonexistent.jsonl", zerorl::v1::DATASET_KIND_GSM8K).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(DatasetTest, Templates) {
  zerorl::v1::Prompt p;
  p.set_question("What is 2+2?");
  p.mutable_answer()->mutable_countdown()->add_nums(3);
  p.mutable_answer()->mutable_countdown()->add_nums(8);
  p.mutable_answer()->mutable_countdown()->set_target(24);
  DatasetConfig c;
  c.set_template_(zerorl::v1::PROMPT_TEMPLATE_R1ZERO);
  ASSERT_TRUE(RenderPrompt(c, nullptr, &p).ok());
  EXPECT_NE(p.text().find("User: What is 2+2? Assistant: <think>"), std::string::npos);
  EXPECT_EQ(p.text().rfind("A conversation between User and Assistant.", 0), 0u);

  c.set_template_(zerorl::v1::PROMPT_TEMPLATE_CUSTOM);
  c.set_template_text("nums {nums} target {target}\n<think>");
  ASSERT_TRUE(RenderPrompt(c, nullptr, &p).ok());
  EXPECT_EQ(p.text(), "nums 3 8 target 24\n<think>");

  c.set_template_(zerorl::v1::PROMPT_TEMPLATE_CHAT);
  EXPECT_EQ(RenderPrompt(c, nullptr, &p).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(RenderPrompt(c, [](const std::string& u) -> absl::StatusOr<std::string> { return "<u>" + u + "<a>"; },
                           &p)
                  .ok());
  EXPECT_EQ(p.text(), "<u>What is 2+2?<a>");
}

TEST(DatasetTest, HeldOutEvalSplitIsSeededAndDisjoint) {
  std::string text;
  for (int i = 1; i <= 100; ++i) text += "{\"nums\": [" + std::to_string(i) + ", 1], \"target\": 1}\n";
  std::string path = WriteTemp("cd.jsonl", text);
  DatasetConfig c;
  c.set_kind(zerorl::v1::DATASET_KIND_COUNTDOWN);
  c.set_train_path(path);
  c.set_eval_fraction(0.1);
  c.set_template_(zerorl::v1::PROMPT_TEMPLATE_R1ZERO);
  auto a = LoadDataset(c, 7, "", nullptr);
  auto b = LoadDataset(c, 7, "", nullptr);
  auto d = LoadDataset(c, 8, "", nullptr);
  ASSERT_TRUE(a.ok() && b.ok() && d.ok());
  EXPECT_EQ(a->eval.size(), 10u);
  EXPECT_EQ(a->train.size(), 90u);
  std::set<std::string> train_ids;
  for (const auto& p : a->train) train_ids.insert(p.id());
  bool same = true, differs = false;
  for (size_t i = 0; i < a->eval.size(); ++i) {
    EXPECT_EQ(train_ids.count(a->eval[i].id()), 0u);
    same = same && a->eval[i].id() == b->eval[i].id();
    differs = differs || a->eval[i].id() != d->eval[i].id();
    EXPECT_FALSE(a->eval[i].text().empty());
  }
  EXPECT_TRUE(same);
  EXPECT_TRUE(differs);
}

TEST(DatasetTest, SamplerIsDeterministicAndResumable) {
  std::vector<zerorl::v1::Prompt> train(10);
  for (int i = 0; i < 10; ++i) train[i].set_id("p" + std::to_string(i));
  PromptSampler s(&train, 42, true);
  std::vector<std::string> first;
  for (int k = 0; k < 5; ++k) {
    for (auto& p : s.Next(3)) first.push_back(p.id());
  }
  // An epoch covers every prompt once.
  std::set<std::string> epoch0(first.begin(), first.begin() + 10);
  EXPECT_EQ(epoch0.size(), 10u);
  // Resuming from a saved cursor continues identically.
  PromptSampler t(&train, 42, true);
  t.Next(3);
  t.Next(3);
  DatasetCursor saved = t.cursor();
  PromptSampler u(&train, 42, true);
  u.set_cursor(saved);
  std::vector<std::string> rest;
  for (int k = 0; k < 3; ++k) {
    for (auto& p : u.Next(3)) rest.push_back(p.id());
  }
  EXPECT_EQ(rest, std::vector<std::string>(first.begin() + 6, first.end()));
}

// Issue 16 #5: an over-long prompt is skipped and counted, not sent to fail
// the run on every retry; too few prompts for one step is refused up front.
TEST(DatasetTest, OverLongPromptsAreSkippedAndListed) {
  std::string nums;
  for (int i = 0; i < 399; ++i) nums += (i ? "," : "") + std::to_string(i % 90 + 1);
  const std::string path = WriteTemp("long.jsonl", "{\"nums\": [1, 2, 3], \"target\": 6}\n"
                                                   "{\"nums\": [" + nums + "], \"target\": 7}\n"
                                                   "{\"nums\": [4, 5], \"target\": 9}\n");
  DatasetConfig c;
  c.set_kind(zerorl::v1::DATASET_KIND_COUNTDOWN);
  c.set_train_path(path);
  c.set_template_(zerorl::v1::PROMPT_TEMPLATE_RAW);
  DatasetLimits limits;
  limits.count_tokens = [](const std::string& text) { return static_cast<int64_t>(text.size()); };
  limits.max_prompt_tokens = 400;
  auto d = LoadDataset(c, 1, "", nullptr, limits);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->train.size(), 2u);
  EXPECT_EQ(d->train[0].id(), "long-1");
  EXPECT_EQ(d->train[1].id(), "long-3");
  EXPECT_EQ(d->skipped, std::vector<std::string>{"long-2"});
  // Without a bound nothing is skipped (and the loader is as before).
  auto all = LoadDataset(c, 1, "", nullptr);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->train.size(), 3u);
  EXPECT_TRUE(all->skipped.empty());
  // One step needs more prompts than the split keeps: refused, naming the key.
  limits.min_train_prompts = 3;
  auto few = LoadDataset(c, 1, "", nullptr, limits);
  ASSERT_FALSE(few.ok());
  EXPECT_NE(few.status().message().find("rollout.prompts_per_step: 3 prompts per step"), std::string::npos)
      << few.status();
  EXPECT_NE(few.status().message().find("1 skipped as too long"), std::string::npos) << few.status();
}

// Issue 16 #6: a code dataset whose input_output is nested 200k deep.
TEST(DatasetTest, DeeplyNestedJsonIsAnErrorNotACrash) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  auto p = ParseExample("{\"question\": \"q\", \"input_output\": {\"inputs\": " + deep + ", \"outputs\": []}}",
                        zerorl::v1::DATASET_KIND_CODE, "code.jsonl:3");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("code.jsonl:3: JSON nested deeper than"), std::string::npos) << p.status();
  const std::string inner = "[" + std::string(300, '[') + std::string(300, ']') + "]";
  nlohmann::json line = {{"question", "q"}, {"input_output", "{\"inputs\": " + inner + ", \"outputs\": []}"}};
  p = ParseExample(line.dump(), zerorl::v1::DATASET_KIND_CODE, "code.jsonl:4");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("\"input_output\": JSON nested deeper"), std::string::npos) << p.status();
}

}  // namespace
}  // namespace zerorl
