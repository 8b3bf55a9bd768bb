// TrajectoryStore leasing: hands groups to the learner under expiring leases and
// records consumption durably, so each group is trained on exactly once across
// learner (and buffer) restarts.
#include <algorithm>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "buffer/keys.h"
#include "buffer/store_internal.h"
#include "buffer/trajectory_store.h"
#include "common/status.h"

namespace zerorl::buffer {

using zerorl::v1::BufferGroupRecord;

namespace {
bool UniformRewards(const BufferGroupRecord& rec) {
  for (const auto& s : rec.samples())
    if (s.reward() != rec.samples(0).reward()) return false;
  return true;
}
}  // namespace

// The same non-empty holder in a newer incarnation: its predecessor died
// holding the lease.
bool TrajectoryStore::TakesOver(const zerorl::v1::LeaseRequest& req, const LeaseHold& held) {
  return !req.holder().empty() && req.holder() == held.holder && req.holder_incarnation() > held.incarnation;
}

absl::StatusOr<zerorl::v1::LeaseResponse> TrajectoryStore::Lease(const zerorl::v1::LeaseRequest& req) {
  ZRL_RETURN_IF_ERROR(ValidateRunId(req.run_id()));
  if (req.by_step() && req.step() < 0)
    return absl::InvalidArgumentError(absl::StrCat("lease: step ", req.step(), " is negative"));
  if (req.min_policy_version() < 0)
    return absl::InvalidArgumentError(absl::StrCat("lease: min_policy_version ", req.min_policy_version(), " is negative"));
  if (req.max_groups() < 0) return absl::InvalidArgumentError("lease: max_groups is negative");
  if (req.lease_seconds() < 0) return absl::InvalidArgumentError("lease: lease_seconds is negative");
  if (req.include_consumed() && !req.by_step())
    return absl::InvalidArgumentError("lease: include_consumed needs by_step (it re-trains one step)");

  absl::MutexLock l(&mu_);
  const int64_t now = Now();
  const int64_t expires = now + 1000ll * (req.lease_seconds() > 0 ? req.lease_seconds() : options_.lease_seconds);
  zerorl::v1::LeaseResponse out;
  zerorl::v1::BufferLeaseRecord lease;
  rocksdb::WriteBatch batch;
  int64_t bytes = 0;

  // Candidate group keys, in hand-out order.
  std::unique_ptr<rocksdb::Iterator> it;
  std::string prefix, stop;
  if (req.by_step()) {
    prefix = StepPrefix(req.run_id(), req.step());
    it.reset(db_->NewIterator(rocksdb::ReadOptions(), cf_->groups));
    it->Seek(prefix);
  } else {
    prefix = RunPrefix(req.run_id()) + "g";
    stop = VersionIndexKey(req.run_id(), 'g', req.min_policy_version(), 0, 0, 0);
    it.reset(db_->NewIterator(rocksdb::ReadOptions(), cf_->idx_version));
    it->SeekForPrev(PrefixSuccessor(prefix));
    if (it->Valid() && !it->key().starts_with(prefix)) it->Prev();
  }
  for (; it->Valid() && it->key().starts_with(prefix); req.by_step() ? it->Next() : it->Prev()) {
    if (!req.by_step() && it->key().compare(stop) < 0) break;
    std::string gk;
    if (req.by_step()) {
      gk = it->key().ToString();
    } else {
      auto id = IdFromSuffix(req.run_id(), it->key().ToString());
      gk = GroupKey(req.run_id(), id.step(), id.group());
    }
    auto held = held_.find(gk);
    if (held != held_.end() && held->second.expires_unix_ms > now && !TakesOver(req, held->second)) continue;
    std::string marker;
    ZRL_ASSIGN_OR_RETURN(bool consumed, Exists(cf_->consumed, gk, &marker));
    if (consumed && !(req.include_consumed() && marker == kConsumedAcked)) {
      if (req.include_consumed()) out.set_dropped_uniform(out.dropped_uniform() + 1);
      continue;
    }
    BufferGroupRecord rec;
    ZRL_ASSIGN_OR_RETURN(bool found, GetProto(cf_->groups, gk, &rec));
    if (!found) continue;  // deleted by retention since the index was read
    if (req.by_step() && rec.policy_version() < req.min_policy_version()) continue;  // staler than allowed
    if (req.drop_uniform() && UniformRewards(rec)) {
      batch.Put(cf_->consumed, gk, kConsumedDropped);
      out.set_dropped_uniform(out.dropped_uniform() + 1);
      continue;
    }
    if (bytes + rec.bytes() > options_.max_request_bytes) {
      if (out.groups_size() == 0)
        return absl::ResourceExhaustedError(absl::StrCat("lease: one group is ", rec.bytes(),
                                                         " bytes, over buffer.max_request_bytes = ",
                                                         options_.max_request_bytes));
      break;
    }
    ZRL_ASSIGN_OR_RETURN(auto group, ReadGroup(gk, rec));
    bytes += rec.bytes();
    *out.add_groups() = std::move(group);
    lease.add_group_keys(gk);
    if (req.max_groups() > 0 && out.groups_size() >= req.max_groups()) break;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "lease scan");

  std::string lease_id;
  if (out.groups_size() > 0) {
    lease_id = absl::StrCat("L", now, "-", ++lease_counter_);
    lease.set_holder(req.holder());
    lease.set_holder_incarnation(req.holder_incarnation());
    lease.set_include_consumed(req.include_consumed());
    lease.set_expires_unix_ms(expires);
    batch.Put(cf_->leases, lease_id, lease.SerializeAsString());
    out.set_lease_id(lease_id);
    out.set_expires_unix_ms(expires);
  }
  if (batch.Count() > 0) ZRL_RETURN_IF_ERROR(Write(&batch));
  for (const auto& gk : lease.group_keys())
    held_[gk] = LeaseHold{lease_id, expires, req.holder(), req.holder_incarnation()};
  counters_.dropped_uniform += out.dropped_uniform();
  counters_.leased_groups += out.groups_size();
  return out;
}

absl::StatusOr<zerorl::v1::AckResponse> TrajectoryStore::Ack(const zerorl::v1::AckRequest& req) {
  if (req.lease_id().empty()) return absl::InvalidArgumentError("ack: lease_id is empty");
  absl::MutexLock l(&mu_);
  zerorl::v1::BufferLeaseRecord lease;
  ZRL_ASSIGN_OR_RETURN(bool found, GetProto(cf_->leases, req.lease_id(), &lease));
  if (!found)
    return absl::NotFoundError(absl::StrCat("ack: no lease '", absl::CHexEscape(req.lease_id()), "' in the buffer"));
  zerorl::v1::AckResponse out;
  if (lease.acked()) {
    out.set_consumed(lease.consumed());
    return out;
  }
  rocksdb::WriteBatch batch;
  for (const auto& gk : lease.group_keys()) {
    auto held = held_.find(gk);
    const bool ours = held == held_.end() || held->second.lease_id == req.lease_id();
    ZRL_ASSIGN_OR_RETURN(bool consumed, Exists(cf_->consumed, gk));
    if (ours && consumed && lease.include_consumed()) continue;  // a re-training lease: consumed already
    if (!ours || consumed) {
      auto id = ParseGroupKey(gk);
      return absl::FailedPreconditionError(absl::StrCat(
          "ack: lease ", req.lease_id(), " expired and group ", id.ok() ? FormatId(*id) : "?",
          " was handed out again", held != held_.end() ? absl::StrCat(" (lease ", held->second.lease_id, ")") : ""));
    }
    ZRL_ASSIGN_OR_RETURN(bool exists, Exists(cf_->groups, gk));
    if (!exists) continue;  // removed by retention meanwhile
    batch.Put(cf_->consumed, gk, kConsumedAcked);
    out.set_consumed(out.consumed() + 1);
  }
  lease.set_acked(true);
  lease.set_consumed(out.consumed());
  batch.Put(cf_->leases, req.lease_id(), lease.SerializeAsString());
  ZRL_RETURN_IF_ERROR(Write(&batch));
  for (const auto& gk : lease.group_keys()) held_.erase(gk);
  counters_.consumed_groups += out.consumed();
  return out;
}

}  // namespace zerorl::buffer
