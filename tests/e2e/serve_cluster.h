// Test helper for the crash tests: a serve-mode countdown run on loopback —
// buffer, reward, learner, two rollout workers and the orchestrator, each its
// own `zerorl serve` process that can be SIGKILLed or SIGTERMed and started
// again with the same arguments — and the checks every crashed run must pass.
// Not thread-safe.
#pragma once

#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <algorithm>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "orchestrator/run_state.h"
#include "tests/e2e/e2e_util.h"
#include "tests/testing/subprocess.h"

namespace zerorl::e2e {

class ServeCluster {
 public:
  static constexpr const char* kRoles[] = {"buffer", "reward", "learner", "rollout0", "rollout1", "orchestrator"};

  // A run of `steps` steps of B prompts x G samples under `dir`; every step is
  // checkpointed; `extra_learner` / `extra_orchestrator` / `extra_rollout` are added to those sections.
  ServeCluster(const std::string& dir, int steps, int B, int G, const std::string& extra_learner = "",
               const std::string& extra_orchestrator = "", const std::string& extra_rollout = "")
      : dir_(dir), run_dir_(dir + "/run"), steps_(steps), B_(B), G_(G) {
    for (const char* r : kRoles) ports_[r] = FreePort();
    std::string cfg = CountdownConfig(run_dir_, steps, B, G, 0, 0, absl::StrCat("buffer:\n  address: ", Address("buffer"), "\n"));
    auto insert_after = [&](const std::string& section, const std::string& line) {
      const size_t pos = cfg.find(section);
      if (pos != std::string::npos) cfg.insert(pos + section.size(), line);
    };
    insert_after("\nrollout:\n",
                 absl::StrCat("  workers: [\"", Address("rollout0"), "\", \"", Address("rollout1"), "\"]\n",
                              extra_rollout));
    insert_after("\nreward:\n", absl::StrCat("  workers: [\"", Address("reward"), "\"]\n"));
    insert_after("\nlearner:\n", absl::StrCat("  address: ", Address("learner"), "\n", extra_learner));
    // One text counter, so that ExpectIntact can check that metric (and the
    // token count) against the stored completions on every step.
    insert_after("\norchestrator:\n", absl::StrCat("  address: ", Address("orchestrator"), "\n",
                                                   "  text_counters:\n    - name: equals\n      substrings: [\"=\"]\n",
                                                   extra_orchestrator));
    config_ = dir + "/run.yaml";
    WriteText(config_, cfg);
  }

  const std::string& config() const { return config_; }
  const std::string& run_dir() const { return run_dir_; }
  std::string checkpoints() const { return run_dir_ + "/checkpoints"; }
  std::string Address(const std::string& role) const { return absl::StrCat("127.0.0.1:", ports_.at(role)); }
  bool running(const std::string& role) const { return procs_.count(role) && procs_.at(role)->running(); }

  // Starts `role` and waits for its "listening" line.
  void Start(const std::string& role) {
    auto p = std::make_unique<testing::Subprocess>();
    const std::string serve_role = role.rfind("rollout", 0) == 0 ? "rollout" : role;
    const std::string log = Log(role, ++starts_[role]);
    ASSERT_TRUE(p->Start({testing::ZerorlBin(), "serve", serve_role, "--config", config_, "--port",
                          std::to_string(ports_.at(role)), "--host", "127.0.0.1"},
                         log));
    ASSERT_TRUE(p->WaitForLine("listening ", std::chrono::seconds(120)).has_value())
        << role << " did not start; see " << log;
    procs_[role] = std::move(p);
  }
  void StartAll() {
    for (const char* r : kRoles) Start(r);
  }
  // SIGKILL and reap.
  void Kill(const std::string& role) {
    procs_.at(role)->Signal(SIGKILL);
    procs_.at(role)->Wait();
  }
  // The log of `role`'s `start`-th start (1 is the first).
  std::string Log(const std::string& role, int start) const { return absl::StrCat(dir_, "/", role, "-", start, ".log"); }
  void KillAndRestart(const std::string& role) {
    Kill(role);
    Start(role);
  }
  // SIGTERM; returns the exit code (-1 when it did not exit within `grace`).
  int Terminate(const std::string& role, std::chrono::seconds grace) {
    procs_.at(role)->Signal(SIGTERM);
    return procs_.at(role)->Wait(grace);
  }
  void StopAll() {
    for (const char* r : kRoles) {
      if (running(r)) procs_.at(r)->Signal(SIGTERM);
    }
    for (const char* r : kRoles) {
      if (running(r)) procs_.at(r)->Wait(std::chrono::seconds(30));
    }
  }

  size_t StepsRecorded() const { return Metrics(run_dir_).size(); }
  // Whether the groups of `step` are in the buffer (so the learner trains it now).
  bool StepStored(int64_t step) const {
    auto stub = zerorl::v1::BufferService::NewStub(
        grpc::CreateChannel(Address("buffer"), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    zerorl::v1::StepStatsRequest req;
    req.set_run_id("e2e");
    req.set_step_min(step);
    req.set_step_max(step);
    zerorl::v1::StepStatsResponse resp;
    if (!stub->GetStepStats(&ctx, req, &resp).ok()) return false;
    for (const auto& s : resp.steps()) {
      if (s.step() == step && s.count() > 0) return true;
    }
    return false;
  }
  bool Finished() const {
    auto st = LoadRunState(run_dir_ + "/state.json");
    return st.ok() && st->state == zerorl::v1::RUN_STATE_FINISHED;
  }
  // Waits for FINISHED; false after `seconds`.
  bool WaitFinished(int seconds) const {
    for (int i = 0; i < seconds * 10; ++i) {
      if (Finished()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  // The run's invariants after any crashes: every step's metrics once, with
  // policy version step + 1; every (step, group, sample) stored once.
  void ExpectIntact() const {
    auto m = Metrics(run_dir_);
    ASSERT_EQ(m.size(), static_cast<size_t>(steps_)) << "metrics.jsonl of " << run_dir_;
    for (int s = 0; s < steps_; ++s) {
      EXPECT_EQ(m[s].step(), s);
      EXPECT_EQ(m[s].values().at("policy_version"), s + 1) << "step " << s;
    }
    auto trajectories = ListAll(Address("buffer"), "e2e");
    std::map<std::tuple<int64_t, int, int>, int> seen;
    for (const auto& t : trajectories) {
      ++seen[{t.id().step(), t.id().group(), t.id().sample()}];
      EXPECT_NE(t.sample().finish_reason(), zerorl::v1::FINISH_REASON_ABORT) << t.id().ShortDebugString();
    }
    EXPECT_EQ(trajectories.size(), static_cast<size_t>(steps_ * B_ * G_));
    for (int s = 0; s < steps_; ++s)
      for (int g = 0; g < B_; ++g)
        for (int k = 0; k < G_; ++k) EXPECT_EQ((seen[{s, g, k}]), 1) << s << "/" << g << "/" << k;
    // Every step's metrics agree with its stored completions, whichever way
    // they were recorded: from the generated samples, or read back from the
    // buffer by an orchestrator restarted after the step's groups were stored.
    std::map<int64_t, std::pair<double, double>> recount;  // step -> (tokens, '=' count)
    for (const auto& t : trajectories) {
      recount[t.id().step()].first += t.sample().token_ids_size();
      const std::string& text = t.sample().text();
      recount[t.id().step()].second += static_cast<double>(std::count(text.begin(), text.end(), '='));
    }
    for (int s = 0; s < steps_; ++s) {
      const auto& v = m[s].values();
      ASSERT_TRUE(v.count("completion_tokens") && v.count("equals_per_completion")) << "step " << s;
      EXPECT_EQ(v.at("completion_tokens"), recount[s].first) << "step " << s;
      EXPECT_NEAR(v.at("equals_per_completion"), recount[s].second / (B_ * G_), 1e-9) << "step " << s;
    }
  }

  // The final checkpoint's weights (model.safetensors bytes).
  std::string FinalWeights() const { return ReadBytes(FinalCheckpoint(run_dir_ + "/checkpoints", steps_)); }

  static std::string FinalCheckpoint(const std::string& root, int steps) {
    char name[32];
    std::snprintf(name, sizeof(name), "step-%08d", steps);
    return root + "/" + name + "/model.safetensors";
  }
  static std::string ReadBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // The same run undisturbed, all in one process (`zerorl run`) under
  // `run_dir`: its final weights.
  std::string UndisturbedWeights(const std::string& run_dir) const {
    std::string out;
    const int rc = testing::RunCommand({testing::ZerorlBin(), "run", config_, "--port", "0", "--no-progress",
                                        "--run-dir", run_dir},
                                       &out, std::chrono::seconds(600));
    EXPECT_EQ(rc, 0) << out;
    return ReadBytes(FinalCheckpoint(run_dir + "/checkpoints", steps_));
  }

 private:
  std::string dir_, run_dir_, config_;
  int steps_, B_, G_;
  std::map<std::string, int> ports_;
  std::map<std::string, int> starts_;
  std::map<std::string, std::unique_ptr<testing::Subprocess>> procs_;
};

}  // namespace zerorl::e2e
