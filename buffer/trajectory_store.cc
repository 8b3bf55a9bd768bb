// TrajectoryStore: open/format checks, Append, Get, ListRuns, retention and
// maintenance. Leases live in store_leases.cc, queries in store_queries.cc.
#include "buffer/trajectory_store.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "buffer/keys.h"
#include "buffer/store_internal.h"
#include "common/log.h"
#include "common/status.h"

namespace zerorl::buffer {

namespace fs = std::filesystem;
using zerorl::v1::BufferGroupRecord;
using zerorl::v1::BufferRunRecord;

StoreOptions StoreOptions::FromConfig(const zerorl::v1::BufferConfig& c) {
  StoreOptions o;
  o.keep_last_steps = c.keep_last_steps();
  o.keep_bytes = c.keep_bytes();
  if (c.max_request_bytes() > 0) o.max_request_bytes = c.max_request_bytes();
  if (c.max_page_size() > 0) o.max_page_size = c.max_page_size();
  if (c.lease_seconds() > 0) o.lease_seconds = c.lease_seconds();
  return o;
}

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view context) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat(context, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  if (s.IsIOError() && absl::StrContains(s.ToString(), "lock"))
    return absl::UnavailableError(absl::StrCat(msg, " (is another process using this buffer?)"));
  return absl::InternalError(msg);
}

rocksdb::ColumnFamilyOptions BufferCfOptions() {
  rocksdb::ColumnFamilyOptions o;
  auto supported = rocksdb::GetSupportedCompressions();
  auto has = [&](rocksdb::CompressionType t) {
    return std::find(supported.begin(), supported.end(), t) != supported.end();
  };
  o.compression = has(rocksdb::kZSTD) ? rocksdb::kZSTD
                  : has(rocksdb::kLZ4Compression) ? rocksdb::kLZ4Compression
                                                  : rocksdb::kSnappyCompression;
  rocksdb::BlockBasedTableOptions t;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.block_size = 16 << 10;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

TrajectoryStore::TrajectoryStore(std::string path, StoreOptions options)
    : path_(std::move(path)), options_(std::move(options)), cf_(std::make_unique<Cfs>()) {}

TrajectoryStore::~TrajectoryStore() {
  Close();
  if (db_) {
    for (auto* h : cf_->all) db_->DestroyColumnFamilyHandle(h);
    db_->Close().PermitUncheckedError();
  }
}

void TrajectoryStore::Close() {
  absl::MutexLock l(&tail_mu_);
  closed_ = true;
}

absl::StatusOr<std::unique_ptr<TrajectoryStore>> TrajectoryStore::Open(const std::string& path,
                                                                       const StoreOptions& options) {
  if (path.empty()) return absl::InvalidArgumentError("buffer path is empty");
  std::error_code ec;
  bool fresh = !fs::exists(path, ec);
  if (!fresh) {
    if (!fs::is_directory(path, ec))
      return absl::FailedPreconditionError(absl::StrCat("buffer path '", path, "' exists and is not a directory"));
    fresh = fs::is_empty(path, ec);
  }
  if (fresh) {
    fs::create_directories(path, ec);
    if (ec) return absl::FailedPreconditionError(absl::StrCat("cannot create buffer directory '", path, "': ", ec.message()));
  } else {
    if (!fs::exists(fs::path(path) / "CURRENT"))
      return absl::FailedPreconditionError(absl::StrCat(
          "buffer path '", path, "' is not empty and is not a RocksDB database (no CURRENT file); "
          "refusing to use or wipe it — point buffer.path at an empty or zerorl buffer directory"));
    std::vector<std::string> names;
    auto s = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names);
    if (!s.ok()) return FromRocks(s, absl::StrCat("buffer path '", path, "' is unreadable"));
    std::set<std::string> have(names.begin(), names.end());
    for (const char* cf : kColumnFamilies) {
      if (!have.count(cf))
        return absl::FailedPreconditionError(absl::StrCat(
            "buffer path '", path, "' is a RocksDB database but not a zerorl buffer (no column family '", cf,
            "'); refusing to use it"));
    }
  }

  auto store = std::unique_ptr<TrajectoryStore>(new TrajectoryStore(path, options));
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = fresh;
  db_options.create_missing_column_families = fresh;
  db_options.paranoid_checks = true;
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  db_options.IncreaseParallelism(2);
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  descs.emplace_back(rocksdb::kDefaultColumnFamilyName, BufferCfOptions());
  for (const char* cf : kColumnFamilies) descs.emplace_back(cf, BufferCfOptions());
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(db_options, path, descs, &store->cf_->all, &raw);
  if (!s.ok()) return FromRocks(s, absl::StrCat("opening buffer at '", path, "'"));
  store->db_.reset(raw);
  store->cf_->Bind();
  ZRL_RETURN_IF_ERROR(store->Load());
  return store;
}

absl::Status TrajectoryStore::Load() {
  std::string marker;
  auto s = db_->Get(rocksdb::ReadOptions(), cf_->meta, kFormatKey, &marker);
  if (s.IsNotFound()) {
    // A fresh database (or one created by a process that died before writing the
    // marker): adopt it only if it holds nothing at all.
    for (auto* h : cf_->all) {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), h));
      it->SeekToFirst();
      if (it->Valid())
        return absl::FailedPreconditionError(absl::StrCat(
            "buffer path '", path_, "' holds data but no zerorl format marker; refusing to use it"));
    }
    rocksdb::WriteBatch b;
    b.Put(cf_->meta, kFormatKey, kFormatValue);
    return Write(&b);
  }
  if (!s.ok()) return FromRocks(s, absl::StrCat("reading format marker of '", path_, "'"));
  if (marker != kFormatValue)
    return absl::FailedPreconditionError(absl::StrCat("buffer path '", path_, "' has format '", marker,
                                                      "', this build reads '", kFormatValue, "'"));
  absl::MutexLock l(&mu_);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_->meta));
  for (it->Seek(kRunKeyPrefix); it->Valid() && it->key().starts_with(kRunKeyPrefix); it->Next()) {
    BufferRunRecord r;
    if (!r.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())))
      return absl::DataLossError(absl::StrCat("buffer '", path_, "': corrupt run record ", it->key().ToString()));
    runs_[it->key().ToString().substr(strlen(kRunKeyPrefix))] = r;
  }
  std::string seq;
  if (db_->Get(rocksdb::ReadOptions(), cf_->meta, kNextSeqKey, &seq).ok() && seq.size() == 8)
    next_seq_ = ReadBe64(seq.data());
  const int64_t now = Now();
  std::unique_ptr<rocksdb::Iterator> li(db_->NewIterator(rocksdb::ReadOptions(), cf_->leases));
  for (li->SeekToFirst(); li->Valid(); li->Next()) {
    zerorl::v1::BufferLeaseRecord r;
    if (!r.ParseFromArray(li->value().data(), static_cast<int>(li->value().size())))
      return absl::DataLossError(absl::StrCat("buffer '", path_, "': corrupt lease record"));
    ++lease_counter_;
    if (r.acked() || r.expires_unix_ms() <= now) continue;
    for (const auto& gk : r.group_keys())
      held_[gk] = LeaseHold{li->key().ToString(), r.expires_unix_ms(), r.holder(), r.holder_incarnation()};
  }
  return absl::OkStatus();
}

absl::Status TrajectoryStore::Write(rocksdb::WriteBatch* batch) const {
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  return FromRocks(db_->Write(wo, batch), absl::StrCat("writing buffer '", path_, "'"));
}

int64_t TrajectoryStore::Now() const {
  if (options_.now_unix_ms) return options_.now_unix_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<bool> TrajectoryStore::Exists(rocksdb::ColumnFamilyHandle* cf, const std::string& key,
                                             std::string* value) const {
  rocksdb::PinnableSlice v;
  auto s = db_->Get(rocksdb::ReadOptions(), cf, key, &v);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return FromRocks(s, "buffer read");
  if (value != nullptr) value->assign(v.data(), v.size());
  return true;
}

absl::StatusOr<bool> TrajectoryStore::GetProto(rocksdb::ColumnFamilyHandle* cf, const std::string& key,
                                               google::protobuf::Message* out) const {
  rocksdb::PinnableSlice v;
  auto s = db_->Get(rocksdb::ReadOptions(), cf, key, &v);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return FromRocks(s, "buffer read");
  if (!out->ParseFromArray(v.data(), static_cast<int>(v.size())))
    return absl::DataLossError(absl::StrCat("buffer '", path_, "': corrupt ", out->GetTypeName(), " record"));
  return true;
}

namespace {

// The request's groups, checked and completed (group sample 0, trajectory ids
// filled from the group's, the prompt taken from the first trajectory when the
// group has none). Everything is validated before anything is written: a
// request is all or nothing.
absl::StatusOr<std::vector<zerorl::v1::Group>> ValidatedGroups(const zerorl::v1::AppendRequest& request,
                                                               int64_t max_request_bytes) {
  const size_t request_bytes = request.ByteSizeLong();
  if (static_cast<int64_t>(request_bytes) > max_request_bytes)
    return absl::ResourceExhaustedError(absl::StrCat("append of ", request_bytes, " bytes exceeds buffer.max_request_bytes = ",
                                                     max_request_bytes));
  std::vector<zerorl::v1::Group> groups(request.groups().begin(), request.groups().end());
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    auto& g = groups[gi];
    auto where = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("groups[", gi, "] (", FormatId(g.id()), "): ", what));
    };
    g.mutable_id()->set_sample(0);
    if (auto s = ValidateId(g.id()); !s.ok()) return where(s.message());
    if (g.trajectories_size() == 0) return where("has no trajectories");
    if (!g.has_prompt()) *g.mutable_prompt() = g.trajectories(0).prompt();
    if (g.prompt().id().find('\0') != std::string::npos) return where("prompt id contains a NUL byte");
    std::set<int32_t> samples;
    for (int i = 0; i < g.trajectories_size(); ++i) {
      auto* id = g.mutable_trajectories(i)->mutable_id();
      if (id->run_id().empty()) {
        id->set_run_id(g.id().run_id());
        id->set_step(g.id().step());
        id->set_group(g.id().group());
        id->set_sample(i);
      }
      if (id->run_id() != g.id().run_id() || id->step() != g.id().step() || id->group() != g.id().group())
        return where(absl::StrCat("trajectory ", FormatId(*id), " does not belong to this group"));
      if (id->sample() < 0) return where(absl::StrCat("trajectory ", FormatId(*id), " has a negative sample"));
      if (!samples.insert(id->sample()).second)
        return where(absl::StrCat("sample ", id->sample(), " appears twice"));
      const double r = g.trajectories(i).reward().reward();
      if (std::isnan(r)) return where(absl::StrCat("trajectory ", FormatId(*id), " has a NaN reward"));
      if (g.trajectories(i).sample().policy_version() < 0)
        return where(absl::StrCat("trajectory ", FormatId(*id), " has a negative policy version"));
    }
  }
  return groups;
}

}  // namespace

// One Append under mu_: the batch it will commit and what it changes.
struct TrajectoryStore::PendingAppend {
  int64_t now = 0;                                 // unix ms stamped on new records
  uint64_t seq = 0;                                // next arrival sequence number
  rocksdb::WriteBatch batch;
  std::set<std::string> in_request;                // group keys seen so far in the request
  std::map<std::string, BufferRunRecord> touched;  // run id -> its record after this append
  zerorl::v1::AppendResponse response;
};

absl::StatusOr<zerorl::v1::AppendResponse> TrajectoryStore::Append(const zerorl::v1::AppendRequest& request) {
  ZRL_ASSIGN_OR_RETURN(std::vector<zerorl::v1::Group> groups, ValidatedGroups(request, options_.max_request_bytes));
  absl::MutexLock l(&mu_);
  PendingAppend p;
  p.now = Now();
  p.seq = next_seq_.load();
  for (auto& g : groups) {
    const std::string gk = GroupKey(g.id().run_id(), g.id().step(), g.id().group());
    BufferRunRecord* rr = TouchRun(g.id(), &p);
    ZRL_ASSIGN_OR_RETURN(const bool dup, IsDuplicate(gk, g.id(), *rr, &p));
    if (dup) {
      p.response.set_duplicates(p.response.duplicates() + 1);
      continue;
    }
    StageGroup(gk, &g, rr, &p);
    p.response.set_appended(p.response.appended() + 1);
  }
  counters_.duplicate_groups += p.response.duplicates();
  if (p.response.appended() == 0) return p.response;
  ZRL_RETURN_IF_ERROR(CommitAppend(&p));
  ApplyRetentionAfterAppend(p);
  return p.response;
}

// The record of the group's run as this append leaves it (first touch: the
// stored one, or a fresh one starting at the group's step).
BufferRunRecord* TrajectoryStore::TouchRun(const zerorl::v1::TrajectoryId& group_id, PendingAppend* p) const {
  const std::string& run = group_id.run_id();
  auto rit = p->touched.find(run);
  if (rit == p->touched.end()) {
    auto known = runs_.find(run);
    BufferRunRecord fresh;
    fresh.set_first_step(group_id.step());
    fresh.set_last_step(group_id.step());
    rit = p->touched.emplace(run, known != runs_.end() ? known->second : fresh).first;
  }
  return &rit->second;
}

// A group already in this request, below the run's retention floor, or
// already stored is a duplicate (acknowledged, not written again).
absl::StatusOr<bool> TrajectoryStore::IsDuplicate(const std::string& group_key,
                                                  const zerorl::v1::TrajectoryId& group_id,
                                                  const BufferRunRecord& run, PendingAppend* p) const {
  if (!p->in_request.insert(group_key).second || group_id.step() < run.retained_from_step()) return true;
  return Exists(cf_->groups, group_key);
}

// Puts the group into the batch: each trajectory (prompt stripped: the group
// record holds it once), its index entries and arrival, then the group record;
// counts the group into its run's record.
void TrajectoryStore::StageGroup(const std::string& group_key, zerorl::v1::Group* g, BufferRunRecord* run,
                                 PendingAppend* p) const {
  const std::string& run_id = g->id().run_id();
  BufferGroupRecord rec;
  *rec.mutable_prompt() = g->prompt();
  rec.set_created_unix_ms(p->now);
  int64_t min_version = INT64_MAX;
  std::string value;
  for (auto& t : *g->mutable_trajectories()) {
    t.clear_prompt();
    if (t.created_unix_ms() == 0) t.set_created_unix_ms(p->now);
    t.SerializeToString(&value);
    const std::string tk = TrajectoryKey(t.id());
    p->batch.Put(cf_->trajectories, tk, value);
    auto* sr = rec.add_samples();
    sr->set_sample(t.id().sample());
    sr->set_reward(t.reward().reward());
    sr->set_correct(t.reward().correct());
    sr->set_completion_tokens(t.sample().token_ids_size());
    sr->set_policy_version(t.sample().policy_version());
    sr->set_finish_reason(t.sample().finish_reason());
    sr->set_bytes(static_cast<int64_t>(value.size()));
    sr->set_arrival_seq(p->seq);
    rec.set_reward_spec_version(std::max(rec.reward_spec_version(), t.reward().spec_version()));
    rec.set_bytes(rec.bytes() + static_cast<int64_t>(value.size()));
    min_version = std::min(min_version, t.sample().policy_version());
    PutIndexEntries(&p->batch, *cf_, run_id, rec.prompt().id(), *sr, g->id().step(), g->id().group());
    std::string seq_key;
    AppendBe64(&seq_key, p->seq++);
    p->batch.Put(cf_->arrivals, seq_key, tk);
  }
  rec.set_policy_version(min_version);
  p->batch.Put(cf_->idx_version, VersionIndexKey(run_id, 'g', min_version, g->id().step(), g->id().group(), 0), "");
  rec.set_bytes(rec.bytes() + static_cast<int64_t>(rec.ByteSizeLong()));
  p->batch.Put(cf_->groups, group_key, rec.SerializeAsString());
  run->set_trajectories(run->trajectories() + g->trajectories_size());
  run->set_groups(run->groups() + 1);
  run->set_bytes(run->bytes() + rec.bytes());
  run->set_first_step(run->groups() == 1 ? g->id().step() : std::min(run->first_step(), g->id().step()));
  run->set_last_step(run->groups() == 1 ? g->id().step() : std::max(run->last_step(), g->id().step()));
}

// Adds the touched run records and the next arrival number to the batch,
// writes it (one WriteBatch, WAL sync), then publishes the new state.
absl::Status TrajectoryStore::CommitAppend(PendingAppend* p) {
  for (const auto& [run, rr] : p->touched) p->batch.Put(cf_->meta, RunMetaKey(run), rr.SerializeAsString());
  std::string seq_value;
  AppendBe64(&seq_value, p->seq);
  p->batch.Put(cf_->meta, kNextSeqKey, seq_value);
  ZRL_RETURN_IF_ERROR(Write(&p->batch));
  for (auto& [run, rr] : p->touched) runs_[run] = rr;
  counters_.appended_groups += p->response.appended();
  {
    absl::MutexLock tl(&tail_mu_);
    next_seq_ = p->seq;
  }
  return absl::OkStatus();
}

// Retention of every touched run. The append itself is durable; a failed
// cleanup is logged and retried on the next append.
void TrajectoryStore::ApplyRetentionAfterAppend(const PendingAppend& p) {
  if (options_.keep_last_steps <= 0 && options_.keep_bytes <= 0) return;
  for (const auto& [run, rr] : p.touched) {
    auto deleted = ApplyRetentionLocked(run);
    if (!deleted.ok()) {
      ZLOG(WARNING) << "buffer retention for run " << run << ": " << deleted.status();
    }
  }
}

void TrajectoryStore::DeleteGroupInto(rocksdb::WriteBatch* batch, const std::string& run,
                                      const std::string& group_key, const BufferGroupRecord& rec) {
  auto id = ParseGroupKey(group_key);
  const int64_t step = id.ok() ? id->step() : 0;
  const int32_t group = id.ok() ? id->group() : 0;
  for (const auto& s : rec.samples()) {
    batch->Delete(cf_->trajectories, TrajectoryKey(run, step, group, s.sample()));
    DeleteIndexEntries(batch, *cf_, run, rec.prompt().id(), s, step, group);
    std::string seq_key;
    AppendBe64(&seq_key, s.arrival_seq());
    batch->Delete(cf_->arrivals, seq_key);
  }
  batch->Delete(cf_->idx_version, VersionIndexKey(run, 'g', rec.policy_version(), step, group, 0));
  batch->Delete(cf_->consumed, group_key);
  batch->Delete(cf_->groups, group_key);
}

absl::StatusOr<int64_t> TrajectoryStore::ApplyRetentionLocked(const std::string& run) {
  auto it = runs_.find(run);
  if (it == runs_.end()) return absl::NotFoundError(absl::StrCat("no run '", run, "' in the buffer"));
  BufferRunRecord rr = it->second;
  int64_t floor = rr.retained_from_step();
  if (options_.keep_last_steps > 0) floor = std::max(floor, rr.last_step() - options_.keep_last_steps + 1);
  const bool over_bytes = options_.keep_bytes > 0 && rr.bytes() > options_.keep_bytes;
  if (floor <= rr.first_step() && !over_bytes) return 0;

  rocksdb::WriteBatch batch;
  int64_t deleted = 0;
  std::unique_ptr<rocksdb::Iterator> git(db_->NewIterator(rocksdb::ReadOptions(), cf_->groups));
  const std::string prefix = RunPrefix(run);
  int64_t current_step = -1;
  for (git->Seek(prefix); git->Valid() && git->key().starts_with(prefix); git->Next()) {
    auto id = ParseGroupKey(git->key().ToString());
    if (!id.ok()) return id.status();
    if (id->step() != current_step) {
      // Whole steps go: below the floor always; above it while over the byte
      // budget, but never the newest step.
      const bool below = id->step() < floor;
      const bool shrink = options_.keep_bytes > 0 && rr.bytes() > options_.keep_bytes && id->step() < rr.last_step();
      if (!below && !shrink) break;
      current_step = id->step();
      floor = std::max(floor, current_step + 1);
    }
    BufferGroupRecord rec;
    if (!rec.ParseFromArray(git->value().data(), static_cast<int>(git->value().size())))
      return absl::DataLossError(absl::StrCat("buffer '", path_, "': corrupt group record ", FormatId(*id)));
    DeleteGroupInto(&batch, run, git->key().ToString(), rec);
    held_.erase(git->key().ToString());
    deleted += rec.samples_size();
    rr.set_trajectories(rr.trajectories() - rec.samples_size());
    rr.set_groups(rr.groups() - 1);
    rr.set_bytes(rr.bytes() - rec.bytes());
  }
  rr.set_retained_from_step(floor);
  // First remaining step (the next group key at or after the floor).
  git->Seek(StepPrefix(run, floor));
  if (git->Valid() && git->key().starts_with(prefix)) {
    auto id = ParseGroupKey(git->key().ToString());
    if (id.ok()) rr.set_first_step(id->step());
  } else {
    rr.set_first_step(std::max(floor, rr.last_step()));
  }
  batch.Put(cf_->meta, RunMetaKey(run), rr.SerializeAsString());
  ZRL_RETURN_IF_ERROR(Write(&batch));
  it->second = rr;
  counters_.retention_deleted += deleted;
  return deleted;
}

absl::StatusOr<zerorl::v1::Trajectory> TrajectoryStore::Get(const zerorl::v1::TrajectoryId& id) const {
  ZRL_RETURN_IF_ERROR(ValidateId(id));
  zerorl::v1::Trajectory t;
  ZRL_ASSIGN_OR_RETURN(bool found, GetProto(cf_->trajectories, TrajectoryKey(id), &t));
  if (!found) return absl::NotFoundError(absl::StrCat("no trajectory ", FormatId(id), " in the buffer"));
  std::string gk;
  zerorl::v1::Prompt p;
  ZRL_RETURN_IF_ERROR(AttachPrompt(&t, &gk, &p));
  return t;
}

absl::StatusOr<zerorl::v1::Trajectory> TrajectoryStore::Get(const std::string& id_text) const {
  ZRL_ASSIGN_OR_RETURN(auto id, ParseId(id_text));
  return Get(id);
}

absl::Status TrajectoryStore::AttachPrompt(zerorl::v1::Trajectory* t, std::string* cached_group_key,
                                           zerorl::v1::Prompt* cached_prompt) const {
  std::string gk = GroupKey(t->id().run_id(), t->id().step(), t->id().group());
  if (gk != *cached_group_key) {
    BufferGroupRecord rec;
    ZRL_ASSIGN_OR_RETURN(bool found, GetProto(cf_->groups, gk, &rec));
    if (!found) return absl::NotFoundError(absl::StrCat("group of ", FormatId(t->id()), " vanished"));
    *cached_prompt = std::move(*rec.mutable_prompt());
    *cached_group_key = std::move(gk);
  }
  *t->mutable_prompt() = *cached_prompt;
  return absl::OkStatus();
}

absl::StatusOr<zerorl::v1::Group> TrajectoryStore::ReadGroup(const std::string& group_key,
                                                             const BufferGroupRecord& rec) const {
  ZRL_ASSIGN_OR_RETURN(auto gid, ParseGroupKey(group_key));
  zerorl::v1::Group g;
  *g.mutable_id() = gid;
  *g.mutable_prompt() = rec.prompt();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_->trajectories));
  for (it->Seek(group_key); it->Valid() && it->key().starts_with(group_key); it->Next()) {
    auto* t = g.add_trajectories();
    if (!t->ParseFromArray(it->value().data(), static_cast<int>(it->value().size())))
      return absl::DataLossError(absl::StrCat("buffer '", path_, "': corrupt trajectory in group ", FormatId(gid)));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "buffer scan");
  if (g.trajectories_size() != rec.samples_size())
    return absl::DataLossError(absl::StrCat("buffer '", path_, "': group ", FormatId(gid), " has ",
                                            g.trajectories_size(), " of ", rec.samples_size(), " trajectories"));
  return g;
}

zerorl::v1::ListRunsResponse TrajectoryStore::ListRuns() const {
  absl::MutexLock l(&mu_);
  zerorl::v1::ListRunsResponse out;
  for (const auto& [run, rr] : runs_) {
    auto* s = out.add_runs();
    s->set_run_id(run);
    s->set_trajectories(rr.trajectories());
    s->set_first_step(rr.first_step());
    s->set_last_step(rr.last_step());
    s->set_bytes(rr.bytes());
  }
  return out;
}

absl::StatusOr<zerorl::v1::BackupResponse> TrajectoryStore::Backup(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("backup dir is empty");
  std::error_code ec;
  if (fs::exists(dir, ec)) return absl::AlreadyExistsError(absl::StrCat("backup dir '", dir, "' already exists"));
  rocksdb::Checkpoint* raw = nullptr;
  ZRL_RETURN_IF_ERROR(FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw), "checkpoint"));
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  ZRL_RETURN_IF_ERROR(FromRocks(cp->CreateCheckpoint(dir), absl::StrCat("checkpoint into '", dir, "'")));
  zerorl::v1::BackupResponse out;
  out.set_dir(dir);
  int64_t bytes = 0;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file()) bytes += static_cast<int64_t>(e.file_size());
  out.set_bytes(bytes);
  return out;
}

absl::StatusOr<zerorl::v1::CompactResponse> TrajectoryStore::Compact(const std::string& run_id) {
  if (!run_id.empty()) {
    ZRL_RETURN_IF_ERROR(ValidateRunId(run_id));
  }
  zerorl::v1::CompactResponse out;
  {
    absl::MutexLock l(&mu_);
    std::vector<std::string> runs;
    if (run_id.empty()) {
      for (const auto& [run, rr] : runs_) runs.push_back(run);
    } else {
      if (!runs_.count(run_id)) return absl::NotFoundError(absl::StrCat("no run '", run_id, "' in the buffer"));
      runs.push_back(run_id);
    }
    for (const auto& run : runs) {
      ZRL_ASSIGN_OR_RETURN(int64_t n, ApplyRetentionLocked(run));
      out.set_deleted(out.deleted() + n);
    }
  }
  rocksdb::CompactRangeOptions co;
  for (auto* h : cf_->all)
    ZRL_RETURN_IF_ERROR(FromRocks(db_->CompactRange(co, h, nullptr, nullptr), "compaction"));
  return out;
}

StoreCounters TrajectoryStore::counters() const {
  absl::MutexLock l(&mu_);
  return counters_;
}

}  // namespace zerorl::buffer
