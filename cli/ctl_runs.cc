// `zerorlctl runs ...`, `workers list`, `metrics`: the OrchestratorService side.
#include <algorithm>
#include <memory>
#include <set>
#include <thread>

#include <grpcpp/create_channel.h>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "cli/ctl_commands.h"
#include "cli/ctl_output.h"
#include "common/config.h"
#include "common/status.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "zerorl/v1/orchestrator.grpc.pb.h"

namespace zerorl::ctl {
namespace {

namespace v1 = zerorl::v1;

std::string StateName(v1::RunState s) {
  std::string name = v1::RunState_Name(s);
  absl::string_view prefix = "RUN_STATE_";
  if (absl::StartsWith(name, prefix)) name = name.substr(prefix.size());
  return absl::AsciiStrToLower(name);
}

std::string RoleName(v1::WorkerRole r) {
  std::string name = v1::WorkerRole_Name(r);
  absl::string_view prefix = "WORKER_ROLE_";
  if (absl::StartsWith(name, prefix)) name = name.substr(prefix.size());
  return absl::AsciiStrToLower(name);
}

std::unique_ptr<v1::OrchestratorService::Stub> Orchestrator(Session& s) {
  return v1::OrchestratorService::NewStub(s.Channel(s.OrchestratorAddress()));
}

absl::Status OrchestratorError(Session& s, const grpc::Status& st) {
  return s.CallError(st, "orchestrator", s.OrchestratorAddress());
}

// The run to use when --run is omitted: the only one the orchestrator knows.
absl::StatusOr<std::string> DefaultRun(Session& s) {
  v1::RunList list;
  auto ctx = s.Context();
  grpc::Status st = Orchestrator(s)->ListRuns(ctx.get(), v1::ListRunInfosRequest(), &list);
  if (!st.ok()) return OrchestratorError(s, st);
  if (list.runs_size() == 1) return list.runs(0).run_id();
  if (list.runs_size() == 0) return UsageError("--run: the orchestrator has no runs");
  std::vector<std::string> ids;
  for (const auto& r : list.runs()) ids.push_back(r.run_id());
  return UsageError(absl::StrCat("--run is required: runs are ", absl::StrJoin(ids, ", ")));
}

void PrintRunInfo(Session& s, const v1::RunInfo& r) {
  if (s.output() != OutputMode::kTable) {
    s.out() << ToJson(r, s.output() == OutputMode::kJson) << "\n";
    return;
  }
  auto& out = s.out();
  Table kv({"FIELD", "VALUE"});
  kv.AddRow({"run", r.run_id()});
  kv.AddRow({"state", StateName(r.state())});
  kv.AddRow({"step", absl::StrCat(r.step(), " / ", r.total_steps())});
  kv.AddRow({"policy version", absl::StrCat(r.policy_version())});
  kv.AddRow({"reward spec version", absl::StrCat(r.reward_spec_version())});
  kv.AddRow({"started", FormatTime(r.started_unix_ms())});
  kv.AddRow({"updated", FormatTime(r.updated_unix_ms())});
  kv.AddRow({"run dir", r.run_dir().empty() ? "-" : r.run_dir()});
  kv.AddRow({"buffer", r.buffer_address().empty() ? "-" : r.buffer_address()});
  kv.AddRow({"reward", r.reward_address().empty() ? "-" : r.reward_address()});
  kv.AddRow({"learner", r.learner_address().empty() ? "-" : r.learner_address()});
  if (!r.waiting_for().empty()) kv.AddRow({"waiting", r.waiting_for()});
  if (!r.error().empty()) kv.AddRow({"error", r.error()});
  std::vector<std::string> keys;
  for (const auto& [k, v] : r.last_metrics()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  for (const auto& k : keys) kv.AddRow({"metric " + k, FormatNumber(r.last_metrics().at(k))});
  kv.Print(out);
  if (r.has_config()) out << "\nconfig:\n" << MessageToYaml(r.config());
}

absl::Status ListRuns(Session& s) {
  v1::RunList list;
  auto ctx = s.Context();
  grpc::Status st = Orchestrator(s)->ListRuns(ctx.get(), v1::ListRunInfosRequest(), &list);
  if (!st.ok()) return OrchestratorError(s, st);
  if (s.output() == OutputMode::kJson) {
    s.out() << ToJson(list, true) << "\n";
  } else if (s.output() == OutputMode::kJsonl) {
    for (const auto& r : list.runs()) s.out() << ToJson(r, false) << "\n";
  } else {
    Table t({"RUN", "STATE", "STEP", "POLICY", "SPEC", "STARTED", "UPDATED"});
    int64_t now = absl::ToUnixMillis(absl::Now());
    for (const auto& r : list.runs())
      t.AddRow({r.run_id(), StateName(r.state()), absl::StrCat(r.step(), "/", r.total_steps()),
                absl::StrCat(r.policy_version()), absl::StrCat(r.reward_spec_version()),
                FormatTime(r.started_unix_ms()), FormatAge(r.updated_unix_ms(), now)});
    t.Print(s.out());
  }
  return absl::OkStatus();
}

absl::Status ShowRun(Session& s, const std::string& run) {
  v1::RunRef ref;
  ref.set_run_id(run);
  v1::RunInfo info;
  auto ctx = s.Context();
  grpc::Status st = Orchestrator(s)->GetRun(ctx.get(), ref, &info);
  if (!st.ok()) return OrchestratorError(s, st);
  PrintRunInfo(s, info);
  return absl::OkStatus();
}

using RunRpc = grpc::Status (v1::OrchestratorService::Stub::*)(grpc::ClientContext*, const v1::RunRef&,
                                                              v1::RunInfo*);

// `want` is the state the change leads to; the orchestrator applies pause and
// stop after the step in flight, so the state it returns may still be running.
absl::Status ChangeRun(Session& s, const std::string& run, RunRpc rpc, v1::RunState want, const char* pending) {
  ZRL_ASSIGN_OR_RETURN(auto ctx, s.AdminContext());
  v1::RunRef ref;
  ref.set_run_id(run);
  v1::RunInfo info;
  auto stub = Orchestrator(s);
  grpc::Status st = ((*stub).*rpc)(ctx.get(), ref, &info);
  if (!st.ok()) return OrchestratorError(s, st);
  if (s.output() == OutputMode::kTable) {
    s.out() << "run " << info.run_id() << ": ";
    if (info.state() != want && info.state() == v1::RUN_STATE_RUNNING) s.out() << pending << ", now ";
    s.out() << StateName(info.state()) << " at step " << info.step() << "/" << info.total_steps() << "\n";
  } else {
    s.out() << ToJson(info, s.output() == OutputMode::kJson) << "\n";
  }
  return absl::OkStatus();
}

// grpc.health.v1 Check against each worker, in parallel; "" service = the server as a whole.
std::vector<std::string> ProbeHealth(Session& s, const v1::WorkerList& list) {
  std::vector<std::string> result(list.workers_size(), "-");
  std::vector<std::thread> threads;
  auto deadline = std::min(s.timeout(), std::chrono::milliseconds(3000));
  for (int i = 0; i < list.workers_size(); ++i) {
    const std::string address = list.workers(i).address();
    if (address.empty()) continue;
    auto channel = s.Channel(address);
    threads.emplace_back([channel, deadline, i, &result] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + deadline);
      grpc::health::v1::HealthCheckRequest req;
      grpc::health::v1::HealthCheckResponse resp;
      grpc::Status st = grpc::health::v1::Health::NewStub(channel)->Check(&ctx, req, &resp);
      if (st.ok()) {
        result[i] = resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? "serving" : "not-serving";
      } else if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                 st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
        result[i] = "unreachable";
      } else {
        result[i] = absl::StrCat("error ", static_cast<int>(st.error_code()));
      }
    });
  }
  for (auto& t : threads) t.join();
  return result;
}

absl::Status ListWorkers(Session& s, bool probe) {
  v1::WorkerList list;
  auto ctx = s.Context();
  grpc::Status st = Orchestrator(s)->ListWorkers(ctx.get(), v1::ListWorkersRequest(), &list);
  if (!st.ok()) return OrchestratorError(s, st);
  std::vector<std::string> health =
      probe ? ProbeHealth(s, list) : std::vector<std::string>(list.workers_size(), "-");
  if (s.output() != OutputMode::kTable) {
    // WorkerInfo plus the probe's answer as "health".
    nlohmann::json workers = nlohmann::json::array();
    for (int i = 0; i < list.workers_size(); ++i) {
      nlohmann::json w = nlohmann::json::parse(ToJson(list.workers(i), false));
      w["health"] = health[i];
      workers.push_back(std::move(w));
    }
    if (s.output() == OutputMode::kJson) {
      s.out() << nlohmann::json{{"workers", workers}}.dump(2) << "\n";
    } else {
      for (const auto& w : workers) s.out() << w.dump() << "\n";
    }
    return absl::OkStatus();
  }
  Table t({"ROLE", "ID", "ADDRESS", "VERSION", "HEALTH", "REGISTRY", "HEARTBEAT", "IN-FLIGHT"});
  int64_t now = absl::ToUnixMillis(absl::Now());
  for (int i = 0; i < list.workers_size(); ++i) {
    const auto& w = list.workers(i);
    t.AddRow({RoleName(w.role()), w.id(), w.address(), absl::StrCat(w.version()), health[i],
              w.healthy() ? "healthy" : "unhealthy", FormatAge(w.last_heartbeat_unix_ms(), now),
              absl::StrCat(w.in_flight())});
  }
  t.Print(s.out());
  return absl::OkStatus();
}

absl::Status Metrics(Session& s, std::string run, int last, const std::string& keys, bool all) {
  if (last < 0) return UsageError("--last: must be >= 0");
  if (run.empty()) {
    ZRL_ASSIGN_OR_RETURN(run, DefaultRun(s));
  }
  v1::GetMetricsRequest req;
  req.set_run_id(run);
  req.set_last(last);
  v1::MetricsList list;
  auto ctx = s.Context();
  grpc::Status st = Orchestrator(s)->GetMetrics(ctx.get(), req, &list);
  if (!st.ok()) return OrchestratorError(s, st);
  if (s.output() == OutputMode::kJson) {
    s.out() << ToJson(list, true) << "\n";
  } else if (s.output() == OutputMode::kJsonl) {
    for (const auto& m : list.steps()) s.out() << ToJson(m, false) << "\n";
  } else {
    std::set<std::string> present;
    for (const auto& m : list.steps())
      for (const auto& [k, v] : m.values()) present.insert(k);
    std::vector<std::string> cols = MetricColumns(present, keys, all);
    std::vector<std::string> header = {"STEP"};
    header.insert(header.end(), cols.begin(), cols.end());
    Table t(header);
    for (const auto& m : list.steps()) {
      std::vector<std::string> row = {absl::StrCat(m.step())};
      for (const auto& c : cols) {
        auto it = m.values().find(c);
        row.push_back(it == m.values().end() ? "-" : FormatNumber(it->second));
      }
      t.AddRow(std::move(row));
    }
    t.Print(s.out());
  }
  return absl::OkStatus();
}

}  // namespace

void AddRunCommands(CLI::App& root, CommandSet& set) {
  CLI::App* runs = root.add_subcommand("runs", "list, inspect and steer runs (orchestrator)");
  runs->require_subcommand(1);
  set.Add(runs->add_subcommand("list", "every run: state, step, policy and spec versions"), ListRuns);

  auto run = std::make_shared<std::string>();
  CLI::App* show = runs->add_subcommand("show", "one run: state, versions, addresses, last metrics, config");
  show->add_option("RUN", *run, "run id")->required();
  set.Add(show, [run](Session& s) { return ShowRun(s, *run); });

  struct Change {
    const char* name;
    const char* help;
    RunRpc rpc;
    v1::RunState want;
    const char* pending;
  };
  for (const Change& c :
       {Change{"pause", "pause a run after its current step (admin)", &v1::OrchestratorService::Stub::PauseRun,
               v1::RUN_STATE_PAUSED, "pausing after the step in flight"},
        Change{"resume", "resume a paused run (admin)", &v1::OrchestratorService::Stub::ResumeRun,
               v1::RUN_STATE_RUNNING, ""},
        Change{"stop", "stop a run after its current step, checkpointed (admin)",
               &v1::OrchestratorService::Stub::StopRun, v1::RUN_STATE_STOPPED, "stopping after the step in flight"}}) {
    CLI::App* sub = runs->add_subcommand(c.name, c.help);
    sub->add_option("RUN", *run, "run id")->required();
    set.Add(sub, [run, c](Session& s) { return ChangeRun(s, *run, c.rpc, c.want, c.pending); });
  }

  CLI::App* workers = root.add_subcommand("workers", "the orchestrator's worker registry");
  workers->require_subcommand(1);
  auto no_probe = std::make_shared<bool>(false);
  CLI::App* wl = workers->add_subcommand("list", "role, address, version, health, last heartbeat");
  wl->add_flag("--no-probe", *no_probe, "skip the grpc.health.v1 check of each worker");
  set.Add(wl, [no_probe](Session& s) { return ListWorkers(s, !*no_probe); });

  struct MetricsFlags {
    std::string run;
    int last = 0;
    std::string keys;
    bool all = false;
  };
  auto mf = std::make_shared<MetricsFlags>();
  CLI::App* metrics = root.add_subcommand("metrics", "per-step metrics of a run");
  metrics->add_option("--run", mf->run, "run id (default: the only run)");
  metrics->add_option("--last", mf->last, "only the last N steps (0 = all)")->capture_default_str();
  auto* keys = metrics->add_option("--keys,--columns", mf->keys, "comma-separated metric names to show (table)");
  metrics->add_flag("--all", mf->all, "every metric as a column (table; default: the key ones)")->excludes(keys);
  set.Add(metrics, [mf](Session& s) { return Metrics(s, mf->run, mf->last, mf->keys, mf->all); });
}

}  // namespace zerorl::ctl
