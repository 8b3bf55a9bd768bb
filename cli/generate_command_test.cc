// `zerorl generate` end to end, in process: a saved tiny checkpoint, --json
// output with ids and logprobs, seeded determinism, and usage/load errors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "model/device.h"
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

// --device: a malformed value and a missing GPU are usage errors naming the
// flag; where the GPU exists, the run gives the CPU's greedy tokens.
TEST(GenerateCommandTest, DeviceFlagRunsOnTheGpuOrNamesTheProblem) {
  const std::string dir = zerorl::testing::MakeTempDir("generate-cmd-dev");
  ASSERT_TRUE((*Model::Create(testing::MustParse(testing::TinyQwenJson()), 3))->Save(dir).ok());
  std::string out, cpu_out;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunGenerate({"--model", dir, "--prompt-ids", "1", "--device", "gpu"}, &out), 2);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("--device: \"gpu\" is not a device"), std::string::npos) << err;
  const std::vector<std::string> args = {"--model", dir, "--prompt-ids", "1,2", "--greedy", "--max-new-tokens", "4",
                                         "--json"};
  ASSERT_EQ(RunGenerate(args, &cpu_out), 0);
  std::vector<std::string> gpu_args = args;
  gpu_args.insert(gpu_args.end(), {"--device", "cuda:0"});
  ::testing::internal::CaptureStderr();
  const int rc = RunGenerate(gpu_args, &out);
  err = ::testing::internal::GetCapturedStderr();
  if (BackendForDevice("cuda:0", "probe").ok()) {
    ASSERT_EQ(rc, 0) << err;
    EXPECT_EQ(nlohmann::json::parse(out.substr(0, out.find('\n')))["tokens"],
              nlohmann::json::parse(cpu_out.substr(0, cpu_out.find('\n')))["tokens"]);
  } else {
    EXPECT_EQ(rc, 2);
    EXPECT_NE(err.find("--device is cuda:0"), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace zerorl::model
