// RewardScorer (contract in scorer.h).
#include "reward/scorer.h"

#include "common/status.h"

namespace zerorl::reward {

absl::StatusOr<std::vector<zerorl::v1::RewardResult>> RewardScorer::Score(
    const std::vector<zerorl::v1::ScoreItem>& items, const zerorl::v1::RewardSpec* candidate) {
  SpecRegistry::Snapshot snap;
  if (candidate != nullptr) {
    ZRL_ASSIGN_OR_RETURN(snap.spec, registry_->Compile(*candidate));
    snap.version = 0;
  } else {
    snap = registry_->Current();
    if (snap.spec == nullptr) return absl::FailedPreconditionError("no reward spec is active");
  }
  std::vector<zerorl::v1::RewardResult> results(items.size());
  pool_.ParallelFor(items.size(), [&](size_t i) {
    results[i] = snap.spec->Score(items[i]);
    results[i].set_spec_version(snap.version);
  });
  return results;
}

}  // namespace zerorl::reward
