// TrajectoryStore: the buffer's storage engine — durable, idempotent storage of
// scored trajectory groups on RocksDB, exactly-once leasing for the learner, and
// the queries behind the CLI. A plain C++ class: the orchestrator and learner may
// use it in-process; buffer/service.h wraps it as the gRPC BufferService.
//
// ---- On-disk layout (RocksDB column families; key encodings in keys.h) ----
//   trajectories  TKEY = RUN\0 step:be64 group:be32 sample:be32 -> Trajectory (prompt cleared)
//   groups        GKEY = RUN\0 step:be64 group:be32             -> BufferGroupRecord
//                 (prompt, per-sample reward/correct/length/version/bytes)
//   idx_version   RUN\0 't' version:be64 step group sample      -> ""  (per trajectory)
//                 RUN\0 'g' version:be64 step group 0:be32      -> ""  (per group, min version)
//   idx_reward    RUN\0 reward:ordered-double64 step group sample -> ""
//   idx_prompt    RUN\0 prompt_id \0 step group sample          -> ""
//   leases        lease id                                      -> BufferLeaseRecord
//   consumed      GKEY -> "a" (acknowledged by a lease) | "d" (dropped: uniform rewards)
//   arrivals      seq:be64                                      -> TKEY (append order; Tail)
//   meta          "format" -> "zerorl-buffer/1"; "run/RUN" -> BufferRunRecord;
//                 "next_seq" -> be64
// Big-endian fixed-width numbers make a prefix scan of "RUN\0" walk a run in
// (step, group, sample) order. Values compress with zstd (lz4 if the linked
// RocksDB lacks zstd). Prompt ids must not contain NUL.
//
// ---- Durability ----
// Append, Lease, Ack and retention each commit ONE WriteBatch with WAL sync=true
// before returning (StoreOptions::sync; only benchmarks' bulk fills turn it off).
// A crash (kill -9, power loss) therefore loses nothing that was acknowledged, and
// a batch is either wholly visible after recovery or not at all. Writers are
// serialized by one mutex (one fsync per call); readers never block writers.
//
// ---- Open ----
// A missing or empty directory is created as a new buffer. A non-empty directory
// must be a buffer written by this code (format marker in meta); anything else —
// not RocksDB, a foreign RocksDB, an unknown format, corruption — is an error
// naming the path (FAILED_PRECONDITION / DATA_LOSS). Open never wipes anything.
// A directory held by another process is UNAVAILABLE.
//
// ---- Errors ----
// INVALID_ARGUMENT: malformed IDs, filters, page tokens, requests.
// RESOURCE_EXHAUSTED: an Append request or a Lease result over max_request_bytes.
// NOT_FOUND: unknown trajectory or lease. FAILED_PRECONDITION: acking a lease whose
// groups were re-leased after it expired. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "zerorl/v1/buffer.pb.h"
#include "zerorl/v1/config.pb.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Iterator;
class WriteBatch;
}  // namespace rocksdb

namespace zerorl::buffer {

struct StoreOptions {
  int32_t keep_last_steps = 0;          // per run; 0 = keep all. Default 0.
  int64_t keep_bytes = 0;               // per run (stored value bytes); 0 = no limit. Default 0.
  int64_t max_request_bytes = 64 << 20;  // Append request / Lease result cap. Default 64 MiB.
  int32_t max_page_size = 1000;         // List pages are clamped to this. Default 1000.
  int32_t lease_seconds = 600;          // default lease length. Default 600 s.
  // WAL fsync before a write returns. Default true; false loses recent appends on
  // power loss (not on a process crash) and is meant only for bulk benchmark fills.
  bool sync = true;
  std::function<int64_t()> now_unix_ms;  // clock for leases and timestamps; default wall clock

  static StoreOptions FromConfig(const zerorl::v1::BufferConfig& config);
};

// Counters since open (for metrics and Describe()).
struct StoreCounters {
  int64_t appended_groups = 0;
  int64_t duplicate_groups = 0;
  int64_t dropped_uniform = 0;
  int64_t leased_groups = 0;
  int64_t consumed_groups = 0;
  int64_t retention_deleted = 0;  // trajectories
};

class TrajectoryStore {
 public:
  // Opens or creates the buffer at `path` (see "Open" above).
  static absl::StatusOr<std::unique_ptr<TrajectoryStore>> Open(const std::string& path,
                                                               const StoreOptions& options);
  ~TrajectoryStore();
  TrajectoryStore(const TrajectoryStore&) = delete;
  TrajectoryStore& operator=(const TrajectoryStore&) = delete;

  // Stores the groups atomically and durably. A group whose ID is already stored
  // (or lies below the run's retention floor) is a duplicate and left untouched.
  // Each trajectory's ID must name its group (an unset ID is filled in, sample =
  // position); samples are unique. The group's prompt is stored once (a group
  // without one takes its first trajectory's). Applies retention afterwards.
  absl::StatusOr<zerorl::v1::AppendResponse> Append(const zerorl::v1::AppendRequest& request);

  // Hands out groups not yet consumed and not under a live lease: those of
  // `step` (by_step), or the freshest (highest policy version, then step) whose
  // policy version is >= min_policy_version. With drop_uniform, groups whose
  // rewards are all equal are marked consumed ("dropped") and counted instead.
  // An empty result has no lease id. Stops before exceeding max_request_bytes.
  // Leases carry (holder, holder_incarnation): a request from the same non-empty
  // holder with a higher incarnation than the live lease's takes that lease's groups over
  // at once (a restarted learner reclaims what its dead predecessor leased); an
  // unrelated holder waits for expiry (buffer.lease_seconds). With by_step and
  // include_consumed, the step's consumed groups are handed out again (a learner
  // restored from an older checkpoint re-trains the step).
  // Crash: the lease is granted (durable with its groups) or not at all; live
  // leases, with their holders, survive a restart of the buffer.
  absl::StatusOr<zerorl::v1::LeaseResponse> Lease(const zerorl::v1::LeaseRequest& request);
  // Marks the lease's groups consumed, durably. Acking again returns the same
  // count. Acking after expiry succeeds unless a group was re-leased meanwhile
  // (FAILED_PRECONDITION), or, for an include_consumed lease, the group was
  // consumed already (then it is skipped, not counted).
  absl::StatusOr<zerorl::v1::AckResponse> Ack(const zerorl::v1::AckRequest& request);

  // One page of trajectories matching the filter (page_size 0 = 100, clamped to
  // max_page_size). Order is (step, group, sample), except for a reward range
  // without step bounds, which walks the reward index (ascending reward). The
  // walk uses idx_prompt / idx_version / the primary keys / idx_reward, in that
  // order of preference, each narrowed by the step range.
  // A page may be short while next_page_token is set (a page scans at most
  // 50 * page_size entries so selective filters stay fast).
  absl::StatusOr<zerorl::v1::ListTrajectoriesResponse> List(
      const zerorl::v1::ListTrajectoriesRequest& request) const;
  absl::StatusOr<zerorl::v1::Trajectory> Get(const zerorl::v1::TrajectoryId& id) const;
  absl::StatusOr<zerorl::v1::Trajectory> Get(const std::string& id_text) const;
  absl::StatusOr<zerorl::v1::StepStatsResponse> StepStats(const zerorl::v1::StepStatsRequest& request) const;
  zerorl::v1::ListRunsResponse ListRuns() const;

  // ---- Tail: every stored trajectory has an arrival sequence number ----
  uint64_t NextArrival() const { return next_seq_.load(); }  // seq the next append gets
  // Up to `max` matching trajectories with seq >= *cursor, in arrival order;
  // advances *cursor past everything examined (matching or not).
  absl::StatusOr<std::vector<zerorl::v1::Trajectory>> ReadArrivals(
      uint64_t* cursor, const zerorl::v1::TrajectoryFilter& filter, int max) const;
  // Blocks until an arrival with seq >= cursor exists, the timeout passes or the
  // store is closing; returns true in the first case.
  bool WaitForArrivals(uint64_t cursor, absl::Duration timeout) const;

  // ---- Maintenance ----
  // RocksDB checkpoint into `dir` (must not exist; hard links where possible).
  absl::StatusOr<zerorl::v1::BackupResponse> Backup(const std::string& dir);
  // Applies retention to `run_id` (all runs when empty), then compacts.
  absl::StatusOr<zerorl::v1::CompactResponse> Compact(const std::string& run_id);

  // Wakes Tail waiters; further waits return at once. Called by the destructor.
  void Close();
  bool closing() const { return closed_.load(); }
  StoreCounters counters() const;
  const std::string& path() const { return path_; }

  struct Cfs;  // column family handles (store_internal.h)

 private:
  struct LeaseHold {
    std::string lease_id;
    int64_t expires_unix_ms = 0;
    std::string holder;         // empty: nobody can take the lease over before expiry
    int64_t incarnation = 0;
  };
  TrajectoryStore(std::string path, StoreOptions options);
  absl::Status Load();
  absl::Status Write(rocksdb::WriteBatch* batch) const;
  int64_t Now() const;
  // Whether `key` is in `cf`; its value into *value when set.
  absl::StatusOr<bool> Exists(rocksdb::ColumnFamilyHandle* cf, const std::string& key,
                              std::string* value = nullptr) const;
  static bool TakesOver(const zerorl::v1::LeaseRequest& request, const LeaseHold& held);
  absl::StatusOr<bool> GetProto(rocksdb::ColumnFamilyHandle* cf, const std::string& key,
                                google::protobuf::Message* out) const;
  // Reads a whole group (prompt re-attached to every trajectory).
  absl::StatusOr<zerorl::v1::Group> ReadGroup(const std::string& group_key,
                                              const zerorl::v1::BufferGroupRecord& record) const;
  // Prompt for a trajectory key's group, cached across consecutive calls.
  absl::Status AttachPrompt(zerorl::v1::Trajectory* t, std::string* cached_group_key,
                            zerorl::v1::Prompt* cached_prompt) const;
  // Append's phases (trajectory_store.cc), in order, on one PendingAppend.
  struct PendingAppend;
  zerorl::v1::BufferRunRecord* TouchRun(const zerorl::v1::TrajectoryId& group_id, PendingAppend* p) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<bool> IsDuplicate(const std::string& group_key, const zerorl::v1::TrajectoryId& group_id,
                                   const zerorl::v1::BufferRunRecord& run, PendingAppend* p) const;
  void StageGroup(const std::string& group_key, zerorl::v1::Group* g, zerorl::v1::BufferRunRecord* run,
                  PendingAppend* p) const;
  absl::Status CommitAppend(PendingAppend* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyRetentionAfterAppend(const PendingAppend& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes groups below the retention floor of `run_id`; returns trajectories deleted.
  absl::StatusOr<int64_t> ApplyRetentionLocked(const std::string& run_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeleteGroupInto(rocksdb::WriteBatch* batch, const std::string& run_id, const std::string& group_key,
                       const zerorl::v1::BufferGroupRecord& record);

  const std::string path_;
  const StoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::unique_ptr<Cfs> cf_;

  mutable absl::Mutex mu_;  // serializes writers
  std::map<std::string, zerorl::v1::BufferRunRecord> runs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, LeaseHold> held_ ABSL_GUARDED_BY(mu_);  // group key -> latest lease
  StoreCounters counters_ ABSL_GUARDED_BY(mu_);
  uint64_t lease_counter_ ABSL_GUARDED_BY(mu_) = 0;

  mutable absl::Mutex tail_mu_;  // guards nothing but the wait condition
  std::atomic<uint64_t> next_seq_{0};
  std::atomic<bool> closed_{false};
};

}  // namespace zerorl::buffer
