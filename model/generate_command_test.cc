// `zerorl generate` end to end, in process: a saved tiny checkpoint, --json
// output with ids and logprobs, seeded determinism, and usage/load errors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/commands.h"
#include "model/model.h"
#include "model/test_util.h"
#include "tests/testing/subprocess.h"

namespace zerorl::model {
namespace {

int RunGenerate(std::vector<std::string> args, std::string* out) {
  args.insert(args.begin(), "generate");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStdout();
  int rc = GenerateCommand(static_cast<int>(argv.size()), argv.data());
  *out = ::testing::internal::GetCapturedStdout();
  return rc;
}

TEST(GenerateCommandTest, JsonOutputIsSeededAndConsistent) {
  const std::string dir = zerorl::testing::MakeTempDir("generate-cmd");
  auto m = Model::Create(testing::MustParse(testing::TinyDeepseekJson(R"({"eos_token_id": 39})")), 3);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE((*m)->Save(dir, DType::kBF16).ok());
  std::string a, b;
  ASSERT_EQ(RunGenerate({"--model", dir, "--prompt-ids", "1,2,3", "--max-new-tokens", "6", "--temperature", "0.9",
                 "--top-k", "10", "--seed", "5", "--json"},
                &a),
            0);
  ASSERT_EQ(RunGenerate({"--model", dir, "--prompt-ids", "1,2,3", "--max-new-tokens", "6", "--temperature", "0.9",
                 "--top-k", "10", "--seed", "5", "--json"},
                &b),
            0);
  EXPECT_EQ(a, b);
  auto j = nlohmann::json::parse(a);
  ASSERT_TRUE(j.contains("tokens"));
  const size_t n = j["tokens"].size();
  EXPECT_GE(n, 1u);
  EXPECT_LE(n, 6u);
  EXPECT_EQ(j["logprobs"].size(), n);
  EXPECT_EQ(j["sampling_logprobs"].size(), n);
  EXPECT_EQ(j["finish_reason"], n == 6 && j["tokens"].back() != 39 ? "length" : "stop");
  EXPECT_EQ(j["prompt_ids"], nlohmann::json({1, 2, 3}));
  std::string greedy;
  ASSERT_EQ(RunGenerate({"--model", dir, "--prompt-ids", "1,2,3", "--max-new-tokens", "4", "--greedy", "--samples", "2",
                 "--json"},
                &greedy),
            0);
  auto nl = greedy.find('\n');
  ASSERT_NE(nl, std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(greedy.substr(0, nl))["tokens"],
            nlohmann::json::parse(greedy.substr(nl + 1))["tokens"]);
}

TEST(GenerateCommandTest, ErrorsAreReported) {
  std::string out;
  EXPECT_EQ(RunGenerate({"--model", "/nonexistent", "--prompt-ids", "1"}, &out), 1);
  EXPECT_EQ(RunGenerate({"--model", "/nonexistent"}, &out), 2);
  EXPECT_EQ(RunGenerate({"--model", "/nonexistent", "--prompt-ids", "1,x"}, &out), 1);  // load fails first
  const std::string dir = zerorl::testing::MakeTempDir("generate-cmd-err");
  ASSERT_TRUE((*Model::Create(testing::MustParse(testing::TinyQwenJson()), 3))->Save(dir).ok());
  EXPECT_EQ(RunGenerate({"--model", dir, "--prompt-ids", "1,x"}, &out), 2);
  EXPECT_EQ(RunGenerate({"--model", dir, "--prompt-ids", "1,400"}, &out), 2);
  EXPECT_EQ(RunGenerate({"--model", dir, "--prompt-ids", "1", "--greedy", "--temperature", "0.5"}, &out), 2);
}

}  // namespace
}  // namespace zerorl::model
