// `zerorl generate` end to end, in process: a saved tiny checkpoint, --json
// output with ids and logprobs, seeded determinism, and usage/load errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
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

// --prompt TEXT is tokenized as rollout and the learner do (EncodePrompt): BOS
// first. The char vocabulary's <bos> is 1, 'a' is 97 - 28 = 69.
TEST(GenerateCommandTest, TextPromptStartsWithBosAsInTraining) {
  const std::string dir = zerorl::testing::MakeTempDir("generate-cmd-bos");
  ASSERT_TRUE(
      (*Model::Create(testing::MustParse(testing::TinyDeepseekJson(R"({"vocab_size": 100})")), 3))->Save(dir).ok());
  std::string out;
  ASSERT_EQ(RunGenerate({"--model", dir, "--prompt", "ab", "--max-new-tokens", "2", "--greedy", "--json"}, &out), 0);
  EXPECT_EQ(nlohmann::json::parse(out)["prompt_ids"], nlohmann::json({1, 69, 70}));
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

// Issue 16 #7, #8: lengths and thread counts are checked before any work,
// as usage errors naming the flag (no bad_alloc, no 1000 tokens from a
// 128-position model, no libgomp segfault).
TEST(GenerateCommandTest, LengthsAndThreadsAreCheckedUpFront) {
  const std::string dir = zerorl::testing::MakeTempDir("generate-cmd-len");
  ASSERT_TRUE((*Model::Create(testing::MustParse(testing::TinyQwenJson()), 3))->Save(dir).ok());  // 128 positions
  auto run = [&](std::vector<std::string> args, const std::string& want) {
    std::string out;
    ::testing::internal::CaptureStderr();
    const int rc = RunGenerate(args, &out);
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(rc, 2) << err;
    EXPECT_NE(err.find(want), std::string::npos) << err;
    EXPECT_TRUE(out.empty()) << out;
  };
  run({"--model", dir, "--prompt-ids", "1,2", "--max-new-tokens", "1000"}, "--max-new-tokens 1000 leaves no room");
  run({"--model", dir, "--prompt-ids", "1,2", "--max-new-tokens", "2147483647"}, "--max-new-tokens 2147483647");
  std::string ids = "1";
  for (int i = 0; i < 99; ++i) ids += ",1";
  run({"--model", dir, "--prompt-ids", ids, "--max-new-tokens", "64"},
      "the prompt (100 tokens) + --max-new-tokens 64 exceeds the model's 128 positions");
  run({"--model", dir, "--prompt", std::string(100000, 'a')}, "--prompt of 100000 bytes cannot fit");
  run({"--model", dir, "--prompt", std::string(120, 'a')}, "exceeds the model's 128 positions");
  run({"--model", dir, "--prompt-ids", "1", "--threads", "65536"}, "--threads: 65536 threads");
  run({"--model", dir, "--prompt-ids", "1", "--threads", "-1"}, "--threads: -1 threads");
  std::string out;
  EXPECT_EQ(RunGenerate({"--model", dir, "--prompt-ids", "1,2", "--max-new-tokens", "126", "--greedy"}, &out), 0);
}

// The first tensor of DIR/model.safetensors (its name and the file offset of its data).
std::pair<std::string, size_t> FirstTensor(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  uint64_t hlen = 0;
  in.read(reinterpret_cast<char*>(&hlen), 8);
  std::string header(hlen, '\0');
  in.read(header.data(), static_cast<std::streamsize>(hlen));
  auto h = nlohmann::json::parse(header);
  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") continue;
    return {name, 8 + hlen + v["data_offsets"][0].get<size_t>()};
  }
  return {"", 0};
}

// Issue 16 #9: a model with a NaN weight generated <pad> silently.
TEST(GenerateCommandTest, NonFiniteWeightsAreRefusedNamingTheTensor) {
  const std::string dir = zerorl::testing::MakeTempDir("generate-cmd-nan");
  ASSERT_TRUE((*Model::Create(testing::MustParse(testing::TinyQwenJson()), 3))->Save(dir, DType::kF32).ok());
  const std::string file = dir + "/model.safetensors";
  auto [name, offset] = FirstTensor(file);
  ASSERT_FALSE(name.empty());
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    const float nan = std::nanf("");
    f.seekp(static_cast<std::streamoff>(offset) + 4);
    f.write(reinterpret_cast<const char*>(&nan), 4);
  }
  std::string out;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunGenerate({"--model", dir, "--prompt-ids", "1,2", "--max-new-tokens", "4"}, &out), 1);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("tensor " + name + " holds a non-finite value"), std::string::npos) << err;
  EXPECT_NE(err.find("at index 1"), std::string::npos) << err;
}

// Issue 16 #6: a safetensors header whose "dtype" is a 200k-deep array.
TEST(GenerateCommandTest, DeeplyNestedSafetensorsHeaderIsAnError) {
  const std::string dir = zerorl::testing::MakeTempDir("generate-cmd-deep");
  ASSERT_TRUE((*Model::Create(testing::MustParse(testing::TinyQwenJson()), 3))->Save(dir).ok());
  const std::string header = "{\"w\": {\"dtype\": " + std::string(200000, '[') + std::string(200000, ']') +
                             ", \"shape\": [1], \"data_offsets\": [0, 4]}}";
  {
    std::ofstream f(dir + "/model.safetensors", std::ios::binary | std::ios::trunc);
    const uint64_t hlen = header.size();
    f.write(reinterpret_cast<const char*>(&hlen), 8);
    f << header << std::string(4, '\0');
  }
  std::string out;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunGenerate({"--model", dir, "--prompt-ids", "1"}, &out), 1);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("bad header: JSON nested deeper than 256 levels"), std::string::npos) << err;
}

}  // namespace
}  // namespace zerorl::model
