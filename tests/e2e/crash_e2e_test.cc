// `zerorl run` crash findings of issue 16, through the real binary:
//   2. kill -9 between checkpoints, then the same command: the run resumes
//      (the learner re-trains from its last checkpoint out of the buffer) and
//      ends bit-identical to an undisturbed run;
//   3. a checkpoint dir that cannot be written fails the run with the path,
//      a non-zero exit, instead of a logged warning and FINISHED;
//   4. a second run on the same run dir (another buffer.path) is refused,
//      naming the dir and the holder's pid; the first run is untouched.
// And issue 18's: an async (streaming, partial-rollout) serve-mode run
// survives a SIGKILL of each actor, losing and repeating nothing.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "tests/e2e/e2e_util.h"
#include "tests/e2e/serve_cluster.h"
#include "tests/e2e/stored_trajectories.h"
#include "tests/testing/subprocess.h"
#include "zerorl/v1/orchestrator.grpc.pb.h"

namespace zerorl {
namespace {

using testing::Subprocess;
using testing::ZerorlBin;

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string WithCheckpointEvery(std::string cfg, int every) {
  const std::string from = "every_steps: 1\n";
  cfg.replace(cfg.find(from), from.size(), absl::StrCat("every_steps: ", every, "\n"));
  return cfg;
}

using e2e::WaitForSteps;

// Finding 2: learner.checkpoint.every_steps 3, kill -9 after step 7 is
// recorded (the learner's last checkpoint is step 6), the same command again.
TEST(CrashE2eTest, KillBetweenCheckpointsResumesBitExact) {
  const std::string dir = testing::MakeTempDir("e2e-crash-between");
  const int steps = 10, B = 4, G = 4;
  const std::string run_dir = dir + "/run", clean_dir = dir + "/clean";
  e2e::WriteText(dir + "/run.yaml", WithCheckpointEvery(e2e::CountdownConfig(run_dir, steps, B, G, 0, 0), 3));
  const std::vector<std::string> cmd = {ZerorlBin(), "run", dir + "/run.yaml", "--port", "0", "--no-progress"};

  Subprocess first;
  ASSERT_TRUE(first.Start(cmd, dir + "/first.log"));
  ASSERT_TRUE(WaitForSteps(run_dir, 8, 300)) << "no progress; see " << dir;
  first.Signal(SIGKILL);
  first.Wait();
  const size_t at_kill = e2e::Metrics(run_dir).size();
  ASSERT_LT(at_kill, static_cast<size_t>(steps));

  Subprocess again;
  ASSERT_TRUE(again.Start(cmd, dir + "/again.log"));
  EXPECT_EQ(again.Wait(std::chrono::seconds(300)), 0) << ReadText(dir + "/again.log");
  const std::string log = ReadText(dir + "/again.log");
  // The learner restored step 6's checkpoint; the run state was at step 8.
  EXPECT_NE(log.find("the learner is at step 6"), std::string::npos) << log;

  auto m = e2e::Metrics(run_dir);
  ASSERT_EQ(m.size(), static_cast<size_t>(steps));
  for (int s = 0; s < steps; ++s) {
    EXPECT_EQ(m[s].step(), s);
    EXPECT_EQ(m[s].values().at("policy_version"), s + 1);
  }
  {
    auto stored = e2e::StoredTrajectories(run_dir + "/buffer", "e2e");
    ASSERT_TRUE(stored.ok()) << stored.status();
    std::map<std::tuple<int64_t, int, int>, int> seen;
    for (const auto& t : *stored) ++seen[{t.id().step(), t.id().group(), t.id().sample()}];
    EXPECT_EQ(seen.size(), static_cast<size_t>(steps * B * G));
    for (const auto& [id, n] : seen) EXPECT_EQ(n, 1);
  }

  // The same command undisturbed, in another run dir: the same final weights.
  std::string out;
  ASSERT_EQ(testing::RunCommand({ZerorlBin(), "run", dir + "/run.yaml", "--port", "0", "--no-progress", "--run-dir",
                                 clean_dir},
                                &out, std::chrono::seconds(300)),
            0)
      << out;
  const std::string resumed = e2e::ServeCluster::ReadBytes(e2e::ServeCluster::FinalCheckpoint(run_dir + "/checkpoints", steps));
  const std::string clean = e2e::ServeCluster::ReadBytes(e2e::ServeCluster::FinalCheckpoint(clean_dir + "/checkpoints", steps));
  ASSERT_FALSE(clean.empty());
  EXPECT_TRUE(resumed == clean) << "final weights differ from the undisturbed run's";
}

// Finding 3: learner.checkpoint.dir names a file.
TEST(CrashE2eTest, UnwritableCheckpointDirFailsTheRun) {
  const std::string dir = testing::MakeTempDir("e2e-crash-ckpt");
  const std::string file = dir + "/not-a-dir";
  e2e::WriteText(file, "x");
  std::string cfg = e2e::CountdownConfig(dir + "/run", 2, 2, 2, 0, 0);
  const std::string block = "  checkpoint:\n";
  cfg.insert(cfg.find(block) + block.size(), "    dir: " + file + "\n");
  e2e::WriteText(dir + "/run.yaml", cfg);
  Subprocess run;
  ASSERT_TRUE(run.Start({ZerorlBin(), "run", dir + "/run.yaml", "--port", "0", "--no-progress"}, dir + "/run.log"));
  const int rc = run.Wait(std::chrono::seconds(120));
  const std::string log = ReadText(dir + "/run.log");
  EXPECT_EQ(rc, 1) << log;
  EXPECT_NE(log.find("learner.checkpoint.dir: cannot use " + file), std::string::npos) << log;
  EXPECT_TRUE(e2e::Metrics(dir + "/run").empty());
}

// Finding 4: two `zerorl run` on one run dir, the second with another buffer.path.
TEST(CrashE2eTest, SecondRunOnTheSameRunDirIsRefused) {
  const std::string dir = testing::MakeTempDir("e2e-crash-lock");
  const std::string run_dir = dir + "/run";
  const int steps = 6;
  e2e::WriteText(dir + "/a.yaml", e2e::CountdownConfig(run_dir, steps, 4, 4, 0, 0));
  e2e::WriteText(dir + "/b.yaml", e2e::CountdownConfig(run_dir, steps, 4, 4, 0, 0, "buffer:\n  path: " + dir + "/other-buffer\n"));
  Subprocess a;
  ASSERT_TRUE(a.Start({ZerorlBin(), "run", dir + "/a.yaml", "--port", "0", "--no-progress"}, dir + "/a.log"));
  ASSERT_TRUE(a.WaitForLine("zerorl run e2e: listening", std::chrono::seconds(120)).has_value());

  Subprocess b;
  ASSERT_TRUE(b.Start({ZerorlBin(), "run", dir + "/b.yaml", "--port", "0", "--no-progress"}, dir + "/b.log"));
  const int rc = b.Wait(std::chrono::seconds(120));
  const std::string log = ReadText(dir + "/b.log");
  EXPECT_EQ(rc, 1) << log;
  EXPECT_NE(log.find(absl::StrCat("run_dir ", run_dir, " is in use by another run (pid ", a.pid())), std::string::npos)
      << log;

  EXPECT_EQ(a.Wait(std::chrono::seconds(300)), 0) << ReadText(dir + "/a.log");
  auto m = e2e::Metrics(run_dir);
  ASSERT_EQ(m.size(), static_cast<size_t>(steps));
  for (int s = 0; s < steps; ++s) EXPECT_EQ(m[s].step(), s);
}

// The learner dies and stays down: the run waits (RunInfo.waiting_for says
// for whom), then stops as STOPPED with the reason once
// orchestrator.outage_seconds are spent — not FAILED; starting the learner and
// the orchestrator again finishes it with nothing lost.
TEST(CrashE2eTest, OutagePastTheBudgetStopsTheRunResumably) {
  const std::string dir = testing::MakeTempDir("e2e-crash-outage");
  const int steps = 4;
  e2e::ServeCluster c(dir, steps, 2, 2, "", "  outage_seconds: 4\n");
  c.StartAll();
  ASSERT_TRUE(WaitForSteps(c.run_dir(), 1, 300)) << "no progress; see " << dir;
  c.Kill("learner");
  auto stub = zerorl::v1::OrchestratorService::NewStub(
      grpc::CreateChannel(c.Address("orchestrator"), grpc::InsecureChannelCredentials()));
  auto info = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    zerorl::v1::RunRef ref;
    ref.set_run_id("e2e");
    zerorl::v1::RunInfo r;
    EXPECT_TRUE(stub->GetRun(&ctx, ref, &r).ok());
    return r;
  };
  const std::string waiting = "waiting for learner at " + c.Address("learner");
  bool saw_waiting = false;
  zerorl::v1::RunInfo r;
  for (int i = 0; i < 300; ++i) {
    r = info();
    saw_waiting = saw_waiting || r.waiting_for().find(waiting) != std::string::npos;
    if (r.state() != zerorl::v1::RUN_STATE_RUNNING) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(saw_waiting) << "RunInfo.waiting_for never said \"" << waiting << "\"";
  EXPECT_EQ(r.state(), zerorl::v1::RUN_STATE_STOPPED) << zerorl::v1::RunState_Name(r.state()) << ": " << r.error();
  EXPECT_NE(r.error().find("orchestrator.outage_seconds 4 spent"), std::string::npos) << r.error();
  EXPECT_TRUE(r.waiting_for().empty());

  c.Start("learner");
  EXPECT_EQ(c.Terminate("orchestrator", std::chrono::seconds(30)), 0);
  c.Start("orchestrator");
  ASSERT_TRUE(c.WaitFinished(300)) << "the resumed run did not finish; see " << dir;
  c.ExpectIntact();
  c.StopAll();
}

// Async mode streams steps ahead of training, with partial rollouts: SIGKILL
// each actor once (a different step each) and restart it. The run finishes
// with every step's metrics once (policy version step + 1), every (step,
// group, sample) stored once and none aborted. Not bit-identical to an
// undisturbed run: in async mode which version samples a token depends on
// timing.
TEST(CrashE2eTest, AsyncRunSurvivesAKillOfEachActor) {
  const std::string dir = testing::MakeTempDir("e2e-crash-async");
  const int steps = 12;
  e2e::ServeCluster c(dir, steps, 2, 4, "", "  mode: async\n  max_staleness: 2\n", "  partial_rollout: true\n");
  c.StartAll();
  size_t at = 1;
  for (const char* role : {"rollout0", "reward", "buffer", "learner", "orchestrator"}) {
    ASSERT_TRUE(WaitForSteps(c.run_dir(), at, 300)) << "no step " << at << " before killing " << role << "; see " << dir;
    c.KillAndRestart(role);
    at += 2;
  }
  ASSERT_TRUE(c.WaitFinished(600)) << "the run did not finish; see " << dir;
  c.ExpectIntact();
  auto m = e2e::Metrics(c.run_dir());
  for (const auto& rec : m) {
    // Steps stored before a restart are not generated again and carry no lag.
    if (auto lag = rec.values().find("version_lag_max"); lag != rec.values().end()) {
      EXPECT_LE(lag->second, 2) << "step " << rec.step();
    }
    ASSERT_TRUE(rec.values().count("stale_groups")) << "step " << rec.step();
    EXPECT_EQ(rec.values().at("stale_groups"), 0) << "step " << rec.step();
  }
  c.StopAll();
}

}  // namespace
}  // namespace zerorl
