// zerorlctl against a live `zerorl run` (every actor on one TCP port, the
// orchestrator included), given only --addr: runs list/show/pause/resume/stop,
// workers list with live health checks, metrics, and traj/reward commands that
// find the buffer and reward service through the orchestrator's RunInfo.
#include <signal.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include <grpcpp/create_channel.h>

#include "tests/cli/ctl_fixture.h"
#include "tests/testing/raw_grpc.h"
#include "tests/testing/subprocess.h"

namespace zerorl::ctl::testing {
namespace {

using zerorl::testing::Subprocess;

// A countdown run over the demo's data and base checkpoint, long enough that
// the test (not the schedule) ends it.
std::string RunYaml(const std::string& dir) {
  const std::string ex = zerorl::testing::SourceDir() + "/examples/countdown";
  return absl::StrCat(
      "run_id: ctlrun\nrun_dir: ", dir, "/run\nseed: 5\n",
      "model:\n  path: ", ex, "/base\n  tokenizer: char\n  threads: 1\n",
      "dataset:\n  kind: countdown\n  train_path: ", ex, "/train.jsonl\n  eval_path: ", ex, "/eval.jsonl\n",
      "  template: custom\n  template_text: \"nums {nums} target {target}\\n<think>\"\n",
      "reward:\n  spec_path: ", ex, "/reward.yaml\n",
      "rollout:\n  group_size: 2\n  prompts_per_step: 2\n  sampling:\n    max_new_tokens: 16\n",
      "learner:\n  checkpoint:\n    every_steps: 1000\n",
      "orchestrator:\n  total_steps: 100000\n  heartbeat_ms: 300\n  eval:\n    every_steps: 0\n",
      "server:\n  token_file: ", dir, "/token\n");
}

class CtlRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = zerorl::testing::MakeTempDir("ctl-run");
    std::ofstream(dir_ + "/token") << "run-token\n";
    std::ofstream(dir_ + "/run.yaml") << RunYaml(dir_);
    ASSERT_TRUE(run_.Start({zerorl::testing::ZerorlBin(), "run", dir_ + "/run.yaml", "--port", "0", "--no-progress"},
                           dir_ + "/run-stderr"));
    auto line = run_.WaitForLine("zerorl run ctlrun: listening on ", std::chrono::seconds(120));
    ASSERT_TRUE(line.has_value()) << "zerorl run did not start";
    addr_ = line->substr(0, line->find(','));  // "HOST:PORT, run dir DIR"
  }
  void TearDown() override {
    if (run_.running()) {
      run_.Signal(SIGTERM);
      if (run_.Wait(std::chrono::seconds(60)) < 0) run_.Signal(SIGKILL);
    }
  }

  CtlResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--addr", addr_});
    return Ctl(std::move(args));
  }
  std::string RunState() {
    CtlResult r = Run({"-o", "json", "runs", "show", "ctlrun"});
    EXPECT_EQ(r.code, 0) << r.err;
    return r.code == 0 ? nlohmann::json::parse(r.out)["state"].get<std::string>() : "";
  }

  std::string dir_, addr_;
  Subprocess run_;
};

TEST_F(CtlRunTest, EveryCommandAgainstTheAllInOnePort) {
  // runs list / show, each output mode.
  CtlResult list = Run({"runs", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_EQ(list.out.rfind("RUN", 0), 0u) << list.out;
  EXPECT_NE(list.out.find("ctlrun"), std::string::npos) << list.out;
  CtlResult jl = Run({"-o", "jsonl", "runs", "list"});
  ASSERT_EQ(jl.code, 0);
  EXPECT_EQ(nlohmann::json::parse(jl.out)["run_id"], "ctlrun");
  CtlResult show = Run({"runs", "show", "ctlrun"});
  ASSERT_EQ(show.code, 0) << show.err;
  EXPECT_NE(show.out.find("buffer"), std::string::npos);
  EXPECT_NE(show.out.find("config:"), std::string::npos) << show.out;
  EXPECT_EQ(Run({"runs", "show", "nosuchrun"}).code, 1);

  // workers list: each registered actor, probed live (the registry fills as actors report).
  CtlResult workers;
  std::set<std::string> roles, serving;
  for (int i = 0; i < 100 && serving.size() < 4; ++i) {
    workers = Run({"-o", "json", "workers", "list"});
    ASSERT_EQ(workers.code, 0) << workers.err;
    roles.clear();
    serving.clear();
    const auto doc = nlohmann::json::parse(workers.out);
    for (const auto& w : doc["workers"]) {
      roles.insert(w["role"].get<std::string>());
      if (w["health"] == "serving") serving.insert(w["role"].get<std::string>());
    }
    if (serving.size() < 4) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(serving, (std::set<std::string>{"WORKER_ROLE_BUFFER", "WORKER_ROLE_REWARD", "WORKER_ROLE_ROLLOUT",
                                            "WORKER_ROLE_LEARNER"}))
      << workers.out;
  CtlResult wtable = Run({"workers", "list"});
  ASSERT_EQ(wtable.code, 0);
  EXPECT_NE(wtable.out.find("serving"), std::string::npos) << wtable.out;
  EXPECT_NE(wtable.out.find("HEARTBEAT"), std::string::npos);

  // metrics once a step is done.
  CtlResult metrics;
  for (int i = 0; i < 600; ++i) {
    metrics = Run({"-o", "jsonl", "metrics", "--run", "ctlrun"});
    if (metrics.code == 0 && !metrics.out.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_FALSE(metrics.out.empty()) << "no step finished: " << metrics.err;
  EXPECT_EQ(nlohmann::json::parse(metrics.out.substr(0, metrics.out.find('\n')))["step"], "0");
  CtlResult mtable = Run({"metrics", "--last", "1"});  // the only run by default
  ASSERT_EQ(mtable.code, 0) << mtable.err;
  std::vector<std::string> mlines = absl::StrSplit(mtable.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(mlines.size(), 2u) << mtable.out;
  EXPECT_EQ(mlines[0].rfind("STEP", 0), 0u);
  EXPECT_NE(mlines[0].find("reward_mean"), std::string::npos) << mlines[0];

  // The buffer and the reward service are found through RunInfo.
  CtlResult traj = Run({"-o", "jsonl", "traj", "list", "--run", "ctlrun", "--step", "0"});
  ASSERT_EQ(traj.code, 0) << traj.err;
  std::vector<std::string> ids = JsonlIds(traj.out);
  ASSERT_EQ(ids.size(), 4u) << traj.out;  // 2 prompts x 2 samples
  EXPECT_EQ(Run({"traj", "show", ids[0]}).code, 0);
  EXPECT_EQ(Run({"reward", "get"}).code, 0);

  // Actor calls are locked on the all-in-one port although this config sets no
  // server.internal_token_file (a fresh secret per start): the issue-16
  // reproduction, a bare RolloutService/Drain, is refused and the run goes on.
  auto channel = grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials());
  const std::string abort_in_flight("\x08\x01", 2);
  for (const std::string& token : {std::string(), std::string("guess")}) {
    const grpc::Status drain = zerorl::testing::RawCall(channel, "/zerorl.v1.RolloutService/Drain", abort_in_flight, token);
    EXPECT_EQ(drain.error_code(), grpc::StatusCode::UNAUTHENTICATED) << drain.error_message();
    const grpc::Status save = zerorl::testing::RawCall(channel, "/zerorl.v1.LearnerService/SaveCheckpoint", "", token);
    EXPECT_EQ(save.error_code(), grpc::StatusCode::UNAUTHENTICATED) << save.error_message();
  }

  // Admin calls: refused without the token; with it, the state follows.
  CtlResult refused = Run({"runs", "pause", "ctlrun"});
  EXPECT_EQ(refused.code, 4) << refused.err;
  EXPECT_EQ(RunState(), "RUN_STATE_RUNNING");
  const std::string token = dir_ + "/token";
  CtlResult pause = Run({"--token-file", token, "runs", "pause", "ctlrun"});
  ASSERT_EQ(pause.code, 0) << pause.err;
  EXPECT_TRUE(pause.out.rfind("run ctlrun: paused", 0) == 0 ||
              pause.out.rfind("run ctlrun: pausing after the step in flight, now running", 0) == 0)
      << pause.out;
  // The step in flight finishes first.
  for (int i = 0; i < 600 && RunState() != "RUN_STATE_PAUSED"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(RunState(), "RUN_STATE_PAUSED");
  const int64_t paused_at = std::stoll(
      nlohmann::json::parse(Run({"-o", "json", "runs", "show", "ctlrun"}).out)["step"].get<std::string>());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(std::stoll(nlohmann::json::parse(Run({"-o", "json", "runs", "show", "ctlrun"}).out)["step"]
                           .get<std::string>()),
            paused_at)
      << "a paused run kept stepping";
  CtlResult resume = Run({"--token-file", token, "-o", "json", "runs", "resume", "ctlrun"});
  ASSERT_EQ(resume.code, 0) << resume.err;
  EXPECT_EQ(nlohmann::json::parse(resume.out)["state"], "RUN_STATE_RUNNING");
  CtlResult stop = Run({"--token-file", token, "runs", "stop", "ctlrun"});
  ASSERT_EQ(stop.code, 0) << stop.err;
  EXPECT_EQ(stop.out.rfind("run ctlrun: ", 0), 0u) << stop.out;
  // A stopped run ends `zerorl run` after the step in flight.
  EXPECT_EQ(run_.Wait(std::chrono::seconds(120)), 0);
  CtlResult gone = Run({"--timeout", "2s", "runs", "list"});
  EXPECT_EQ(gone.code, 3) << gone.err;
}

}  // namespace
}  // namespace zerorl::ctl::testing
