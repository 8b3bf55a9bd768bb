// `zerorl run CONFIG`: a whole GRPO run in one process. Every actor (buffer,
// reward, rollout, learner, orchestrator) is served by one gRPC server; the
// orchestrator reaches them through in-process channels, and the server also
// listens on TCP (orchestrator.listen_port, or --port) so zerorlctl can watch
// and steer the run. Ctrl-C (SIGINT) or SIGTERM finishes the step in flight,
// checkpoints and exits 0; the same command then resumes where it stopped.
// At the end it prints a before/after table and draws RUN_DIR/curves.{svg,png}.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <grpcpp/create_channel.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "buffer/actor.h"
#include "common/commands.h"
#include "common/config.h"
#include "common/log.h"
#include "common/server.h"
#include "common/shutdown_signal.h"
#include "learner/actor.h"
#include "model/tokenizer.h"
#include "orchestrator/metrics_log.h"
#include "orchestrator/orchestrator_service.h"
#include "orchestrator/plot.h"
#include "orchestrator/progress.h"
#include "orchestrator/run_controller.h"
#include "reward/actor.h"
#include "rollout/actor.h"
#include "rollout/model_source.h"

namespace zerorl {
namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "zerorl run: %s\n", what.c_str());
  return 1;
}

// A TCP port that is free right now on the loopback interface.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

void PrintSummary(const zerorl::v1::RunConfig& config, const RunSummary& s,
                  const std::vector<zerorl::v1::StepMetrics>& metrics, const std::string& curves) {
  // Before / after from the whole metrics history (a resumed run included).
  double before = s.eval_before, after = s.eval_after, r_first = s.reward_first, r_last = s.reward_last;
  bool has_before = s.has_before, has_after = s.has_after, has_r = false;
  for (const auto& m : metrics) {
    auto e = m.values().find("eval_accuracy");
    if (e != m.values().end()) {
      if (!has_before && m.step() == 0) {
        before = e->second;
        has_before = true;
      }
      after = e->second;
      has_after = true;
    }
    auto r = m.values().find("reward_mean");
    if (r != m.values().end()) {
      if (!has_r) r_first = r->second;
      r_last = r->second;
      has_r = true;
    }
  }
  auto pct = [](bool has, double v) { return has ? absl::StrFormat("%6.1f%%", 100 * v) : std::string("     -"); };
  std::printf("\nrun %s — %s\n", config.run_id().c_str(), config.run_dir().c_str());
  std::printf("  %-28s %8s %8s\n", "", "before", "after");
  std::printf("  %-28s %8s %8s\n", "eval accuracy (greedy)", pct(has_before, before).c_str(),
              pct(has_after, after).c_str());
  if (has_r) std::printf("  %-28s %8.3f %8.3f\n", "train reward (mean)", r_first, r_last);
  if (s.steps_done > 0) {
    std::printf("  %lld steps in %s (%.1f s/step)\n", static_cast<long long>(s.steps_done),
                FormatDuration(s.seconds).c_str(), s.seconds / s.steps_done);
  }
  std::printf("  metrics: %s/metrics.jsonl\n", config.run_dir().c_str());
  if (!curves.empty()) std::printf("  curves:  %s\n", curves.c_str());
  std::fflush(stdout);
}

}  // namespace

int RunCommand(int argc, char** argv) {
  CLI::App app{"Run every actor in one process: a whole GRPO run (resumes if interrupted).", "zerorl run"};
  std::string config_path, run_dir;
  int port = -1, total_steps = -1;
  bool no_progress = false;
  app.add_option("config", config_path, "RunConfig YAML")->required();
  app.add_option("--port", port, "TCP port for zerorlctl (default: orchestrator.listen_port; 0 = any free port)");
  app.add_option("--total-steps", total_steps, "override orchestrator.total_steps");
  app.add_option("--run-dir", run_dir, "override run_dir (buffer and checkpoints move with it)");
  app.add_flag("--no-progress", no_progress, "no progress bar");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  zerorl::v1::RunConfig config = DefaultRunConfig();
  {
    auto loaded = ReadFile(config_path);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    if (auto s = MergeYamlInto(*loaded, config_path, &config); !s.ok()) return Fail(std::string(s.message()));
    if (!run_dir.empty()) {
      config.set_run_dir(run_dir);
      config.mutable_buffer()->clear_path();
      config.mutable_learner()->mutable_checkpoint()->clear_dir();
    }
    if (total_steps >= 0) config.mutable_orchestrator()->set_total_steps(total_steps);
    if (auto s = FinalizeRunConfig(&config); !s.ok()) return Fail(std::string(s.message()));
  }
  if (port < 0) port = config.orchestrator().listen_port();
  if (port == 0) port = FreePort();
  if (port <= 0) return Fail("no free TCP port on 127.0.0.1");
  const std::string self = absl::StrCat("127.0.0.1:", port);
  // Every actor reaches every other at `self`: the one server serves them all.
  config.mutable_buffer()->set_address(self);
  config.mutable_learner()->set_address(self);
  config.mutable_orchestrator()->set_address(self);
  config.mutable_rollout()->clear_workers();
  config.mutable_rollout()->add_workers(self);
  config.mutable_reward()->clear_workers();
  config.mutable_reward()->add_workers(self);

  ChatRenderer chat;
  if (config.dataset().template_() == zerorl::v1::PROMPT_TEMPLATE_CHAT) {
    auto tok = rollout::LoadPolicyTokenizer(config.model());
    if (!tok.ok()) return Fail(absl::StrCat("dataset.template: chat: ", tok.status().message()));
    std::shared_ptr<const Tokenizer> tokenizer = *tok;
    chat = [tokenizer](const std::string& user) -> absl::StatusOr<std::string> {
      return tokenizer->ApplyChatTemplate(user);
    };
  }

  auto auth = AdminAuth::FromFile(config.server().token_file());
  if (!auth.ok()) return Fail(std::string(auth.status().message()));
  // A handler and self-pipe, not a blocked mask: see common/shutdown_signal.h.
  if (auto s = InstallShutdownSignalHandlers(); !s.ok()) return Fail(std::string(s.message()));

  ActorOptions opts;
  opts.config = config;
  opts.auth = std::make_shared<AdminAuth>(std::move(*auth));
  opts.self_address = self;
  std::vector<std::pair<std::string, std::unique_ptr<Actor>>> actors;
  for (const auto& [name, factory] :
       std::vector<std::pair<std::string, absl::StatusOr<std::unique_ptr<Actor>> (*)(const ActorOptions&)>>{
           {"buffer", NewBufferActor},
           {"reward", NewRewardActor},
           {"rollout", NewRolloutActor},
           {"learner", NewLearnerActor}}) {
    auto a = factory(opts);
    if (!a.ok()) return Fail(absl::StrCat(name, ": ", a.status().message()));
    actors.emplace_back(name, std::move(*a));
  }

  std::unique_ptr<grpc::Server> const* server_ptr = nullptr;
  WorkerRegistry registry([&](const std::string& address) -> std::shared_ptr<grpc::Channel> {
    if (address == self && server_ptr != nullptr && *server_ptr) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(config.server().max_message_mb() * 1024 * 1024);
      args.SetMaxSendMessageSize(config.server().max_message_mb() * 1024 * 1024);
      return (*server_ptr)->InProcessChannel(args);
    }
    return MakeChannel(address, config.server());
  });
  OrchestratorServiceImpl orchestrator(opts.auth, &registry, nullptr);
  std::vector<grpc::Service*> services{&orchestrator};
  for (auto& [name, a] : actors) {
    for (auto* s : a->Services()) services.push_back(s);
  }
  auto server = StartServer(absl::StrCat(config.server().bind_host(), ":", port), services, config.server());
  if (!server.ok()) return Fail(std::string(server.status().message()));
  server_ptr = &server->server;
  auto shutdown = [&] {
    for (auto it = actors.rbegin(); it != actors.rend(); ++it) it->second->Shutdown();
    server->Shutdown();
  };
  for (auto& [name, a] : actors) {
    if (auto s = a->Start(); !s.ok()) {
      shutdown();
      return Fail(absl::StrCat(name, ": ", s.message()));
    }
  }
  for (const auto& [role, address] : std::vector<std::pair<zerorl::v1::WorkerRole, std::string>>{
           {zerorl::v1::WORKER_ROLE_BUFFER, self},
           {zerorl::v1::WORKER_ROLE_REWARD, self},
           {zerorl::v1::WORKER_ROLE_ROLLOUT, self},
           {zerorl::v1::WORKER_ROLE_LEARNER, self}}) {
    zerorl::v1::WorkerInfo w;
    w.set_role(role);
    w.set_address(address);
    registry.Register(w);
  }
  RunControllerOptions ro;
  ro.base_dir = std::filesystem::path(config_path).parent_path().string();
  ro.chat = chat;
  ro.progress = !no_progress;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(config.server().max_message_mb() * 1024 * 1024);
  args.SetMaxSendMessageSize(config.server().max_message_mb() * 1024 * 1024);
  auto channel = server->server->InProcessChannel(args);
  auto run = std::make_shared<RunController>(config, &registry, channel, channel, ro);
  if (auto s = run->Prepare(); !s.ok()) {
    shutdown();
    return Fail(std::string(s.message()));
  }
  orchestrator.AddRun(run);
  std::printf("zerorl run %s: listening on %s, run dir %s\n", config.run_id().c_str(), self.c_str(),
              config.run_dir().c_str());
  std::fflush(stdout);

  std::thread signal_thread([&] {
    int interrupts = 0;
    while (true) {
      if (WaitForShutdownSignal() == 0) return;  // the run is over
      if (++interrupts > 1) {
        std::fprintf(stderr, "\nzerorl run: second interrupt, exiting without a checkpoint\n");
        _exit(130);
      }
      std::fprintf(stderr, "\nzerorl run: stopping after the step in flight (checkpointing; Ctrl-C again to abort)\n");
      run->RequestStop();
    }
  });
  absl::Status st = run->Run();
  WakeShutdownWaiter();
  signal_thread.join();

  std::string curves;
  if (auto plotted = PlotRunDir(config.run_dir()); plotted.ok()) curves = plotted->png;
  auto history = ReadMetricsJsonl(config.run_dir() + "/metrics.jsonl");
  PrintSummary(config, run->Summary(), history.ok() ? *history : std::vector<zerorl::v1::StepMetrics>{}, curves);
  const auto info = run->Info();
  run.reset();
  shutdown();
  if (!st.ok()) return Fail(std::string(st.message()));
  std::printf("  state:   %s (step %lld/%lld)%s\n", zerorl::v1::RunState_Name(info.state()).c_str(),
              static_cast<long long>(info.step()), static_cast<long long>(info.total_steps()),
              info.state() == zerorl::v1::RUN_STATE_STOPPED ? " — run the same command again to resume" : "");
  return 0;
}

}  // namespace zerorl
