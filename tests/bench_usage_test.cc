// `zerorl bench` as a real process: usage errors exit 2 (as every zerorl
// command) and name the offending flag; a missing model config exits 1 and
// names the path and --config. The pipeline benchmark's path is run once,
// two steps per mode, so it keeps working (its numbers are not checked here:
// benchmarks are not timed tests).
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "tests/testing/subprocess.h"

namespace zerorl {
namespace {

using testing::ZerorlBin;

// Runs `zerorl bench ARGS` with stderr folded into the captured output.
int Bench(std::vector<std::string> args, std::string* out) {
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" bench \"$@\" 2>&1", ZerorlBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing::RunCommand(argv, out, std::chrono::seconds(60));
}

TEST(BenchUsageTest, WeightsMapsUsageErrorsToTwo) {
  std::string out;
  EXPECT_EQ(Bench({"weights", "--no-such-flag"}, &out), 2) << out;
  EXPECT_NE(out.find("--no-such-flag"), std::string::npos) << out;
  EXPECT_EQ(Bench({"weights", "--workers", "0"}, &out), 2) << out;
  EXPECT_NE(out.find("--workers"), std::string::npos) << out;
  EXPECT_EQ(Bench({"weights", "--steps", "0"}, &out), 2) << out;
  EXPECT_NE(out.find("--steps"), std::string::npos) << out;
  EXPECT_EQ(Bench({"weights", "--help"}, &out), 0) << out;
  EXPECT_NE(out.find("--chunk-bytes"), std::string::npos) << out;
}

TEST(BenchUsageTest, WeightsNamesAMissingConfig) {
  const std::string missing = testing::MakeTempDir("bench-usage") + "/no-such-config.json";
  std::string out;
  EXPECT_EQ(Bench({"weights", "--config", missing, "--skip-100m", "--skip-learner"}, &out), 1) << out;
  EXPECT_NE(out.find(missing), std::string::npos) << out;
  EXPECT_NE(out.find("--config"), std::string::npos) << out;
}

TEST(BenchUsageTest, BufferAndUnknownBenchMapUsageErrorsToTwo) {
  std::string out;
  EXPECT_EQ(Bench({"buffer", "--groups", "1"}, &out), 2) << out;
  EXPECT_NE(out.find("--groups"), std::string::npos) << out;
  EXPECT_EQ(Bench({"no-such-bench"}, &out), 2) << out;
  EXPECT_NE(out.find("usage: zerorl bench"), std::string::npos) << out;
}

TEST(BenchUsageTest, PipelineMapsUsageErrorsToTwo) {
  std::string out;
  EXPECT_EQ(Bench({"pipeline", "--steps", "1"}, &out), 2) << out;
  EXPECT_NE(out.find("--steps"), std::string::npos) << out;
  EXPECT_EQ(Bench({"pipeline", "--rollout-cpu", "4096"}, &out), 2) << out;
  EXPECT_EQ(Bench({"pipeline", "--help"}, &out), 0) << out;
  EXPECT_NE(out.find("--staleness"), std::string::npos) << out;
  const std::string missing = testing::MakeTempDir("bench-usage") + "/no-such-run.yaml";
  EXPECT_EQ(Bench({"pipeline", "--config", missing}, &out), 1) << out;
  EXPECT_NE(out.find(missing), std::string::npos) << out;
}

// Both modes of the countdown demo's config in serve mode, two steps each.
TEST(BenchUsageTest, PipelineRunsBothModesAndPrintsTheRatio) {
  std::string out;
  const int rc = testing::RunCommand({"/bin/sh", "-c",
                                      "cd \"$1\" && exec \"$0\" bench pipeline --steps 2 --staleness 1 2>&1",
                                      ZerorlBin(), ZERORL_SOURCE_DIR},
                                     &out, std::chrono::seconds(600));
  ASSERT_EQ(rc, 0) << out;
  for (const char* key : {"sync_samples_per_s ", "async_samples_per_s ", "async_speedup ", "sync_reward_last ",
                          "async_reward_last "}) {
    const size_t at = out.find(key);
    ASSERT_NE(at, std::string::npos) << key << " missing:\n" << out;
    if (std::string(key).find("reward") == std::string::npos) {
      EXPECT_GT(std::stod(out.substr(at + std::strlen(key))), 0) << key << "\n" << out;
    }
  }
}

}  // namespace
}  // namespace zerorl
