// `zerorlctl reward get|set|history|rollback|test`: the RewardService side.
//
// Specs are read locally with the project's YAML loader (unknown keys are usage
// errors naming file, line and key) and sent as RewardSpec messages. `reward
// test` scores stored trajectories (fetched from the buffer) under a candidate
// spec without swapping it in: ScoreRequest.candidate_spec.
#include <memory>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/ctl_commands.h"
#include "cli/ctl_output.h"
#include "cli/ctl_traj_view.h"
#include "common/config.h"
#include "common/status.h"
#include "zerorl/v1/buffer.grpc.pb.h"
#include "zerorl/v1/reward.grpc.pb.h"

namespace zerorl::ctl {
namespace {

namespace v1 = zerorl::v1;

struct RewardFlags {
  std::string run;     // picks the run whose reward service to use (orchestrator lookup)
  std::string spec;    // SPEC.yaml
  std::string reason;
  int64_t version = 0;
  std::vector<std::string> traj;
};

struct RewardTarget {
  std::string address;
  std::unique_ptr<v1::RewardService::Stub> stub;
};

absl::StatusOr<RewardTarget> Reward(Session& s, const std::string& run) {
  RewardTarget t;
  ZRL_ASSIGN_OR_RETURN(t.address, s.RewardAddress(run));
  t.stub = v1::RewardService::NewStub(s.Channel(t.address));
  return t;
}

absl::StatusOr<v1::RewardSpec> LoadSpec(const std::string& path) {
  v1::RewardSpec spec;
  absl::Status st = MergeYamlFileInto(path, &spec);
  if (!st.ok()) return UsageError(absl::StrCat("spec ", path, ": ", st.message()));
  if (spec.terms_size() == 0) return UsageError(absl::StrCat("spec ", path, ": no terms"));
  return spec;
}

std::string TermNames(const v1::RewardSpec& spec) {
  std::vector<std::string> names;
  for (const auto& t : spec.terms()) names.push_back(t.name().empty() ? v1::TermKind_Name(t.kind()) : t.name());
  return absl::StrJoin(names, ",");
}

void PrintVersion(Session& s, const v1::RewardSpecVersion& v, const char* headline) {
  if (s.output() != OutputMode::kTable) {
    s.out() << ToJson(v, s.output() == OutputMode::kJson) << "\n";
    return;
  }
  auto& out = s.out();
  if (headline != nullptr) out << headline << "\n";
  out << "version  " << v.version() << "\n";
  out << "created  " << FormatTime(v.created_unix_ms()) << " UTC\n";
  out << "source   " << (v.source().empty() ? "-" : v.source()) << "\n";
  out << "reason   " << (v.reason().empty() ? "-" : v.reason()) << "\n";
  out << "spec:\n";
  for (absl::string_view line : absl::StrSplit(MessageToYaml(v.spec()), '\n', absl::SkipEmpty()))
    out << "  " << line << "\n";
}

absl::Status Get(Session& s, const RewardFlags& f) {
  ZRL_ASSIGN_OR_RETURN(RewardTarget r, Reward(s, f.run));
  v1::RewardSpecVersion v;
  auto ctx = s.Context();
  grpc::Status st = r.stub->GetRewardSpec(ctx.get(), v1::GetRewardSpecRequest(), &v);
  if (!st.ok()) return s.CallError(st, "reward", r.address);
  PrintVersion(s, v, nullptr);
  return absl::OkStatus();
}

absl::Status Set(Session& s, const RewardFlags& f) {
  ZRL_ASSIGN_OR_RETURN(v1::RewardSpec spec, LoadSpec(f.spec));
  ZRL_ASSIGN_OR_RETURN(auto ctx, s.AdminContext());
  ZRL_ASSIGN_OR_RETURN(RewardTarget r, Reward(s, f.run));
  v1::SetRewardSpecRequest req;
  *req.mutable_spec() = spec;
  req.set_reason(f.reason.empty() ? absl::StrCat("zerorlctl reward set ", f.spec) : f.reason);
  v1::RewardSpecVersion v;
  grpc::Status st = r.stub->SetRewardSpec(ctx.get(), req, &v);
  if (!st.ok()) return s.CallError(st, "reward", r.address);
  std::string headline = absl::StrCat("reward spec version ", v.version(), " is active");
  PrintVersion(s, v, headline.c_str());
  return absl::OkStatus();
}

absl::Status History(Session& s, const RewardFlags& f) {
  ZRL_ASSIGN_OR_RETURN(RewardTarget r, Reward(s, f.run));
  v1::ListSpecVersionsResponse resp;
  auto ctx = s.Context();
  grpc::Status st = r.stub->ListSpecVersions(ctx.get(), v1::ListSpecVersionsRequest(), &resp);
  if (!st.ok()) return s.CallError(st, "reward", r.address);
  if (s.output() == OutputMode::kJson) {
    s.out() << ToJson(resp, true) << "\n";
  } else if (s.output() == OutputMode::kJsonl) {
    for (const auto& v : resp.versions()) s.out() << ToJson(v, false) << "\n";
  } else {
    Table t({"VERSION", "ACTIVE", "CREATED", "SOURCE", "NAME", "TERMS", "REASON"});
    for (const auto& v : resp.versions())
      t.AddRow({absl::StrCat(v.version()), v.version() == resp.active_version() ? "*" : "",
                FormatTime(v.created_unix_ms()), v.source().empty() ? "-" : v.source(),
                v.spec().name().empty() ? "-" : v.spec().name(), TermNames(v.spec()),
                v.reason().empty() ? "-" : Preview(v.reason(), 60)});
    t.Print(s.out());
  }
  return absl::OkStatus();
}

absl::Status Rollback(Session& s, const RewardFlags& f) {
  if (f.version <= 0) return UsageError(absl::StrCat("VERSION: must be a positive spec version, got ", f.version));
  ZRL_ASSIGN_OR_RETURN(auto ctx, s.AdminContext());
  ZRL_ASSIGN_OR_RETURN(RewardTarget r, Reward(s, f.run));
  v1::RollbackRequest req;
  req.set_version(f.version);
  req.set_reason(f.reason);  // the server records "rollback to N" itself
  v1::RewardSpecVersion v;
  grpc::Status st = r.stub->Rollback(ctx.get(), req, &v);
  if (!st.ok()) return s.CallError(st, "reward", r.address);
  std::string headline =
      absl::StrCat("rolled back to version ", f.version, ": reward spec version ", v.version(), " is active");
  PrintVersion(s, v, headline.c_str());
  return absl::OkStatus();
}

// Scores stored trajectories under a candidate spec, next to their stored scores.
absl::Status Test(Session& s, const RewardFlags& f) {
  ZRL_ASSIGN_OR_RETURN(v1::RewardSpec spec, LoadSpec(f.spec));
  std::vector<v1::TrajectoryId> ids;
  for (const auto& text : f.traj) {
    ZRL_ASSIGN_OR_RETURN(v1::TrajectoryId id, ParseId(text));
    ids.push_back(id);
  }
  std::vector<v1::Trajectory> stored;
  v1::ScoreRequest req;
  *req.mutable_candidate_spec() = spec;
  for (const auto& id : ids) {
    ZRL_ASSIGN_OR_RETURN(std::string address, s.BufferAddress(id.run_id()));
    v1::GetTrajectoryRequest get;
    get.set_id(FormatId(id));
    v1::Trajectory t;
    auto ctx = s.Context();
    grpc::Status st = v1::BufferService::NewStub(s.Channel(address))->GetTrajectory(ctx.get(), get, &t);
    if (!st.ok()) return s.CallError(st, "buffer", address);
    v1::ScoreItem* item = req.add_items();
    item->set_id(FormatId(t.id()));
    item->set_prompt(t.prompt().text());
    item->set_completion(t.sample().text());
    *item->mutable_answer() = t.prompt().answer();
    item->set_completion_tokens(t.sample().token_ids_size());
    item->set_finish_reason(t.sample().finish_reason());
    stored.push_back(std::move(t));
  }
  ZRL_ASSIGN_OR_RETURN(RewardTarget r, Reward(s, f.run.empty() ? ids.front().run_id() : f.run));
  v1::ScoreResponse resp;
  auto ctx = s.Context();
  grpc::Status st = r.stub->Score(ctx.get(), req, &resp);
  if (!st.ok()) return s.CallError(st, "reward", r.address);
  if (resp.results_size() != req.items_size())
    return absl::InternalError(absl::StrCat("reward at ", r.address, " returned ", resp.results_size(),
                                            " results for ", req.items_size(), " items"));

  if (s.output() != OutputMode::kTable) {
    nlohmann::json results = nlohmann::json::array();
    for (size_t i = 0; i < stored.size(); ++i)
      results.push_back({{"id", FormatId(stored[i].id())},
                         {"stored", nlohmann::json::parse(ToJson(stored[i].reward(), false))},
                         {"candidate", nlohmann::json::parse(ToJson(resp.results(i), false))}});
    if (s.output() == OutputMode::kJson) {
      s.out() << nlohmann::json{{"results", results}}.dump(2) << "\n";
    } else {
      for (const auto& j : results) s.out() << j.dump() << "\n";
    }
    return absl::OkStatus();
  }
  Table t({"ID", "STORED", "STORED-SPEC", "CANDIDATE", "DELTA", "CORRECT", "ERROR"});
  for (size_t i = 0; i < stored.size(); ++i) {
    const auto& old = stored[i].reward();
    const auto& cand = resp.results(i);
    t.AddRow({FormatId(stored[i].id()), FormatNumber(old.reward()), absl::StrCat("v", old.spec_version()),
              FormatNumber(cand.reward()), FormatNumber(cand.reward() - old.reward()),
              cand.correct() ? "yes" : "no", cand.error().empty() ? "-" : Preview(cand.error(), 60)});
  }
  t.Print(s.out());
  for (size_t i = 0; i < stored.size(); ++i) {
    s.out() << "\n" << FormatId(stored[i].id()) << " under " << f.spec << ":\n";
    PrintTerms(s.out(), resp.results(i), "  ");
  }
  return absl::OkStatus();
}

}  // namespace

void AddRewardCommands(CLI::App& root, CommandSet& set) {
  CLI::App* reward = root.add_subcommand("reward", "see and hot-swap the reward spec (reward service)");
  reward->require_subcommand(1);
  auto f = std::make_shared<RewardFlags>();
  auto add_run = [&](CLI::App* app) {
    app->add_option("--run", f->run, "use the reward service of this run (when the orchestrator has several)");
  };

  CLI::App* get = reward->add_subcommand("get", "the active spec and its version");
  add_run(get);
  set.Add(get, [f](Session& s) { return Get(s, *f); });

  CLI::App* setc = reward->add_subcommand("set", "validate and swap in a spec from YAML (admin)");
  set.File(setc->add_option("SPEC", f->spec, "RewardSpec YAML file")->required());
  setc->add_option("--reason", f->reason, "note kept in the history");
  add_run(setc);
  set.Add(setc, [f](Session& s) { return Set(s, *f); });

  CLI::App* history = reward->add_subcommand("history", "every spec version, the active one marked");
  add_run(history);
  set.Add(history, [f](Session& s) { return History(s, *f); });

  CLI::App* rollback = reward->add_subcommand("rollback", "make an earlier version active again (admin)");
  rollback->add_option("VERSION", f->version, "spec version to restore")->required();
  rollback->add_option("--reason", f->reason, "note kept in the history");
  add_run(rollback);
  set.Add(rollback, [f](Session& s) { return Rollback(s, *f); });

  CLI::App* test = reward->add_subcommand("test", "score stored trajectories under a candidate spec (dry run)");
  set.File(test->add_option("SPEC", f->spec, "candidate RewardSpec YAML file")->required());
  test->add_option("--traj", f->traj, "trajectory id RUN/STEP/GROUP/SAMPLE (repeatable)")->required();
  add_run(test);
  set.Add(test, [f](Session& s) { return Test(s, *f); });
}

}  // namespace zerorl::ctl
