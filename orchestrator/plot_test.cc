// `zerorl plot`: SVG and PNG files with the four panels.
#include "orchestrator/plot.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "orchestrator/metrics_log.h"

namespace zerorl {
namespace {

TEST(PlotTest, DrawsSvgAndPngFromARunDir) {
  std::string dir = ::testing::TempDir() + "/plot_test_run";
  std::filesystem::create_directories(dir);
  std::filesystem::remove(dir + "/metrics.jsonl");
  {
    MetricsLog log;
    ASSERT_TRUE(log.Open(dir + "/metrics.jsonl", 0).ok());
    for (int s = 0; s < 30; ++s) {
      zerorl::v1::StepMetrics m;
      m.set_step(s);
      auto& v = *m.mutable_values();
      v["reward_mean"] = 0.2 + 0.02 * s;
      v["accuracy"] = 0.1 + 0.025 * s;
      v["completion_len_mean"] = 40 - 0.3 * s;
      v["kl"] = 0.001 * s;
      if (s % 10 == 0) v["eval_accuracy"] = 0.15 + 0.02 * s;
      ASSERT_TRUE(log.Append(m).ok());
    }
  }
  auto out = PlotRunDir(dir);
  ASSERT_TRUE(out.ok()) << out.status();
  std::ifstream png(out->png, std::ios::binary);
  char magic[8];
  png.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  EXPECT_GT(std::filesystem::file_size(out->png), 10000u);
  std::stringstream svg;
  svg << std::ifstream(out->svg).rdbuf();
  EXPECT_NE(svg.str().find("<svg"), std::string::npos);
  EXPECT_GT(svg.str().size(), 5000u);
}

TEST(PlotTest, EachTextCounterGetsItsOwnPanel) {
  std::vector<zerorl::v1::StepMetrics> metrics(3);
  for (int s = 0; s < 3; ++s) {
    metrics[s].set_step(s);
    auto& v = *metrics[s].mutable_values();
    v["reward_mean"] = 0.1 * s;
    v["attempts_per_completion"] = 1.5 + s;
    v["eval_attempts_per_completion"] = 2.0 + s;
  }
  EXPECT_EQ(PlotPanelTitles({}).size(), 4u);
  EXPECT_EQ(PlotPanelTitles(metrics),
            (std::vector<std::string>{"reward (mean)", "accuracy", "completion length (tokens, mean)",
                                      "KL to reference", "attempts per completion (mean)"}));
  const std::string prefix = ::testing::TempDir() + "/plot_test_counters";
  auto out = PlotMetrics(metrics, "counters", prefix);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_GT(std::filesystem::file_size(out->png), 10000u);
}

TEST(PlotTest, MissingMetricsIsAClearError) {
  auto out = PlotRunDir(::testing::TempDir() + "/no_such_run");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("metrics.jsonl"), std::string::npos);
}

}  // namespace
}  // namespace zerorl
