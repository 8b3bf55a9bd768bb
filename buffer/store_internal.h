// Internals shared by the TrajectoryStore source files: column family handles,
// meta keys, index key builders and RocksDB status mapping. Not a public API.
#pragma once

#include <string>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "buffer/keys.h"
#include "buffer/trajectory_store.h"

namespace zerorl::buffer {

inline constexpr const char* kColumnFamilies[] = {"trajectories", "groups", "idx_version", "idx_reward",
                                                  "idx_prompt", "leases", "consumed", "arrivals", "meta"};
inline constexpr const char* kFormatKey = "format";
inline constexpr const char* kFormatValue = "zerorl-buffer/1";
inline constexpr const char* kRunKeyPrefix = "run/";
inline constexpr const char* kNextSeqKey = "next_seq";
inline constexpr const char* kConsumedAcked = "a";
inline constexpr const char* kConsumedDropped = "d";

struct TrajectoryStore::Cfs {
  std::vector<rocksdb::ColumnFamilyHandle*> all;  // [default, kColumnFamilies...] as opened
  rocksdb::ColumnFamilyHandle* trajectories = nullptr;
  rocksdb::ColumnFamilyHandle* groups = nullptr;
  rocksdb::ColumnFamilyHandle* idx_version = nullptr;
  rocksdb::ColumnFamilyHandle* idx_reward = nullptr;
  rocksdb::ColumnFamilyHandle* idx_prompt = nullptr;
  rocksdb::ColumnFamilyHandle* leases = nullptr;
  rocksdb::ColumnFamilyHandle* consumed = nullptr;
  rocksdb::ColumnFamilyHandle* arrivals = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  void Bind() {
    rocksdb::ColumnFamilyHandle** slots[] = {&trajectories, &groups,   &idx_version, &idx_reward, &idx_prompt,
                                             &leases,       &consumed, &arrivals,    &meta};
    for (size_t i = 0; i < std::size(slots); ++i) *slots[i] = all[i + 1];
  }
};

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view context);

inline std::string RunMetaKey(absl::string_view run) { return std::string(kRunKeyPrefix) + std::string(run); }

// RUN\0 kind version:be64 step group sample ('t' per trajectory, 'g' per group).
inline std::string VersionIndexKey(absl::string_view run, char kind, int64_t version, int64_t step,
                                   int32_t group, int32_t sample) {
  std::string k = RunPrefix(run);
  k.push_back(kind);
  AppendBe64(&k, static_cast<uint64_t>(version));
  AppendBe64(&k, static_cast<uint64_t>(step));
  AppendBe32(&k, static_cast<uint32_t>(group));
  AppendBe32(&k, static_cast<uint32_t>(sample));
  return k;
}
inline std::string RewardIndexKey(absl::string_view run, double reward, int64_t step, int32_t group,
                                  int32_t sample) {
  std::string k = RunPrefix(run);
  AppendOrderedDouble(&k, reward);
  AppendBe64(&k, static_cast<uint64_t>(step));
  AppendBe32(&k, static_cast<uint32_t>(group));
  AppendBe32(&k, static_cast<uint32_t>(sample));
  return k;
}
inline std::string PromptIndexPrefix(absl::string_view run, absl::string_view prompt_id) {
  std::string k = RunPrefix(run);
  k.append(prompt_id.data(), prompt_id.size());
  k.push_back('\0');
  return k;
}
inline std::string PromptIndexKey(absl::string_view run, absl::string_view prompt_id, int64_t step,
                                  int32_t group, int32_t sample) {
  std::string k = PromptIndexPrefix(run, prompt_id);
  AppendBe64(&k, static_cast<uint64_t>(step));
  AppendBe32(&k, static_cast<uint32_t>(group));
  AppendBe32(&k, static_cast<uint32_t>(sample));
  return k;
}

// The per-trajectory index entries of one sample.
inline void PutIndexEntries(rocksdb::WriteBatch* b, const TrajectoryStore::Cfs& cf, absl::string_view run,
                            absl::string_view prompt_id, const zerorl::v1::BufferSampleRecord& s,
                            int64_t step, int32_t group) {
  b->Put(cf.idx_version, VersionIndexKey(run, 't', s.policy_version(), step, group, s.sample()), "");
  b->Put(cf.idx_reward, RewardIndexKey(run, s.reward(), step, group, s.sample()), "");
  b->Put(cf.idx_prompt, PromptIndexKey(run, prompt_id, step, group, s.sample()), "");
}
inline void DeleteIndexEntries(rocksdb::WriteBatch* b, const TrajectoryStore::Cfs& cf, absl::string_view run,
                               absl::string_view prompt_id, const zerorl::v1::BufferSampleRecord& s,
                               int64_t step, int32_t group) {
  b->Delete(cf.idx_version, VersionIndexKey(run, 't', s.policy_version(), step, group, s.sample()));
  b->Delete(cf.idx_reward, RewardIndexKey(run, s.reward(), step, group, s.sample()));
  b->Delete(cf.idx_prompt, PromptIndexKey(run, prompt_id, step, group, s.sample()));
}

}  // namespace zerorl::buffer
