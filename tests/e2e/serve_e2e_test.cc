// Every actor as its own `zerorl serve` process on loopback: buffer, reward,
// learner, two rollout workers and the orchestrator. A rollout worker is
// SIGKILLed mid-run (its steps complete on the other worker), then the
// orchestrator is SIGKILLed and restarted: it continues at the right step, and
// the buffer holds every trajectory of every step exactly once.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "tests/e2e/e2e_util.h"
#include "tests/testing/subprocess.h"

namespace zerorl {
namespace {

using testing::Subprocess;
using testing::ZerorlBin;

using e2e::WaitForSteps;

TEST(ServeE2eTest, SurvivesRolloutAndOrchestratorKills) {
  const std::string dir = testing::MakeTempDir("e2e-serve");
  const std::string run_dir = dir + "/run";
  const int steps = 8, B = 4, G = 4;
  const int p_buffer = e2e::FreePort(), p_reward = e2e::FreePort(), p_learner = e2e::FreePort(),
            p_roll0 = e2e::FreePort(), p_roll1 = e2e::FreePort(), p_orch = e2e::FreePort();
  auto addr = [](int p) { return absl::StrCat("127.0.0.1:", p); };
  const std::string extra = absl::StrCat("buffer:\n  address: ", addr(p_buffer), "\n");
  // The run config plus every actor's address, for the orchestrator and the learner.
  std::string cfg = e2e::CountdownConfig(run_dir, steps, B, G, 0, 0, extra);
  auto insert_after = [&](const std::string& section, const std::string& line) {
    const size_t pos = cfg.find(section);
    ASSERT_NE(pos, std::string::npos) << section;
    cfg.insert(pos + section.size(), line);
  };
  insert_after("\nrollout:\n", absl::StrCat("  workers: [\"", addr(p_roll0), "\", \"", addr(p_roll1), "\"]\n"));
  insert_after("\nreward:\n", absl::StrCat("  workers: [\"", addr(p_reward), "\"]\n"));
  insert_after("\nlearner:\n", absl::StrCat("  address: ", addr(p_learner), "\n"));
  insert_after("\norchestrator:\n", absl::StrCat("  address: ", addr(p_orch), "\n"));
  e2e::WriteText(dir + "/run.yaml", cfg);
  const std::string config = dir + "/run.yaml";
  auto serve = [&](Subprocess* p, const std::string& role, int port) {
    ASSERT_TRUE(p->Start({ZerorlBin(), "serve", role, "--config", config, "--port", std::to_string(port), "--host",
                          "127.0.0.1"},
                         dir + "/" + role + "-" + std::to_string(port) + ".log"));
    ASSERT_TRUE(p->WaitForLine("listening ", std::chrono::seconds(120)).has_value()) << role << " did not start";
  };
  Subprocess buffer, reward, learner, roll0, roll1, orch;
  serve(&buffer, "buffer", p_buffer);
  serve(&reward, "reward", p_reward);
  serve(&learner, "learner", p_learner);
  serve(&roll0, "rollout", p_roll0);
  serve(&roll1, "rollout", p_roll1);
  serve(&orch, "orchestrator", p_orch);

  // Kill rollout worker 1 as soon as a step is recorded: the next step is in flight.
  ASSERT_TRUE(WaitForSteps(run_dir, 2, 300)) << "no progress; see " << dir;
  roll1.Signal(SIGKILL);
  roll1.Wait();
  const size_t at_kill = e2e::Metrics(run_dir).size();
  ASSERT_TRUE(WaitForSteps(run_dir, at_kill + 2, 300)) << "no step completed after the rollout worker died";

  // Kill the orchestrator mid-run, restart it: it continues where it was.
  const size_t before_orch_kill = e2e::Metrics(run_dir).size();
  ASSERT_LT(before_orch_kill, static_cast<size_t>(steps));
  orch.Signal(SIGKILL);
  orch.Wait();
  Subprocess orch2;
  serve(&orch2, "orchestrator", p_orch);
  ASSERT_TRUE(WaitForSteps(run_dir, steps, 600)) << "the restarted orchestrator did not finish; see " << dir;
  std::this_thread::sleep_for(std::chrono::seconds(1));

  auto m = e2e::Metrics(run_dir);
  ASSERT_EQ(m.size(), static_cast<size_t>(steps));
  for (int s = 0; s < steps; ++s) EXPECT_EQ(m[s].step(), s);

  // The buffer holds each (step, group, sample) exactly once, for every step.
  auto trajectories = e2e::ListAll(addr(p_buffer), "e2e");
  std::map<std::tuple<int64_t, int, int>, int> seen;
  std::set<std::string> workers_after_kill;
  for (const auto& t : trajectories) {
    ++seen[{t.id().step(), t.id().group(), t.id().sample()}];
    if (t.id().step() >= static_cast<int64_t>(at_kill)) workers_after_kill.insert(t.sample().worker());
  }
  EXPECT_EQ(trajectories.size(), static_cast<size_t>(steps * B * G));
  for (int s = 0; s < steps; ++s) {
    for (int g = 0; g < B; ++g) {
      for (int k = 0; k < G; ++k) EXPECT_EQ((seen[{s, g, k}]), 1) << s << "/" << g << "/" << k;
    }
  }
  EXPECT_EQ(workers_after_kill.count(addr(p_roll1)), 0u) << "trajectories from the killed worker after its death";

  for (auto* p : {&orch2, &learner, &roll0, &reward, &buffer}) p->Signal(SIGTERM);
  for (auto* p : {&orch2, &learner, &roll0, &reward, &buffer}) p->Wait(std::chrono::seconds(30));
}

}  // namespace
}  // namespace zerorl
