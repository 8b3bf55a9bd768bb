// TrajectoryStore queries: filtered, paged listing (picking the narrowest index),
// per-step statistics and the arrival log behind Tail.
#include <cmath>
#include <limits>

#include <rocksdb/db.h>

#include "absl/strings/escaping.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "buffer/keys.h"
#include "buffer/store_internal.h"
#include "buffer/trajectory_filter.h"
#include "buffer/trajectory_store.h"
#include "common/status.h"

namespace zerorl::buffer {

namespace {

inline constexpr int kDefaultPageSize = 100;
inline constexpr int kScanFactor = 50;  // a page examines at most kScanFactor * page_size entries

// Which column family a List walks, and the key range [start, end) in it.
struct ScanPlan {
  char kind = 'p';  // 'p' trajectories, 'q' idx_prompt, 'v' idx_version, 'r' idx_reward
  std::string start, end;  // end "" = unbounded
};

// Index keys of prompt and version carry (step, group, sample) right after the
// indexed value, so a step range narrows them too; the reward index is ordered
// by reward and only used when no step bound narrows the primary keys better.
ScanPlan PlanFor(const zerorl::v1::TrajectoryFilter& f) {
  ScanPlan p;
  const std::string& run = f.run_id();
  if (run.empty()) return p;  // every run: walk the primary keys
  const bool step_bounded = f.step_min() > 0 || f.has_step_max();
  auto step_range = [&](const std::string& prefix) {
    p.start = prefix;
    AppendBe64(&p.start, static_cast<uint64_t>(f.step_min()));
    if (f.has_step_max()) {
      p.end = prefix;
      AppendBe64(&p.end, static_cast<uint64_t>(f.step_max()) + 1);
    } else {
      p.end = PrefixSuccessor(prefix);
    }
  };
  if (!f.prompt_id().empty()) {
    p.kind = 'q';
    step_range(PromptIndexPrefix(run, f.prompt_id()));
  } else if (f.has_policy_version()) {
    p.kind = 'v';
    std::string prefix = RunPrefix(run) + "t";
    AppendBe64(&prefix, static_cast<uint64_t>(f.policy_version()));
    step_range(prefix);
  } else if (!step_bounded && (f.has_min_reward() || f.has_max_reward())) {
    p.kind = 'r';
    p.start = RunPrefix(run);
    AppendOrderedDouble(&p.start, f.has_min_reward() ? f.min_reward() : -std::numeric_limits<double>::infinity());
    if (f.has_max_reward()) {
      std::string hi = RunPrefix(run);
      AppendOrderedDouble(&hi, f.max_reward());
      p.end = PrefixSuccessor(hi);
    } else {
      p.end = PrefixSuccessor(RunPrefix(run));
    }
  } else {
    step_range(RunPrefix(run));
  }
  return p;
}

}  // namespace

absl::StatusOr<zerorl::v1::ListTrajectoriesResponse> TrajectoryStore::List(
    const zerorl::v1::ListTrajectoriesRequest& req) const {
  const auto& f = req.filter();
  ZRL_RETURN_IF_ERROR(ValidateFilter(f));
  if (req.page_size() < 0) return absl::InvalidArgumentError("list: page_size is negative");
  const int page = std::min(req.page_size() > 0 ? req.page_size() : kDefaultPageSize, options_.max_page_size);
  const ScanPlan plan = PlanFor(f);

  std::string resume;
  if (!req.page_token().empty()) {
    auto bad = absl::InvalidArgumentError(
        absl::StrCat("list: page_token '", absl::CHexEscape(req.page_token().substr(0, 64)),
                     "' is malformed or belongs to a different filter"));
    if (req.page_token().size() < 3 || req.page_token()[0] != plan.kind || req.page_token()[1] != ':') return bad;
    resume = absl::HexStringToBytes(req.page_token().substr(2));
    if (absl::BytesToHexString(resume) != absl::AsciiStrToLower(req.page_token().substr(2))) return bad;
    if (resume < plan.start || (!plan.end.empty() && resume >= plan.end) || resume.size() < kIdSuffixBytes) return bad;
  }

  rocksdb::ColumnFamilyHandle* cf = plan.kind == 'p'   ? cf_->trajectories
                                    : plan.kind == 'q' ? cf_->idx_prompt
                                    : plan.kind == 'v' ? cf_->idx_version
                                                       : cf_->idx_reward;
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper(plan.end);
  if (!plan.end.empty()) ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf));
  if (resume.empty()) {
    it->Seek(plan.start);
  } else {
    it->Seek(resume);
    if (it->Valid() && it->key() == rocksdb::Slice(resume)) it->Next();
  }

  zerorl::v1::ListTrajectoriesResponse out;
  std::string cached_gk;
  zerorl::v1::Prompt cached_prompt;
  int64_t scanned = 0;
  for (; it->Valid(); it->Next()) {
    zerorl::v1::Trajectory t;
    if (plan.kind == 'p') {
      if (!t.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())))
        return absl::DataLossError(absl::StrCat("buffer '", path_, "': corrupt trajectory at key ",
                                                absl::CHexEscape(it->key().ToString())));
    } else {
      auto id = IdFromSuffix(f.run_id(), it->key().ToString());
      ZRL_ASSIGN_OR_RETURN(bool found, GetProto(cf_->trajectories, TrajectoryKey(id), &t));
      if (!found) continue;  // deleted by retention after the index entry was read
    }
    ZRL_RETURN_IF_ERROR(AttachPrompt(&t, &cached_gk, &cached_prompt));
    ++scanned;
    if (Matches(f, t)) *out.add_trajectories() = std::move(t);
    if (out.trajectories_size() >= page || scanned >= static_cast<int64_t>(kScanFactor) * page) {
      std::string key = it->key().ToString();
      it->Next();
      if (it->Valid()) out.set_next_page_token(absl::StrCat(std::string(1, plan.kind), ":", absl::BytesToHexString(key)));
      break;
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "list scan");
  return out;
}

absl::StatusOr<zerorl::v1::StepStatsResponse> TrajectoryStore::StepStats(
    const zerorl::v1::StepStatsRequest& req) const {
  ZRL_RETURN_IF_ERROR(ValidateRunId(req.run_id()));
  if (req.step_min() < 0) return absl::InvalidArgumentError("step stats: step_min is negative");
  if (req.step_max() < 0 || (req.step_max() != 0 && req.step_max() < req.step_min()))
    return absl::InvalidArgumentError(absl::StrCat("step stats: step_max ", req.step_max(), " is below step_min ",
                                                   req.step_min(), " (0 = no bound)"));
  rocksdb::ReadOptions ro;
  const std::string end =
      req.step_max() > 0 ? StepPrefix(req.run_id(), req.step_max() + 1) : PrefixSuccessor(RunPrefix(req.run_id()));
  rocksdb::Slice upper(end);
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf_->groups));
  zerorl::v1::StepStatsResponse out;
  struct Acc {
    int64_t n = 0, correct = 0, tokens = 0;
    double sum = 0, sum_sq = 0;
  } acc;
  int64_t step = -1;
  auto flush = [&] {
    if (acc.n == 0) return;
    auto* s = out.add_steps();
    const double n = static_cast<double>(acc.n);
    const double mean = acc.sum / n;
    s->set_step(step);
    s->set_count(acc.n);
    s->set_reward_mean(mean);
    s->set_reward_std(std::sqrt(std::max(0.0, acc.sum_sq / n - mean * mean)));  // population std
    s->set_accuracy(static_cast<double>(acc.correct) / n);
    s->set_completion_len_mean(static_cast<double>(acc.tokens) / n);  // tokens
    acc = Acc{};
  };
  for (it->Seek(StepPrefix(req.run_id(), req.step_min())); it->Valid(); it->Next()) {
    auto id = ParseGroupKey(it->key().ToString());
    if (!id.ok()) return id.status();
    zerorl::v1::BufferGroupRecord rec;
    if (!rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())))
      return absl::DataLossError(absl::StrCat("buffer '", path_, "': corrupt group record ", FormatId(*id)));
    if (id->step() != step) {
      flush();
      step = id->step();
    }
    for (const auto& s : rec.samples()) {
      ++acc.n;
      acc.sum += s.reward();
      acc.sum_sq += s.reward() * s.reward();
      acc.correct += s.correct() ? 1 : 0;
      acc.tokens += s.completion_tokens();
    }
  }
  flush();
  if (!it->status().ok()) return FromRocks(it->status(), "step stats scan");
  return out;
}

absl::StatusOr<std::vector<zerorl::v1::Trajectory>> TrajectoryStore::ReadArrivals(
    uint64_t* cursor, const zerorl::v1::TrajectoryFilter& filter, int max) const {
  ZRL_RETURN_IF_ERROR(ValidateFilter(filter));
  std::vector<zerorl::v1::Trajectory> out;
  std::string start;
  AppendBe64(&start, *cursor);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_->arrivals));
  std::string cached_gk;
  zerorl::v1::Prompt cached_prompt;
  for (it->Seek(start); it->Valid() && static_cast<int>(out.size()) < max; it->Next()) {
    if (it->key().size() != 8) return absl::DataLossError("buffer: malformed arrival key");
    *cursor = ReadBe64(it->key().data()) + 1;
    auto id = ParseTrajectoryKey(it->value().ToString());
    if (!id.ok()) return id.status();
    if (!filter.run_id().empty() && id->run_id() != filter.run_id()) continue;
    zerorl::v1::Trajectory t;
    ZRL_ASSIGN_OR_RETURN(bool found, GetProto(cf_->trajectories, it->value().ToString(), &t));
    if (!found) continue;  // removed by retention
    ZRL_RETURN_IF_ERROR(AttachPrompt(&t, &cached_gk, &cached_prompt));
    if (Matches(filter, t)) out.push_back(std::move(t));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "arrival scan");
  return out;
}

namespace {
struct ArrivalWait {
  const std::atomic<uint64_t>* next_seq;
  const std::atomic<bool>* closed;
  uint64_t cursor;
};
bool ArrivalReady(ArrivalWait* w) { return w->next_seq->load() > w->cursor || w->closed->load(); }
}  // namespace

bool TrajectoryStore::WaitForArrivals(uint64_t cursor, absl::Duration timeout) const {
  ArrivalWait w{&next_seq_, &closed_, cursor};
  absl::MutexLock l(&tail_mu_);
  tail_mu_.AwaitWithTimeout(absl::Condition(&ArrivalReady, &w), timeout);
  return next_seq_.load() > cursor;
}

}  // namespace zerorl::buffer
