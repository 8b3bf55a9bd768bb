// Chaos tier: every role of a serve-mode countdown run (buffer, reward,
// learner, two rollout workers, orchestrator — each its own process)
// SIGKILLed at seeded moments and started again with the same arguments:
// during the learner's Train, twice in one run, during a checkpoint write,
// during a weight push, and at random points of a step. Each run must finish
// with every step's metrics once (policy version step + 1), every
// (step, group, sample) stored once, and final weights bit-identical to the
// same run undisturbed (`zerorl run`, same seed): the synchronous design makes
// every step a pure function of (seed, step, weights), and every crash path
// re-creates the same groups or re-trains from them (README "Crash semantics").
// Also the SIGTERM drain: a rolling restart of every role mid-run, each role
// exiting 0 within a Kubernetes-like grace period, loses nothing.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/e2e/serve_cluster.h"

namespace zerorl {
namespace {

using Clock = std::chrono::steady_clock;
using e2e::ServeCluster;

constexpr int kSteps = 6, kB = 4, kG = 4;
// Small weight-transfer messages stretch the push (about 4k messages for the
// 3.9 MB policy), so a kill lands inside it.
constexpr const char* kLearnerExtra = "  weight_chunk_bytes: 1024\n";

// When a kill fires, relative to the run's progress.
enum class When {
  kStep,        // `delay_ms` after `step` steps are recorded (a random point of the next step)
  kTrain,       // `delay_ms` after step `step`'s groups are stored: the learner is training it
  kCheckpoint,  // while a checkpoint after step `step` is being written (a .tmp-step directory exists)
  kPush,        // right after the checkpoint of step `step` is published: the weight push follows
};

struct KillAt {
  std::string role;
  When when;
  int step;
  int delay_ms = 0;
};

std::string Describe(const KillAt& k) {
  const char* w = k.when == When::kStep ? "step" : k.when == When::kTrain ? "train" : k.when == When::kCheckpoint ? "checkpoint" : "push";
  return absl::StrCat(k.role, "@", w, k.step, "+", k.delay_ms, "ms");
}

bool TmpCheckpointExists(const std::string& root) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root, ec)) {
    if (e.path().filename().string().rfind(".tmp-step", 0) == 0) return true;
  }
  return false;
}

// Waits for the kill's moment; false when the run ended first.
bool WaitForMoment(const ServeCluster& c, const KillAt& k) {
  const auto give_up = Clock::now() + std::chrono::seconds(300);
  auto poll = [&](auto ready, std::chrono::microseconds every) {
    while (Clock::now() < give_up) {
      if (ready()) return true;
      if (c.Finished()) return false;
      std::this_thread::sleep_for(every);
    }
    return false;
  };
  using std::chrono::microseconds;
  if (!poll([&] { return c.StepsRecorded() >= static_cast<size_t>(k.step); }, microseconds(20000))) return false;
  switch (k.when) {
    case When::kStep:
      break;
    case When::kTrain:
      if (!poll([&] { return c.StepStored(k.step); }, microseconds(2000))) return false;
      break;
    case When::kCheckpoint:
      // A write lasts milliseconds; if three steps pass without one caught,
      // the kill lands between steps instead (the run logs which it was).
      if (!poll([&] { return TmpCheckpointExists(c.checkpoints()) || c.StepsRecorded() >= static_cast<size_t>(k.step + 3); },
                microseconds(200)))
        return false;
      return true;
    case When::kPush: {
      const std::string ck = std::filesystem::path(ServeCluster::FinalCheckpoint(c.checkpoints(), k.step + 1)).parent_path();
      if (!poll([&] { return std::filesystem::exists(ck); }, microseconds(200))) return false;
      return true;
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(k.delay_ms));
  return true;
}

class ChaosTest : public ::testing::Test {
 protected:
  // The undisturbed run's final weights, computed once for every schedule.
  static const std::string& Baseline(const ServeCluster& c) {
    static const std::string* weights = [&] {
      const std::string dir = testing::MakeTempDir("chaos-baseline");
      auto* w = new std::string(c.UndisturbedWeights(dir + "/run"));
      return w;
    }();
    return *weights;
  }

  // `check` runs on the finished cluster (its logs) before it stops.
  void RunSchedule(const std::string& name, const std::vector<KillAt>& kills,
                   const std::function<void(const ServeCluster&)>& check = {}) {
    const std::string dir = testing::MakeTempDir("chaos-" + name);
    ServeCluster c(dir, kSteps, kB, kG, kLearnerExtra);
    const std::string& baseline = Baseline(c);
    ASSERT_FALSE(baseline.empty()) << "the undisturbed run wrote no final checkpoint";
    c.StartAll();
    int fired = 0;
    for (const KillAt& k : kills) {
      if (!WaitForMoment(c, k)) {
        ADD_FAILURE() << name << ": the run ended before kill " << Describe(k);
        break;
      }
      const bool mid_write = k.when == When::kCheckpoint && TmpCheckpointExists(c.checkpoints());
      c.KillAndRestart(k.role);
      ++fired;
      std::printf("[chaos %s] killed %s at %zu steps recorded%s\n", name.c_str(), Describe(k).c_str(),
                  c.StepsRecorded(),
                  mid_write ? " (a checkpoint write was cut)" : "");
      std::fflush(stdout);
    }
    EXPECT_EQ(fired, static_cast<int>(kills.size()));
    ASSERT_TRUE(c.WaitFinished(300)) << name << ": the run did not finish; see " << dir;
    c.ExpectIntact();
    EXPECT_TRUE(c.FinalWeights() == baseline) << name << ": final weights differ from the undisturbed run's";
    if (check) check(c);
    c.StopAll();
  }
};

// The schedule of issue 16: the learner SIGKILLed while it trains, twice.
TEST_F(ChaosTest, LearnerKilledDuringTrainTwice) {
  std::mt19937 rng(1);
  RunSchedule("learner-train", {{"learner", When::kTrain, 1, static_cast<int>(rng() % 60)},
                                {"learner", When::kTrain, 3, static_cast<int>(rng() % 60)}});
}

TEST_F(ChaosTest, LearnerKilledDuringCheckpointWriteAndWeightPush) {
  RunSchedule("learner-ckpt-push", {{"learner", When::kCheckpoint, 1}, {"learner", When::kPush, 3}});
}

TEST_F(ChaosTest, BufferOrchestratorAndWorkersKilled) {
  std::mt19937 rng(3);
  auto d = [&] { return static_cast<int>(rng() % 300); };
  RunSchedule("others", {{"buffer", When::kTrain, 1, 0},
                         {"rollout0", When::kStep, 2, d()},
                         {"orchestrator", When::kTrain, 2, d()},
                         {"reward", When::kStep, 3, d()},
                         {"buffer", When::kStep, 4, d()},
                         {"rollout1", When::kStep, 4, d()}});
}

// The orchestrator SIGKILLed as soon as step 1's groups are stored, before it
// records the step: the restarted orchestrator does not generate them again
// but takes the step (and its metrics, checked in ExpectIntact) from the buffer.
TEST_F(ChaosTest, OrchestratorKilledOnceAStepIsStoredTakesItFromTheBuffer) {
  RunSchedule("orchestrator-stored", {{"orchestrator", When::kTrain, 1, 0}}, [](const ServeCluster& c) {
    const std::string log = ServeCluster::ReadBytes(c.Log("orchestrator", 2));
    EXPECT_NE(log.find("step 1: its groups are stored already"), std::string::npos) << log;
  });
}

// Seeded random schedules over every role.
TEST_F(ChaosTest, RandomSchedules) {
  for (uint32_t seed : {11u, 12u}) {
    std::mt19937 rng(seed);
    std::vector<KillAt> kills;
    int step = 0;
    while (kills.size() < 4) {
      step += static_cast<int>(rng() % 2);
      if (step >= kSteps) break;
      const std::string role = ServeCluster::kRoles[rng() % 6];
      kills.push_back({role, rng() % 2 ? When::kTrain : When::kStep, step, static_cast<int>(rng() % 400)});
      ++step;
    }
    std::string names;
    for (const auto& k : kills) names += Describe(k) + " ";
    SCOPED_TRACE(absl::StrCat("seed ", seed, ": ", names));
    RunSchedule(absl::StrCat("random-", seed), kills);
  }
}

// SIGTERM drain: each role in turn is terminated mid-run (a rolling restart),
// exits 0 within the grace period, and is started again; nothing is lost.
TEST_F(ChaosTest, RollingRestartBySigtermLosesNothing) {
  const std::string dir = testing::MakeTempDir("chaos-drain");
  ServeCluster c(dir, kSteps, kB, kG, kLearnerExtra);
  const std::string& baseline = Baseline(c);
  c.StartAll();
  const std::vector<KillAt> order = {{"rollout0", When::kTrain, 0, 0}, {"learner", When::kTrain, 1, 20},
                                     {"reward", When::kStep, 2, 50},   {"buffer", When::kStep, 2, 200},
                                     {"rollout1", When::kStep, 3, 30}, {"orchestrator", When::kStep, 4, 100}};
  for (const KillAt& k : order) {
    ASSERT_TRUE(WaitForMoment(c, k)) << "the run ended before " << Describe(k);
    const auto t0 = Clock::now();
    EXPECT_EQ(c.Terminate(k.role, std::chrono::seconds(30)), 0) << k.role << " did not drain and exit 0 in 30 s";
    std::printf("[drain] %s exited after SIGTERM in %.2f s\n", k.role.c_str(),
                std::chrono::duration<double>(Clock::now() - t0).count());
    c.Start(k.role);
  }
  ASSERT_TRUE(c.WaitFinished(300)) << "the run did not finish; see " << dir;
  c.ExpectIntact();
  EXPECT_TRUE(c.FinalWeights() == baseline) << "final weights differ from the undisturbed run's";
  c.StopAll();
}

}  // namespace
}  // namespace zerorl
