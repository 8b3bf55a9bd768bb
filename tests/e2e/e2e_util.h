// Helpers shared by the end-to-end tests: run configs for the countdown demo
// data, free ports, metrics and buffer read-back.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <grpcpp/create_channel.h>

#include "common/net.h"
#include "orchestrator/metrics_log.h"
#include "tests/testing/subprocess.h"
#include "zerorl/v1/buffer.grpc.pb.h"

namespace zerorl::e2e {

// A free loopback port (the test fails where none is).
inline int FreePort() {
  auto port = FreeLoopbackPort();
  EXPECT_TRUE(port.ok()) << port.status();
  return port.ok() ? *port : -1;
}

// A small countdown run over the demo's data and base checkpoint. `extra` is
// appended verbatim (more YAML sections).
inline std::string CountdownConfig(const std::string& run_dir, int total_steps, int prompts_per_step, int group_size,
                                   int eval_every, int eval_prompts, const std::string& extra = "",
                                   const std::string& train_path = "") {
  const std::string ex = testing::SourceDir() + "/examples/countdown";
  const std::string train = train_path.empty() ? ex + "/train.jsonl" : train_path;
  std::string y;
  y += "run_id: e2e\nrun_dir: " + run_dir + "\nseed: 3\n";
  y += "model:\n  path: " + ex + "/base\n  tokenizer: char\n  threads: 2\n";
  y += "dataset:\n  kind: countdown\n  train_path: " + train + "\n  eval_path: " + ex + "/eval.jsonl\n";
  y += "  template: custom\n  template_text: \"nums {nums} target {target}\\n<think>\"\n";
  y += "reward:\n  spec_path: " + ex + "/reward.yaml\n";
  y += "learner:\n  grpo:\n    beta: 0.0\n  optimizer:\n    lr: 0.0003\n  checkpoint:\n    every_steps: 1\n    keep_last: 2\n";
  y += "orchestrator:\n  total_steps: " + std::to_string(total_steps) + "\n  call_deadline_ms: 60000\n";
  y += "  heartbeat_ms: 300\n  max_retries: 3\n";
  y += "  eval:\n    every_steps: " + std::to_string(eval_every) + "\n    prompts: " + std::to_string(eval_prompts) + "\n";
  y += "rollout:\n  group_size: " + std::to_string(group_size) + "\n  prompts_per_step: " +
       std::to_string(prompts_per_step) + "\n  sampling:\n    temperature: 1.0\n    max_new_tokens: 80\n";
  y += extra;
  return y;
}

inline void WriteText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

inline std::vector<zerorl::v1::StepMetrics> Metrics(const std::string& run_dir) {
  auto m = ReadMetricsJsonl(run_dir + "/metrics.jsonl");
  return m.ok() ? *m : std::vector<zerorl::v1::StepMetrics>{};
}

// Waits until metrics.jsonl has at least n steps; false after `seconds`.
inline bool WaitForSteps(const std::string& run_dir, size_t n, int seconds) {
  for (int i = 0; i < seconds * 20; ++i) {
    if (Metrics(run_dir).size() >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Every stored trajectory of `run_id`, through BufferService.ListTrajectories.
inline std::vector<zerorl::v1::Trajectory> ListAll(const std::string& buffer_address, const std::string& run_id) {
  auto stub = zerorl::v1::BufferService::NewStub(
      grpc::CreateChannel(buffer_address, grpc::InsecureChannelCredentials()));
  std::vector<zerorl::v1::Trajectory> out;
  std::string token;
  for (int page = 0; page < 10000; ++page) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    zerorl::v1::ListTrajectoriesRequest req;
    req.mutable_filter()->set_run_id(run_id);
    req.set_page_size(500);
    req.set_page_token(token);
    zerorl::v1::ListTrajectoriesResponse resp;
    if (!stub->ListTrajectories(&ctx, req, &resp).ok()) break;
    for (const auto& t : resp.trajectories()) out.push_back(t);
    token = resp.next_page_token();
    if (token.empty()) break;
  }
  return out;
}

}  // namespace zerorl::e2e
