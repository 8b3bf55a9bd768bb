// Tests of the buffer key encoding and trajectory ID text form.
#include "buffer/keys.h"

#include <gtest/gtest.h>

namespace zerorl::buffer {
namespace {

TEST(KeysTest, IdRoundTrip) {
  auto id = ParseId("run-1.a_b/12/3/15");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->run_id(), "run-1.a_b");
  EXPECT_EQ(id->step(), 12);
  EXPECT_EQ(id->group(), 3);
  EXPECT_EQ(id->sample(), 15);
  EXPECT_EQ(FormatId(*id), "run-1.a_b/12/3/15");
}

TEST(KeysTest, MalformedIdsAreInvalidArgument) {
  for (const char* bad : {"", "run", "run/1/2", "run/1/2/3/4", "run/-1/2/3", "run/x/2/3", "ru n/1/2/3", "/1/2/3",
                          "run/1/2/", "run/99999999999999999999/0/0", "run/+1/2/3"}) {
    auto id = ParseId(bad);
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(KeysTest, KeysSortInStepGroupSampleOrder) {
  std::vector<std::string> keys = {TrajectoryKey("r", 0, 0, 1), TrajectoryKey("r", 0, 1, 0),
                                   TrajectoryKey("r", 1, 0, 0), TrajectoryKey("r", 255, 0, 0),
                                   TrajectoryKey("r", 256, 0, 0), TrajectoryKey("r", 1ll << 40, 0, 0)};
  for (size_t i = 1; i < keys.size(); ++i) EXPECT_LT(keys[i - 1], keys[i]) << i;
  // A run's prefix never covers another run's keys.
  EXPECT_FALSE(TrajectoryKey("ra", 0, 0, 0).starts_with(RunPrefix("r")));
  auto back = ParseTrajectoryKey(TrajectoryKey("r", 7, 2, 5));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(FormatId(*back), "r/7/2/5");
}

TEST(KeysTest, OrderedDoublePreservesOrder) {
  std::vector<double> v = {-1e300, -2.5, -1, -0.0, 0.0, 1e-300, 0.5, 1, 3, 1e300};
  std::string prev;
  for (double d : v) {
    std::string k;
    AppendOrderedDouble(&k, d);
    EXPECT_LE(prev, k) << d;
    EXPECT_EQ(ReadOrderedDouble(k.data()), d);
    prev = k;
  }
}

TEST(KeysTest, PrefixSuccessor) {
  EXPECT_EQ(PrefixSuccessor("ab"), "ac");
  EXPECT_EQ(PrefixSuccessor(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixSuccessor(std::string("\xff", 1)), "");
}

}  // namespace
}  // namespace zerorl::buffer
