// The progress bar's text.
#include "orchestrator/progress.h"

#include <gtest/gtest.h>

namespace zerorl {
namespace {

TEST(ProgressTest, ShowsStepRewardAccuracyThroughputAndEta) {
  std::string s = FormatProgress(9, 100, {{"reward_mean", 0.5}, {"accuracy", 0.25}, {"tokens_per_s", 1234}}, 20.0, 10);
  EXPECT_NE(s.find("step 10/100"), std::string::npos) << s;
  EXPECT_NE(s.find("reward 0.500"), std::string::npos);
  EXPECT_NE(s.find("acc 25.0%"), std::string::npos);
  EXPECT_NE(s.find("1234 tok/s"), std::string::npos);
  EXPECT_NE(s.find("ETA 3m00s"), std::string::npos);  // 2 s/step * 90 steps
  EXPECT_EQ(FormatDuration(3725), "1h02m");
  EXPECT_EQ(FormatDuration(37), "37s");
}

}  // namespace
}  // namespace zerorl
