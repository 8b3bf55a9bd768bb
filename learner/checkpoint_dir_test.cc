// CheckpointDir: publish by rename with a marker, keep-last-N, failed writes
// leave nothing, incomplete directories are ignored.
#include "learner/checkpoint_dir.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/testing/subprocess.h"

namespace zerorl::learner {
namespace {

namespace fs = std::filesystem;

absl::Status WriteFile(const std::string& dir, const std::string& text) {
  std::ofstream(dir + "/data.txt") << text;
  return absl::OkStatus();
}

TEST(CheckpointDirTest, WritesKeepsLastAndFindsLatest) {
  const std::string root = testing::MakeTempDir("ckpt") + "/checkpoints";
  CheckpointDir dir(root, 2);
  EXPECT_FALSE(dir.Latest().has_value());
  for (int step = 1; step <= 5; ++step) {
    auto p = dir.Write(step, [&](const std::string& d) { return WriteFile(d, std::to_string(step)); });
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(fs::exists(*p + "/COMPLETE"));
  }
  auto all = dir.List();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].step, 4);
  EXPECT_EQ(all[1].step, 5);
  EXPECT_EQ(dir.Latest()->step, 5);
  std::ifstream in(dir.Latest()->path + "/data.txt");
  std::string text;
  in >> text;
  EXPECT_EQ(text, "5");
}

TEST(CheckpointDirTest, FailedWriteLeavesNothingAndIncompleteDirsAreIgnored) {
  const std::string root = testing::MakeTempDir("ckpt_fail") + "/checkpoints";
  CheckpointDir dir(root, 3);
  ASSERT_TRUE(dir.Write(1, [](const std::string& d) { return WriteFile(d, "1"); }).ok());
  auto bad = dir.Write(2, [](const std::string& d) {
    (void)WriteFile(d, "half");
    return absl::InternalError("disk full");
  });
  EXPECT_FALSE(bad.ok());
  EXPECT_FALSE(fs::exists(root + "/step-00000002"));
  // A directory without the marker (a crash before rename in an older layout) is not a checkpoint.
  fs::create_directories(root + "/step-00000009");
  EXPECT_EQ(dir.Latest()->step, 1);
  // Stale temporaries are swept on the next write.
  fs::create_directories(root + "/.tmp-step-00000003-1");
  ASSERT_TRUE(dir.Write(3, [](const std::string& d) { return WriteFile(d, "3"); }).ok());
  EXPECT_FALSE(fs::exists(root + "/.tmp-step-00000003-1"));
  EXPECT_EQ(dir.Latest()->step, 3);
}

}  // namespace
}  // namespace zerorl::learner
