// SpecRegistry: the versioned, hot-swappable active RewardSpec.
//
// Set() compiles (validates) a spec first and only then swaps it in under a
// mutex: the version increments by one, the old compiled spec stays alive for
// calls still holding it (shared_ptr snapshot), and an invalid spec changes
// nothing. A scoring call takes one Snapshot() at its start and scores every
// item with it, so every result carries the version active when the call began.
// History keeps every version ever set; Rollback(v) re-activates version v's
// spec as a new version. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "reward/reward_spec.h"
#include "zerorl/v1/reward.pb.h"

namespace zerorl::reward {

class SpecRegistry {
 public:
  explicit SpecRegistry(SpecEnvironment env) : env_(std::move(env)) {}

  struct Snapshot {
    int64_t version = 0;                         // 0: no spec set yet
    std::shared_ptr<const CompiledSpec> spec;    // null when version == 0
  };

  // Compiles and activates `spec`. INVALID_ARGUMENT (naming the bad field) leaves the active spec as it was.
  absl::StatusOr<zerorl::v1::RewardSpecVersion> Set(const zerorl::v1::RewardSpec& spec, const std::string& source,
                                                    const std::string& reason);
  // NOT_FOUND for an unknown version.
  absl::StatusOr<zerorl::v1::RewardSpecVersion> Rollback(int64_t version, const std::string& reason);

  Snapshot Current() const;
  // FAILED_PRECONDITION when no spec is active yet.
  absl::StatusOr<zerorl::v1::RewardSpecVersion> CurrentInfo() const;
  std::vector<zerorl::v1::RewardSpecVersion> History() const;

  // Compiles a spec without activating it (dry runs: ScoreRequest.candidate_spec).
  absl::StatusOr<std::shared_ptr<const CompiledSpec>> Compile(const zerorl::v1::RewardSpec& spec) const;

 private:
  SpecEnvironment env_;
  // Serialises Set/Rollback (compilation happens outside mu_); taken before mu_.
  absl::Mutex set_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  Snapshot active_ ABSL_GUARDED_BY(mu_);
  std::vector<zerorl::v1::RewardSpecVersion> history_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zerorl::reward
