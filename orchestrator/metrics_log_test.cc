// metrics.jsonl: one object per step, resume drops re-run steps, torn tails.
#include "orchestrator/metrics_log.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace zerorl {
namespace {

zerorl::v1::StepMetrics Step(int64_t s, double r) {
  zerorl::v1::StepMetrics m;
  m.set_step(s);
  (*m.mutable_values())["reward_mean"] = r;
  (*m.mutable_values())["accuracy"] = r / 2;
  return m;
}

TEST(MetricsLogTest, AppendsOneObjectPerStepAndResumesWithoutDuplicates) {
  std::string dir = ::testing::TempDir() + "/metrics_log_test";
  std::filesystem::create_directories(dir);
  std::string path = dir + "/metrics.jsonl";
  std::filesystem::remove(path);
  {
    MetricsLog log;
    ASSERT_TRUE(log.Open(path, 0).ok());
    for (int s = 0; s < 4; ++s) ASSERT_TRUE(log.Append(Step(s, 0.1 * s)).ok());
  }
  {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["step"], 0);
    EXPECT_TRUE(j.contains("reward_mean"));
  }
  {
    MetricsLog log;  // resume at step 2: steps 2 and 3 will be re-run
    ASSERT_TRUE(log.Open(path, 2).ok());
    ASSERT_TRUE(log.Append(Step(2, 0.9)).ok());
  }
  std::ofstream(path, std::ios::app) << "{\"step\": 3, \"rew";  // torn tail
  auto all = ReadMetricsJsonl(path);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[2].step(), 2);
  EXPECT_DOUBLE_EQ((*all)[2].values().at("reward_mean"), 0.9);
}

TEST(MetricsLogTest, MalformedMiddleLineIsAnErrorNamingIt) {
  std::string path = ::testing::TempDir() + "/metrics_bad.jsonl";
  std::ofstream(path) << "{\"step\": 0}\nnope\n{\"step\": 1}\n";
  auto r = ReadMetricsJsonl(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("metrics_bad.jsonl:2"), std::string::npos);
}

}  // namespace
}  // namespace zerorl
