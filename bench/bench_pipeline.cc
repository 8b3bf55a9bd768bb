// `zerorl bench pipeline`: synchronous vs asynchronous (streaming) RL on the
// same sample budget. The run (the countdown demo's config by default) is
// started twice in serve mode — buffer, reward, learner, rollout worker and
// orchestrator each its own `zerorl serve` process on loopback — once with
// orchestrator.mode sync and once async (max_staleness S, partial rollouts),
// with the rollout worker and the learner pinned to separate cores
// (sched_setaffinity) and one model thread each. It prints samples/s of both,
// the speedup, and the train reward over each run's last steps.
//
// samples/s = steps x prompts_per_step x group_size / the wall time from the
// first step's start to the last step's record (metrics.jsonl), so process
// start-up is left out of both alike.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench.h"
#include "common/config.h"
#include "common/net.h"
#include "common/status.h"
#include "orchestrator/metrics_log.h"
#include "orchestrator/run_state.h"

namespace zerorl::bench {
namespace {

using Clock = std::chrono::steady_clock;

// One `zerorl serve ROLE` child; SIGTERMed (then SIGKILLed) when destroyed.
class Actor {
 public:
  Actor() = default;
  Actor(const Actor&) = delete;
  Actor& operator=(const Actor&) = delete;
  ~Actor() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  // cpu >= 0 pins the process (and its threads) to that core.
  absl::Status Start(const std::string& exe, std::vector<std::string> args, int cpu, const std::string& log) {
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(exe.c_str()));
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) return absl::InternalError(absl::StrCat("cannot write ", log, ": ", strerror(errno)));
    pid_ = fork();
    if (pid_ < 0) {
      close(out);
      return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
    }
    if (pid_ == 0) {
      if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) != 0) _exit(126);
      }
      dup2(out, 1);
      dup2(out, 2);
      execv(exe.c_str(), argv.data());
      _exit(127);
    }
    close(out);
    return absl::OkStatus();
  }
  bool alive() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

struct ModeResult {
  double samples_per_s = 0;
  double seconds = 0;
  double reward_last = 0;  // train reward_mean over the last steps
  double lag_max = 0;      // async: largest version_lag_max
  double learner_idle = 0; // mean learner_idle_fraction
};

absl::StatusOr<ModeResult> RunMode(const std::string& exe, zerorl::v1::RunConfig cfg, const std::string& dir,
                                   int rollout_cpu, int learner_cpu, int timeout_s) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const char* roles[] = {"buffer", "reward", "learner", "rollout", "orchestrator"};
  std::map<std::string, int> port;
  for (const char* r : roles) {
    ZRL_ASSIGN_OR_RETURN(port[r], FreeLoopbackPort());
  }
  auto addr = [&](const char* r) { return absl::StrCat("127.0.0.1:", port[r]); };
  cfg.set_run_dir(dir + "/run");
  cfg.mutable_buffer()->set_address(addr("buffer"));
  cfg.mutable_buffer()->set_path(dir + "/run/buffer");
  cfg.mutable_learner()->mutable_checkpoint()->set_dir(dir + "/run/checkpoints");
  cfg.mutable_reward()->clear_workers();
  cfg.mutable_reward()->add_workers(addr("reward"));
  cfg.mutable_rollout()->clear_workers();
  cfg.mutable_rollout()->add_workers(addr("rollout"));
  cfg.mutable_learner()->set_address(addr("learner"));
  cfg.mutable_orchestrator()->set_address(addr("orchestrator"));
  const std::string config_path = dir + "/run.yaml";
  std::ofstream(config_path) << MessageToYaml(cfg);

  std::map<std::string, std::unique_ptr<Actor>> actors;
  for (const char* r : roles) {
    auto a = std::make_unique<Actor>();
    const int cpu = std::string(r) == "rollout" ? rollout_cpu : std::string(r) == "learner" ? learner_cpu : -1;
    ZRL_RETURN_IF_ERROR(a->Start(exe,
                                 {"serve", r, "--config", config_path, "--port", std::to_string(port[r]), "--host",
                                  "127.0.0.1"},
                                 cpu, absl::StrCat(dir, "/", r, ".log")));
    const auto until = Clock::now() + std::chrono::seconds(120);
    while (!LoopbackAccepts(port[r])) {
      if (!a->alive() || Clock::now() > until)
        return absl::UnavailableError(absl::StrCat(r, " did not start listening; see ", dir, "/", r, ".log"));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    actors[r] = std::move(a);
  }
  const int64_t steps = cfg.orchestrator().total_steps();
  const auto until = Clock::now() + std::chrono::seconds(timeout_s);
  int64_t last_shown = -1;
  for (;;) {
    auto st = LoadRunState(cfg.run_dir() + "/state.json");
    if (st.ok() && st->state == zerorl::v1::RUN_STATE_FINISHED) break;
    if (st.ok() && st->state == zerorl::v1::RUN_STATE_FAILED)
      return absl::InternalError(absl::StrCat("the run failed: ", st->error, "; see ", dir));
    if (st.ok() && st->step != last_shown) {
      last_shown = st->step;
      std::fprintf(stderr, "\r  %s: step %lld/%lld", zerorl::v1::RunMode_Name(cfg.orchestrator().mode()).c_str(),
                   static_cast<long long>(st->step), static_cast<long long>(steps));
    }
    if (Clock::now() > until)
      return absl::DeadlineExceededError(absl::StrCat("the run did not finish in ", timeout_s, " s; see ", dir));
    if (!actors["orchestrator"]->alive())
      return absl::InternalError(absl::StrCat("the orchestrator exited; see ", dir, "/orchestrator.log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::fprintf(stderr, "\n");
  ZRL_ASSIGN_OR_RETURN(auto m, ReadMetricsJsonl(cfg.run_dir() + "/metrics.jsonl"));
  if (static_cast<int64_t>(m.size()) != steps)
    return absl::InternalError(absl::StrCat("metrics.jsonl has ", m.size(), " steps, want ", steps));
  auto value = [](const zerorl::v1::StepMetrics& s, const char* k) {
    auto it = s.values().find(k);
    return it == s.values().end() ? 0.0 : it->second;
  };
  ModeResult r;
  const double start_ms = m.front().unix_ms() - 1000 * value(m.front(), "step_seconds");
  r.seconds = (m.back().unix_ms() - start_ms) / 1000;
  const double samples = static_cast<double>(steps) * cfg.rollout().prompts_per_step() * cfg.rollout().group_size();
  r.samples_per_s = r.seconds > 0 ? samples / r.seconds : 0;
  const size_t tail = std::min<size_t>(m.size(), 4);
  for (size_t i = m.size() - tail; i < m.size(); ++i) r.reward_last += value(m[i], "reward_mean") / tail;
  for (const auto& s : m) {
    r.lag_max = std::max(r.lag_max, value(s, "version_lag_max"));
    r.learner_idle += value(s, "learner_idle_fraction") / m.size();
  }
  return r;
}

}  // namespace

int BenchPipeline(int argc, char** argv) {
  CLI::App app{"zerorl bench pipeline: sync vs async (streaming) RL on the same sample budget, serve mode"};
  std::string config_path = "examples/countdown/run.yaml";  // from the repository root
  std::string dir;
  int steps = 24, staleness = 2, rollout_cpu = 0, learner_cpu = 1, timeout_s = 1800;
  bool no_partial = false;
  app.add_option("--config", config_path, "run config (its model, data and reward)")->capture_default_str();
  app.add_option("--steps", steps, "steps of each run (the sample budget)")
      ->capture_default_str()
      ->check(CLI::Range(2, 100000));
  app.add_option("--staleness", staleness, "async orchestrator.max_staleness")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--rollout-cpu", rollout_cpu, "core of the rollout worker (-1: not pinned)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 4095));
  app.add_option("--learner-cpu", learner_cpu, "core of the learner (-1: not pinned)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 4095));
  app.add_option("--dir", dir, "where the runs go (default: a fresh directory under /tmp, removed after)");
  app.add_option("--timeout", timeout_s, "seconds each run may take")->capture_default_str()->check(CLI::Range(10, 86400));
  app.add_flag("--no-partial-rollout", no_partial, "async without rollout.partial_rollout");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // usage errors exit 2, as every zerorl command
  }
  auto loaded = LoadRunConfig(config_path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "bench pipeline: --config %s: %s (run from the repository root or pass --config)\n",
                 config_path.c_str(), std::string(loaded.status().message()).c_str());
    return 1;
  }
  const int cpus = static_cast<int>(std::thread::hardware_concurrency());
  for (int c : {rollout_cpu, learner_cpu})
    if (c >= cpus) {
      std::fprintf(stderr, "bench pipeline: core %d does not exist (this machine has %d)\n", c, cpus);
      return 2;
    }
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) {
    std::fprintf(stderr, "bench pipeline: cannot find the zerorl binary (/proc/self/exe)\n");
    return 1;
  }
  exe[n] = '\0';
  const bool temp_dir = dir.empty();
  if (temp_dir) {
    char tmpl[] = "/tmp/zerorl-bench-pipeline-XXXXXX";
    if (!mkdtemp(tmpl)) {
      std::fprintf(stderr, "bench pipeline: mkdtemp: %s\n", strerror(errno));
      return 1;
    }
    dir = tmpl;
  }
  zerorl::v1::RunConfig base = *loaded;
  base.set_run_id("bench-pipeline");
  base.mutable_model()->set_threads(1);  // one core each: the stages, not the threads, overlap
  base.mutable_reward()->set_threads(1);
  base.mutable_orchestrator()->set_total_steps(steps);
  base.mutable_orchestrator()->mutable_eval()->set_every_steps(0);  // train reward only: eval is not the pipeline
  base.mutable_orchestrator()->mutable_eval()->set_prompts(0);
  base.mutable_orchestrator()->set_progress(false);
  const int64_t samples = int64_t{steps} * base.rollout().prompts_per_step() * base.rollout().group_size();
  std::printf("pipeline: %s, %d steps x %d prompts x %d samples = %lld samples per mode; rollout on core %d, learner "
              "on core %d\n",
              config_path.c_str(), steps, base.rollout().prompts_per_step(), base.rollout().group_size(),
              static_cast<long long>(samples), rollout_cpu, learner_cpu);

  zerorl::v1::RunConfig sync = base, async = base;
  sync.mutable_orchestrator()->set_mode(zerorl::v1::RUN_MODE_SYNC);
  async.mutable_orchestrator()->set_mode(zerorl::v1::RUN_MODE_ASYNC);
  async.mutable_orchestrator()->set_max_staleness(staleness);
  async.mutable_rollout()->set_partial_rollout(!no_partial);
  auto s = RunMode(exe, sync, dir + "/sync", rollout_cpu, learner_cpu, timeout_s);
  if (!s.ok()) {
    std::fprintf(stderr, "bench pipeline (sync): %s\n", std::string(s.status().message()).c_str());
    return 1;
  }
  auto a = RunMode(exe, async, dir + "/async", rollout_cpu, learner_cpu, timeout_s);
  if (!a.ok()) {
    std::fprintf(stderr, "bench pipeline (async): %s\n", std::string(a.status().message()).c_str());
    return 1;
  }
  std::printf("%-8s %10s %12s %14s %14s %12s\n", "mode", "seconds", "samples/s", "reward (last 4)",
              "learner idle", "lag max");
  std::printf("%-8s %10.1f %12.1f %14.3f %14.2f %12.0f\n", "sync", s->seconds, s->samples_per_s, s->reward_last,
              s->learner_idle, s->lag_max);
  std::printf("%-8s %10.1f %12.1f %14.3f %14.2f %12.0f\n", "async", a->seconds, a->samples_per_s, a->reward_last,
              a->learner_idle, a->lag_max);
  std::printf("sync_samples_per_s %.3f\n", s->samples_per_s);
  std::printf("async_samples_per_s %.3f\n", a->samples_per_s);
  std::printf("async_speedup %.3f\n", s->samples_per_s > 0 ? a->samples_per_s / s->samples_per_s : 0);
  std::printf("sync_reward_last %.4f\n", s->reward_last);
  std::printf("async_reward_last %.4f\n", a->reward_last);
  if (temp_dir) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace zerorl::bench
