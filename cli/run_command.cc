// `zerorl run CONFIG`: a whole GRPO run in one process. Every actor (buffer,
// reward, rollout, learner, orchestrator) is served by one gRPC server; the
// orchestrator reaches them through in-process channels, and the server also
// listens on TCP (orchestrator.listen_port, or --port) so zerorlctl can watch
// and steer the run. Ctrl-C (SIGINT) or SIGTERM finishes the step in flight,
// checkpoints and exits 0; the same command then resumes where it stopped.
// At the end it prints a before/after table and draws RUN_DIR/curves.{svg,png}.
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <grpcpp/create_channel.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "buffer/actor.h"
#include "cli/commands.h"
#include "common/config.h"
#include "common/net.h"
#include "common/log.h"
#include "common/server.h"
#include "common/shutdown_signal.h"
#include "common/status.h"
#include "learner/actor.h"
#include "model/tokenizer.h"
#include "orchestrator/metrics_log.h"
#include "orchestrator/orchestrator_service.h"
#include "orchestrator/prompt_limit.h"
#include "orchestrator/plot.h"
#include "orchestrator/progress.h"
#include "orchestrator/run_controller.h"
#include "reward/actor.h"
#include "rollout/actor.h"
#include "model/policy_loader.h"

namespace zerorl {
namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "zerorl run: %s\n", what.c_str());
  return 1;
}

// One row of the before/after table: a metric's first value at step 0 (the
// base model's eval) and its last value, from the whole metrics history.
struct BeforeAfter {
  bool has_before = false, has_after = false;
  double before = 0, after = 0;
};

std::map<std::string, BeforeAfter> EvalBeforeAfter(const std::vector<zerorl::v1::StepMetrics>& metrics) {
  std::map<std::string, BeforeAfter> rows;
  for (const auto& m : metrics) {
    for (const auto& [key, value] : m.values()) {
      if (!absl::StartsWith(key, "eval_")) continue;
      BeforeAfter& r = rows[key];
      if (!r.has_before && m.step() == 0) {
        r.before = value;
        r.has_before = true;
      }
      r.after = value;
      r.has_after = true;
    }
  }
  return rows;
}

void PrintSummary(const zerorl::v1::RunConfig& config, const RunSummary& s,
                  const std::vector<zerorl::v1::StepMetrics>& metrics, const std::string& curves) {
  // Before / after from the whole metrics history (a resumed run included).
  std::map<std::string, BeforeAfter> rows = EvalBeforeAfter(metrics);
  BeforeAfter& acc = rows["eval_accuracy"];
  if (!acc.has_before && s.has_before) acc = {true, acc.has_after, s.eval_before, acc.after};
  if (!acc.has_after && s.has_after) {
    acc.has_after = true;
    acc.after = s.eval_after;
  }
  double r_first = s.reward_first, r_last = s.reward_last;
  bool has_r = false;
  for (const auto& m : metrics) {
    auto r = m.values().find("reward_mean");
    if (r != m.values().end()) {
      if (!has_r) r_first = r->second;
      r_last = r->second;
      has_r = true;
    }
  }
  auto cell = [](bool has, double v, bool percent) {
    if (!has) return std::string("       -");
    return percent ? absl::StrFormat("%7.1f%%", 100 * v) : absl::StrFormat("%8.2f", v);
  };
  auto row = [&](const std::string& label, const BeforeAfter& r, bool percent) {
    std::printf("  %-28s %s %s\n", label.c_str(), cell(r.has_before, r.before, percent).c_str(),
                cell(r.has_after, r.after, percent).c_str());
  };
  std::printf("\nrun %s — %s\n", config.run_id().c_str(), config.run_dir().c_str());
  std::printf("  %-28s %8s %8s\n", "", "before", "after");
  row("eval accuracy (greedy)", acc, true);
  if (const int k = config.orchestrator().eval().pass_k(); k > 0) {
    auto it = rows.find(absl::StrCat("eval_pass_at_", k));
    if (it != rows.end()) row(absl::StrCat("eval pass@", k, " (sampled)"), it->second, true);
  }
  if (rows.count("eval_completion_len_mean")) row("eval length (tokens)", rows["eval_completion_len_mean"], false);
  for (const auto& tc : config.orchestrator().text_counters()) {
    auto it = rows.find(absl::StrCat("eval_", tc.name(), "_per_completion"));
    if (it != rows.end()) row(absl::StrCat("eval ", tc.name(), " per completion"), it->second, false);
  }
  if (has_r) std::printf("  %-28s %8.3f %8.3f\n", "train reward (mean)", r_first, r_last);
  if (s.steps_done > 0) {
    std::printf("  %lld steps in %s (%.1f s/step)\n", static_cast<long long>(s.steps_done),
                FormatDuration(s.seconds).c_str(), s.seconds / s.steps_done);
  }
  std::printf("  metrics: %s/metrics.jsonl\n", config.run_dir().c_str());
  if (!curves.empty()) std::printf("  curves:  %s\n", curves.c_str());
  std::fflush(stdout);
}

struct RunFlags {
  std::string config_path, run_dir;
  int port = -1, total_steps = -1;
  bool no_progress = false;
};

// The config file with the command line's overrides, finalized.
absl::StatusOr<zerorl::v1::RunConfig> LoadRunConfig(const RunFlags& f) {
  zerorl::v1::RunConfig config = DefaultRunConfig();
  ZRL_ASSIGN_OR_RETURN(std::string text, ReadFile(f.config_path));
  ZRL_RETURN_IF_ERROR(MergeYamlInto(text, f.config_path, &config));
  if (!f.run_dir.empty()) {
    config.set_run_dir(f.run_dir);
    config.mutable_buffer()->clear_path();
    config.mutable_learner()->mutable_checkpoint()->clear_dir();
  }
  if (f.total_steps >= 0) config.mutable_orchestrator()->set_total_steps(f.total_steps);
  if (f.port != -1) ZRL_RETURN_IF_ERROR(ValidatePort(f.port, "--port", /*allow_zero=*/true));
  if (auto s = FinalizeRunConfig(&config); !s.ok())
    return absl::InvalidArgumentError(absl::StrCat(f.config_path, ": ", s.message()));
  return config;
}

// Points every actor's address at `self`: the one server serves them all.
void AddressEveryActorAt(const std::string& self, zerorl::v1::RunConfig* config) {
  config->mutable_buffer()->set_address(self);
  config->mutable_learner()->set_address(self);
  config->mutable_orchestrator()->set_address(self);
  config->mutable_rollout()->clear_workers();
  config->mutable_rollout()->add_workers(self);
  config->mutable_reward()->clear_workers();
  config->mutable_reward()->add_workers(self);
}

// dataset.template: chat renders prompts with the policy tokenizer's chat template.
absl::StatusOr<ChatRenderer> ChatRendererFor(const zerorl::v1::RunConfig& config) {
  if (config.dataset().template_() != zerorl::v1::PROMPT_TEMPLATE_CHAT) return ChatRenderer();
  auto tok = model::LoadPolicyTokenizer(config.model());
  if (!tok.ok()) return Annotate(tok.status(), "dataset.template: chat");
  std::shared_ptr<const Tokenizer> tokenizer = *tok;
  return ChatRenderer([tokenizer](const std::string& user) -> absl::StatusOr<std::string> {
    return tokenizer->ApplyChatTemplate(user);
  });
}

// Every actor behind one gRPC server on `self`, the orchestrator's registry
// knowing each of them there. Shutdown (also from the destructor) stops the
// actors in reverse order, then the server.
class AllInOne {
 public:
  static absl::StatusOr<std::unique_ptr<AllInOne>> Start(const zerorl::v1::RunConfig& config,
                                                          const std::string& self) {
    // Without server.internal_token_file, actor calls are made in this process
    // only: a fresh secret per start locks them on the TCP port (common/auth.h).
    if (config.server().internal_token_file().empty()) {
      ZRL_ASSIGN_OR_RETURN(std::string secret, NewRandomToken());
      SetProcessInternalToken(std::move(secret));
    }
    ZRL_ASSIGN_OR_RETURN(AdminAuth auth, AdminAuth::FromConfig(config.server()));
    std::unique_ptr<AllInOne> a(new AllInOne(config, self, std::make_shared<AdminAuth>(std::move(auth))));
    ZRL_RETURN_IF_ERROR(a->CreateActors());
    ZRL_RETURN_IF_ERROR(a->Serve());
    return a;
  }
  ~AllInOne() { Shutdown(); }

  void Shutdown() {
    if (!server_.has_value()) return;
    for (auto it = actors_.rbegin(); it != actors_.rend(); ++it) it->second->Shutdown();
    server_->Shutdown();
    server_.reset();
  }

  WorkerRegistry* registry() { return &registry_; }
  OrchestratorServiceImpl* orchestrator() { return &orchestrator_; }
  std::shared_ptr<grpc::Channel> Channel() {
    return InProcessChannel(server_->server.get(), config_.server(), auth_->internal_token());
  }

 private:
  AllInOne(const zerorl::v1::RunConfig& config, std::string self, std::shared_ptr<AdminAuth> auth)
      : config_(config),
        self_(std::move(self)),
        auth_(std::move(auth)),
        registry_([this](const std::string& address) -> std::shared_ptr<grpc::Channel> {
          if (address == self_ && server_.has_value()) return Channel();
          return MakeChannel(address, config_.server());
        }),
        orchestrator_(auth_, &registry_, nullptr) {}

  absl::Status CreateActors() {
    ActorOptions opts;
    opts.config = config_;
    opts.auth = auth_;
    opts.self_address = self_;
    using Factory = absl::StatusOr<std::unique_ptr<Actor>> (*)(const ActorOptions&);
    for (const auto& [name, factory] : std::vector<std::pair<std::string, Factory>>{
             {"buffer", NewBufferActor}, {"reward", NewRewardActor}, {"rollout", NewRolloutActor},
             {"learner", NewLearnerActor}}) {
      auto a = factory(opts);
      if (!a.ok()) return Annotate(a.status(), name);
      actors_.emplace_back(name, std::move(*a));
    }
    return absl::OkStatus();
  }

  // One server for the orchestrator and every actor's services; then the
  // actors start and register with the orchestrator at `self`.
  absl::Status Serve() {
    std::vector<grpc::Service*> services{&orchestrator_};
    for (auto& [name, a] : actors_) {
      for (auto* s : a->Services()) services.push_back(s);
    }
    auto bound = StartServer(absl::StrCat(config_.server().bind_host(), ":", PortOf(self_)), services,
                             config_.server(), auth_);
    if (!bound.ok()) return bound.status();
    server_.emplace(std::move(*bound));
    for (auto& [name, a] : actors_) {
      if (auto s = a->Start(); !s.ok()) return Annotate(s, name);
    }
    for (auto role : {zerorl::v1::WORKER_ROLE_BUFFER, zerorl::v1::WORKER_ROLE_REWARD, zerorl::v1::WORKER_ROLE_ROLLOUT,
                      zerorl::v1::WORKER_ROLE_LEARNER}) {
      zerorl::v1::WorkerInfo w;
      w.set_role(role);
      w.set_address(self_);
      registry_.Register(w);
    }
    return absl::OkStatus();
  }

  static std::string PortOf(const std::string& address) { return address.substr(address.rfind(':') + 1); }

  const zerorl::v1::RunConfig config_;
  const std::string self_;
  std::shared_ptr<AdminAuth> auth_;
  std::vector<std::pair<std::string, std::unique_ptr<Actor>>> actors_;
  std::optional<ServerHandle> server_;
  WorkerRegistry registry_;
  OrchestratorServiceImpl orchestrator_;
};

// Runs `run` to its end. The first SIGINT/SIGTERM asks it to stop after the
// step in flight (it checkpoints); a second exits at once.
absl::Status RunUntilDoneOrInterrupted(RunController* run) {
  std::thread signal_thread([run] {
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
  return st;
}

// The curves, then the before/after table.
void ReportRun(const zerorl::v1::RunConfig& config, const RunController& run) {
  std::string curves;
  if (auto plotted = PlotRunDir(config.run_dir()); plotted.ok()) curves = plotted->png;
  auto history = ReadMetricsJsonl(config.run_dir() + "/metrics.jsonl");
  PrintSummary(config, run.Summary(), history.ok() ? *history : std::vector<zerorl::v1::StepMetrics>{}, curves);
}

}  // namespace

int RunCommand(int argc, char** argv) {
  CLI::App app{"Run every actor in one process: a whole GRPO run (resumes if interrupted).", "zerorl run"};
  RunFlags flags;
  app.add_option("config", flags.config_path, "RunConfig YAML")->required();
  app.add_option("--port", flags.port, "TCP port for zerorlctl (default: orchestrator.listen_port; 0 = any free port)");
  app.add_option("--total-steps", flags.total_steps, "override orchestrator.total_steps");
  app.add_option("--run-dir", flags.run_dir, "override run_dir (buffer and checkpoints move with it)");
  app.add_flag("--no-progress", flags.no_progress, "no progress bar");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  auto config = LoadRunConfig(flags);
  if (!config.ok()) return Fail(std::string(config.status().message()));
  int port = flags.port >= 0 ? flags.port : config->orchestrator().listen_port();
  if (port == 0) {
    auto free_port = FreeLoopbackPort();
    if (!free_port.ok()) return Fail(std::string(free_port.status().message()));
    port = *free_port;
  }
  const std::string self = absl::StrCat("127.0.0.1:", port);
  AddressEveryActorAt(self, &*config);
  auto chat = ChatRendererFor(*config);
  if (!chat.ok()) return Fail(std::string(chat.status().message()));
  // A handler and self-pipe, not a blocked mask: see common/shutdown_signal.h.
  if (auto s = InstallShutdownSignalHandlers(); !s.ok()) return Fail(std::string(s.message()));

  auto actors = AllInOne::Start(*config, self);
  if (!actors.ok()) return Fail(std::string(actors.status().message()));
  RunControllerOptions ro;
  ro.base_dir = std::filesystem::path(flags.config_path).parent_path().string();
  ro.chat = *chat;
  auto limits = DatasetLimitsFor(*config);
  if (!limits.ok()) return Fail(std::string(limits.status().message()));
  ro.dataset_limits = *limits;
  ro.progress = !flags.no_progress;
  auto channel = (*actors)->Channel();
  auto run = std::make_shared<RunController>(*config, (*actors)->registry(), channel, channel, ro);
  if (auto s = run->Prepare(); !s.ok()) return Fail(std::string(s.message()));
  (*actors)->orchestrator()->AddRun(run);
  std::printf("zerorl run %s: listening on %s, run dir %s\n", config->run_id().c_str(), self.c_str(),
              config->run_dir().c_str());
  std::fflush(stdout);

  const absl::Status st = RunUntilDoneOrInterrupted(run.get());
  ReportRun(*config, *run);
  const auto info = run->Info();
  run.reset();
  (*actors)->Shutdown();
  if (!st.ok()) return Fail(std::string(st.message()));
  std::printf("  state:   %s (step %lld/%lld)%s\n", zerorl::v1::RunState_Name(info.state()).c_str(),
              static_cast<long long>(info.step()), static_cast<long long>(info.total_steps()),
              info.state() == zerorl::v1::RUN_STATE_STOPPED ? " — run the same command again to resume" : "");
  return 0;
}

}  // namespace zerorl
