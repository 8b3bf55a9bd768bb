// `zerorlctl traj list|show|tail|export`: the BufferService side.
//
// list/tail/export share one set of filter flags, turned into a
// TrajectoryFilter: --run, --step A:B, --min-reward, --max-reward, --version,
// --finish, --contains, --prompt-id. Paging is done here: --limit N stops after
// N trajectories (0 = all).
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/ctl_commands.h"
#include "cli/ctl_output.h"
#include "cli/ctl_traj_view.h"
#include "common/status.h"
#include "zerorl/v1/buffer.grpc.pb.h"

namespace zerorl::ctl {
namespace {

namespace v1 = zerorl::v1;

constexpr int kPageSize = 256;

struct FilterFlags {
  std::string run, step, finish, contains, prompt_id;
  double min_reward = 0, max_reward = 0;
  int64_t version = 0;
  int limit = 0;
  CLI::Option* min_opt = nullptr;
  CLI::Option* max_opt = nullptr;
  CLI::Option* version_opt = nullptr;
};

void AddFilterFlags(CLI::App* app, FilterFlags* f, CommandSet& set, int default_limit) {
  f->limit = default_limit;
  app->add_option("--run", f->run, "run id (default: the buffer's only run)");
  app->add_option("--step", f->step, "steps A:B inclusive (also A, A:, :B)");
  f->min_opt = app->add_option("--min-reward", f->min_reward, "reward >= X");
  f->max_opt = app->add_option("--max-reward", f->max_reward, "reward <= Y");
  f->version_opt = app->add_option("--version", f->version, "policy version V");
  set.Choices(app->add_option("--finish", f->finish, "finish reason"), {"stop", "length", "abort"});
  app->add_option("--contains", f->contains, "substring of the prompt or the completion");
  app->add_option("--prompt-id", f->prompt_id, "dataset prompt id");
  app->add_option("--limit", f->limit, "at most N trajectories (0 = no limit)")->capture_default_str();
}

// "A:B", "A", "A:", ":B" -> filter bounds.
absl::Status ParseSteps(const std::string& text, v1::TrajectoryFilter* filter) {
  if (text.empty()) return absl::OkStatus();
  auto bad = [&] {
    return UsageError(absl::StrCat("--step: \"", text, "\" is not A:B, A, A: or :B with steps >= 0"));
  };
  size_t colon = text.find(':');
  std::string a = colon == std::string::npos ? text : text.substr(0, colon);
  std::string b = colon == std::string::npos ? text : text.substr(colon + 1);
  int64_t lo = 0, hi = 0;
  if (!a.empty() && (!absl::SimpleAtoi(a, &lo) || lo < 0)) return bad();
  if (!b.empty() && (!absl::SimpleAtoi(b, &hi) || hi < 0)) return bad();
  if (!b.empty() && hi < lo)
    return UsageError(absl::StrCat("--step: \"", text, "\": the end ", hi, " is before the start ", lo));
  filter->set_step_min(lo);
  if (!b.empty()) {
    filter->set_step_max(hi);
    filter->set_has_step_max(true);
  }
  return absl::OkStatus();
}

// The buffer's only run, for commands given no --run.
absl::StatusOr<std::string> DefaultBufferRun(Session& s, const std::string& address) {
  auto ctx = s.Context();
  v1::ListRunsResponse runs;
  grpc::Status st = v1::BufferService::NewStub(s.Channel(address))->ListRuns(ctx.get(), v1::ListRunsRequest(), &runs);
  if (!st.ok()) return s.CallError(st, "buffer", address);
  if (runs.runs_size() == 1) return runs.runs(0).run_id();
  if (runs.runs_size() == 0) return UsageError("--run: the buffer holds no runs yet");
  std::string ids;
  for (const auto& r : runs.runs()) absl::StrAppend(&ids, ids.empty() ? "" : ", ", r.run_id());
  return UsageError(absl::StrCat("--run is required: the buffer holds runs ", ids));
}

struct Target {
  std::string address;
  v1::TrajectoryFilter filter;
};

// Validates the flags, finds the buffer and fills in the run.
absl::StatusOr<Target> Resolve(Session& s, const FilterFlags& f) {
  Target t;
  if (f.limit < 0) return UsageError("--limit: must be >= 0");
  ZRL_RETURN_IF_ERROR(ParseSteps(f.step, &t.filter));
  if (f.min_opt->count() > 0) t.filter.set_min_reward(f.min_reward);
  if (f.max_opt->count() > 0) t.filter.set_max_reward(f.max_reward);
  if (f.min_opt->count() > 0 && f.max_opt->count() > 0 && f.min_reward > f.max_reward)
    return UsageError(absl::StrCat("--min-reward ", f.min_reward, " is above --max-reward ", f.max_reward));
  if (f.version_opt->count() > 0) t.filter.set_policy_version(f.version);
  if (f.finish == "stop") t.filter.set_finish_reason(v1::FINISH_REASON_STOP);
  if (f.finish == "length") t.filter.set_finish_reason(v1::FINISH_REASON_LENGTH);
  if (f.finish == "abort") t.filter.set_finish_reason(v1::FINISH_REASON_ABORT);
  t.filter.set_contains(f.contains);
  t.filter.set_prompt_id(f.prompt_id);
  ZRL_ASSIGN_OR_RETURN(t.address, s.BufferAddress(f.run));
  std::string run = f.run;
  if (run.empty()) {
    ZRL_ASSIGN_OR_RETURN(run, DefaultBufferRun(s, t.address));
  }
  t.filter.set_run_id(run);
  return t;
}

// Calls `each` for every matching trajectory, page by page, up to `limit` (0 = all).
absl::Status ForEachTrajectory(Session& s, const Target& t, int limit,
                               const std::function<void(const v1::Trajectory&)>& each) {
  auto stub = v1::BufferService::NewStub(s.Channel(t.address));
  v1::ListTrajectoriesRequest req;
  *req.mutable_filter() = t.filter;
  int seen = 0;
  while (true) {
    req.set_page_size(limit > 0 ? std::min(kPageSize, limit - seen) : kPageSize);
    v1::ListTrajectoriesResponse resp;
    auto ctx = s.Context();
    grpc::Status st = stub->ListTrajectories(ctx.get(), req, &resp);
    if (!st.ok()) return s.CallError(st, "buffer", t.address);
    for (const auto& traj : resp.trajectories()) {
      if (limit > 0 && seen >= limit) return absl::OkStatus();
      each(traj);
      ++seen;
    }
    if (resp.next_page_token().empty() || (limit > 0 && seen >= limit)) return absl::OkStatus();
    req.set_page_token(resp.next_page_token());
  }
}

std::vector<std::string> Row(const v1::Trajectory& t) {
  return {FormatId(t.id()),
          absl::StrCat(t.id().step()),
          FormatNumber(t.reward().reward()),
          absl::StrCat(t.sample().token_ids_size()),
          FinishName(t.sample().finish_reason()),
          absl::StrCat(t.sample().policy_version()),
          absl::StrCat(t.reward().spec_version()),
          Preview(t.sample().text(), 48)};
}
const std::vector<std::string> kHeader = {"ID", "STEP", "REWARD", "LEN", "FINISH", "POLICY", "SPEC", "COMPLETION"};

absl::Status List(Session& s, const FilterFlags& f) {
  ZRL_ASSIGN_OR_RETURN(Target t, Resolve(s, f));
  v1::ListTrajectoriesResponse all;
  Table table(kHeader);
  ZRL_RETURN_IF_ERROR(ForEachTrajectory(s, t, f.limit, [&](const v1::Trajectory& traj) {
    switch (s.output()) {
      case OutputMode::kJson: *all.add_trajectories() = traj; break;
      case OutputMode::kJsonl: s.out() << ToJson(traj, false) << "\n"; break;
      case OutputMode::kTable: table.AddRow(Row(traj)); break;
    }
  }));
  if (s.output() == OutputMode::kJson) s.out() << ToJson(all, true) << "\n";
  if (s.output() == OutputMode::kTable) table.Print(s.out());
  return absl::OkStatus();
}

absl::Status Show(Session& s, const std::string& id_text) {
  ZRL_ASSIGN_OR_RETURN(v1::TrajectoryId id, ParseId(id_text));
  ZRL_ASSIGN_OR_RETURN(std::string address, s.BufferAddress(id.run_id()));
  v1::GetTrajectoryRequest req;
  req.set_id(FormatId(id));
  v1::Trajectory traj;
  auto ctx = s.Context();
  grpc::Status st = v1::BufferService::NewStub(s.Channel(address))->GetTrajectory(ctx.get(), req, &traj);
  if (!st.ok()) return s.CallError(st, "buffer", address);
  if (s.output() == OutputMode::kTable) {
    PrintTrajectory(s.out(), traj);
  } else {
    s.out() << ToJson(traj, s.output() == OutputMode::kJson) << "\n";
  }
  return absl::OkStatus();
}

// Streams new trajectories until Ctrl-C (exit 0), --limit, or the server ends it.
absl::Status Tail(Session& s, const FilterFlags& f, bool from_start) {
  ZRL_ASSIGN_OR_RETURN(Target t, Resolve(s, f));
  v1::TailRequest req;
  *req.mutable_filter() = t.filter;
  req.set_from_start(from_start);
  grpc::ClientContext ctx;  // no deadline: a tail runs until stopped
  Runtime* rt = s.runtime();
  rt->streaming = true;
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      if (rt->interrupted) {
        ctx.TryCancel();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  auto stub = v1::BufferService::NewStub(s.Channel(t.address));
  auto reader = stub->Tail(&ctx, req);
  std::vector<size_t> widths = {std::max<size_t>(16, t.filter.run_id().size() + 10), 5, 8, 5, 6, 6, 4};
  if (s.output() == OutputMode::kTable) s.out() << Table::FormatRow(kHeader, widths) << std::endl;
  v1::Trajectory traj;
  int seen = 0;
  bool limited = false;
  while (reader->Read(&traj)) {
    if (s.output() == OutputMode::kTable) {
      s.out() << Table::FormatRow(Row(traj), widths) << std::endl;
    } else {
      s.out() << ToJson(traj, s.output() == OutputMode::kJson) << std::endl;
    }
    if (f.limit > 0 && ++seen >= f.limit) {
      limited = true;
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status st = reader->Finish();
  done = true;
  watcher.join();
  rt->streaming = false;
  if (limited || rt->interrupted) return absl::OkStatus();
  if (!st.ok()) return s.CallError(st, "buffer", t.address);
  return absl::OkStatus();
}

// Where --out writes. A regular file (or a new one) is replaced atomically: a
// temp file beside it, renamed over it once complete, so a failed export leaves
// the old file whole. A symbolic link is refused (a rename would replace the
// link itself, not its target). Anything else that is not a directory — a
// device (/dev/null, /dev/stdout), a FIFO — is written through in place and
// never replaced: a write error (ENOSPC on /dev/full) fails the export.
enum class OutKind { kStdout, kReplace, kWriteThrough };

absl::StatusOr<OutKind> ClassifyOut(const std::string& path) {
  if (path == "-") return OutKind::kStdout;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return OutKind::kReplace;
    return UsageError(absl::StrCat("--out ", path, ": ", std::strerror(errno)));
  }
  if (S_ISLNK(st.st_mode))
    return UsageError(absl::StrCat("--out ", path, ": is a symbolic link; give the path it points to"));
  if (S_ISDIR(st.st_mode)) return UsageError(absl::StrCat("--out ", path, ": is a directory"));
  return S_ISREG(st.st_mode) ? OutKind::kReplace : OutKind::kWriteThrough;
}

absl::Status Export(Session& s, const FilterFlags& f, const std::string& path) {
  ZRL_ASSIGN_OR_RETURN(const OutKind kind, ClassifyOut(path));
  ZRL_ASSIGN_OR_RETURN(Target t, Resolve(s, f));
  const bool to_stdout = kind == OutKind::kStdout;
  const bool replace = kind == OutKind::kReplace;
  const std::string tmp = replace ? path + ".tmp" : path;
  std::ofstream file;
  if (!to_stdout) {
    file.open(tmp, replace ? std::ios::trunc : std::ios::out);
    if (!file) return UsageError(absl::StrCat("--out: cannot write ", tmp));
  }
  std::ostream& sink = to_stdout ? s.out() : file;
  int64_t count = 0;
  absl::Status st = ForEachTrajectory(s, t, f.limit, [&](const v1::Trajectory& traj) {
    sink << ToJson(traj, false) << "\n";
    ++count;
  });
  if (!to_stdout) {
    file.close();
    if (!st.ok() || !file) {
      if (replace) std::remove(tmp.c_str());
      return st.ok() ? absl::InternalError(absl::StrCat("writing ", tmp, " failed")) : st;
    }
    if (replace && std::rename(tmp.c_str(), path.c_str()) != 0) {
      std::remove(tmp.c_str());
      return UsageError(absl::StrCat("--out: cannot rename ", tmp, " to ", path));
    }
  }
  ZRL_RETURN_IF_ERROR(st);
  if (to_stdout) return absl::OkStatus();
  if (s.output() == OutputMode::kTable) {
    s.out() << "exported " << count << " trajectories of run " << t.filter.run_id() << " to " << path << "\n";
  } else {
    nlohmann::json j{{"exported", count}, {"run_id", t.filter.run_id()}, {"out", path}};
    s.out() << (s.output() == OutputMode::kJson ? j.dump(2) : j.dump()) << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

void AddTrajCommands(CLI::App& root, CommandSet& set) {
  CLI::App* traj = root.add_subcommand("traj", "inspect stored trajectories (buffer)");
  traj->require_subcommand(1);

  auto lf = std::make_shared<FilterFlags>();
  CLI::App* list = traj->add_subcommand("list", "matching trajectories: id, step, reward, length, finish");
  AddFilterFlags(list, lf.get(), set, 50);
  set.Add(list, [lf](Session& s) { return List(s, *lf); });

  auto id = std::make_shared<std::string>();
  CLI::App* show = traj->add_subcommand("show", "one trajectory: text, reward terms, versions, logprobs");
  show->add_option("ID", *id, "RUN/STEP/GROUP/SAMPLE")->required();
  set.Add(show, [id](Session& s) { return Show(s, *id); });

  auto tf = std::make_shared<FilterFlags>();
  auto from_start = std::make_shared<bool>(false);
  CLI::App* tail = traj->add_subcommand("tail", "stream new trajectories as they are stored (Ctrl-C stops)");
  AddFilterFlags(tail, tf.get(), set, 0);
  tail->add_flag("--from-start", *from_start, "replay what is stored first");
  set.Add(tail, [tf, from_start](Session& s) { return Tail(s, *tf, *from_start); });

  auto ef = std::make_shared<FilterFlags>();
  auto out = std::make_shared<std::string>();
  CLI::App* exp = traj->add_subcommand("export", "write matching trajectories as JSON lines");
  AddFilterFlags(exp, ef.get(), set, 0);
  set.File(exp->add_option("--out", *out, "FILE.jsonl, or - for stdout")->required());
  set.Add(exp, [ef, out](Session& s) { return Export(s, *ef, *out); });
}

}  // namespace zerorl::ctl
