// Crash test: a child (buffer_crash_writer) appends under load and is SIGKILLed
// at random moments, 60 cycles. After each kill the buffer must reopen, hold
// every acknowledged step intact, and show no half-visible batch (every stored
// step has all its groups and every group all its samples). Some cycles also
// copy the directory while the child writes (a torn copy emulates losing
// unsynced data) and check the copy the same way for the steps acked before
// the copy began.
#include <signal.h>

#include <filesystem>
#include <random>
#include <set>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "buffer/keys.h"
#include "buffer/synthetic_groups.h"
#include "buffer/trajectory_store.h"
#include "tests/testing/subprocess.h"

namespace zerorl::buffer {
namespace {

constexpr int kGroupsPerStep = 4;
constexpr int kGroupSize = 4;
const GroupShape kShape{kGroupSize, 48, true, 3};

// Reads "ACK n" lines for `duration`, or until EOF (the child died) if sooner.
void DrainAcks(testing::Subprocess* child, std::set<int64_t>* acked, std::chrono::milliseconds duration) {
  const auto deadline = std::chrono::steady_clock::now() + duration;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto line = child->ReadLine(std::max(left, std::chrono::milliseconds(0)));
    if (!line) return;
    int64_t step;
    if (line->rfind("ACK ", 0) == 0 && absl::SimpleAtoi(line->substr(4), &step)) acked->insert(step);
  }
}

// Copies the files of `from` one by one while the writer runs (the WAL is
// caught mid-append). A background compaction may delete a table file between
// listing and copying it; such a pass is torn in a way a power cut cannot
// produce (tables are immutable and synced), so it is redone. LOCK is skipped.
bool CopyLiveDirOnce(const std::string& from, const std::string& to) {
  std::filesystem::remove_all(to);
  std::filesystem::create_directories(to);
  for (const auto& e : std::filesystem::directory_iterator(from)) {
    if (e.path().filename() == "LOCK") continue;
    std::error_code ec;
    std::filesystem::copy_file(e.path(), std::filesystem::path(to) / e.path().filename(), ec);
    if (ec == std::errc::no_such_file_or_directory) return false;
    EXPECT_FALSE(ec) << "copy " << e.path() << ": " << ec.message();
  }
  return true;
}
void CopyLiveDir(const std::string& from, const std::string& to) {
  for (int attempt = 0; attempt < 20; ++attempt)
    if (CopyLiveDirOnce(from, to)) return;
  FAIL() << "a file vanished in 20 copy attempts of " << from;
}

// No half-visible batch: every step present has all groups and samples.
void CheckWhole(TrajectoryStore* store, const std::string& where) {
  zerorl::v1::StepStatsRequest req;
  req.set_run_id("crash");
  auto stats = store->StepStats(req);
  ASSERT_TRUE(stats.ok()) << where << ": " << stats.status();
  int64_t total = 0;
  for (const auto& s : stats->steps()) {
    EXPECT_EQ(s.count(), kGroupsPerStep * kGroupSize) << where << ": step " << s.step() << " is half-visible";
    total += s.count();
  }
  const auto runs = store->ListRuns();
  for (const auto& r : runs.runs()) EXPECT_EQ(r.trajectories(), total) << where;
}

// Every acknowledged step is present with exactly the content written.
void CheckAcked(TrajectoryStore* store, const std::set<int64_t>& steps, const std::string& where) {
  for (int64_t step : steps) {
    for (int g = 0; g < kGroupsPerStep; ++g) {
      auto want = SyntheticGroup("crash", step, g, kShape);
      for (auto t : want.trajectories()) {
        *t.mutable_prompt() = want.prompt();
        auto got = store->Get(t.id());
        ASSERT_TRUE(got.ok()) << where << ": acknowledged " << FormatId(t.id()) << " lost: " << got.status();
        ASSERT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*got, t)) << where << ": " << FormatId(t.id());
      }
    }
  }
}

TEST(BufferCrashTest, KillNineNeverLosesAcknowledgedAppends) {
  const std::string dir = testing::MakeTempDir("buffer_crash") + "/db";
  std::mt19937 rng(20261128);
  std::set<int64_t> acked_all;
  int copies = 0;
  for (int cycle = 0; cycle < 60; ++cycle) {
    testing::Subprocess child;
    ASSERT_TRUE(child.Start({BUFFER_CRASH_WRITER, dir, std::to_string(kGroupsPerStep)}));
    ASSERT_TRUE(child.WaitForLine("READY", std::chrono::seconds(30))) << "cycle " << cycle;
    std::set<int64_t> acked;
    DrainAcks(&child, &acked, std::chrono::milliseconds(std::uniform_int_distribution<int>(5, 120)(rng)));
    if (cycle % 10 == 5) {
      // Copy mid-write: steps acknowledged before the copy starts must be in it.
      DrainAcks(&child, &acked, std::chrono::milliseconds(0));
      const std::set<int64_t> before = acked;
      const std::string copy = dir + ".copy" + std::to_string(cycle);
      CopyLiveDir(dir, copy);
      ASSERT_FALSE(::testing::Test::HasFatalFailure());
      auto copied = TrajectoryStore::Open(copy, {});
      ASSERT_TRUE(copied.ok()) << "copy at cycle " << cycle << ": " << copied.status();
      CheckWhole(copied->get(), "copy " + std::to_string(cycle));
      CheckAcked(copied->get(), before, "copy " + std::to_string(cycle));
      copied->reset();
      std::filesystem::remove_all(copy);
      ++copies;
    }
    child.Signal(SIGKILL);
    DrainAcks(&child, &acked, std::chrono::seconds(10));  // to EOF: lines printed before the kill
    EXPECT_EQ(child.Wait(), 128 + SIGKILL) << "cycle " << cycle;
    acked_all.insert(acked.begin(), acked.end());

    auto store = TrajectoryStore::Open(dir, {});
    ASSERT_TRUE(store.ok()) << "reopen after cycle " << cycle << ": " << store.status();
    CheckWhole(store->get(), "cycle " + std::to_string(cycle));
    CheckAcked(store->get(), acked, "cycle " + std::to_string(cycle));
    if (::testing::Test::HasFatalFailure()) return;
  }
  // Finally everything acknowledged over all cycles, content and all.
  auto store = TrajectoryStore::Open(dir, {});
  ASSERT_TRUE(store.ok());
  CheckAcked(store->get(), acked_all, "final");
  EXPECT_GT(acked_all.size(), 60u);
  EXPECT_EQ(copies, 6);
  std::printf("crash test: %zu acknowledged steps over 60 kills, all present\n", acked_all.size());
}

}  // namespace
}  // namespace zerorl::buffer
