// `zerorl bench` as a real process: usage errors exit 2 (as every zerorl
// command) and name the offending flag; a missing model config exits 1 and
// names the path and --config. Nothing here runs a benchmark.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace zerorl
