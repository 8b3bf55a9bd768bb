// RewardScorer: the plain C++ scoring API shared by RewardService, `zerorl
// score` and in-process callers (the orchestrator can call it without gRPC).
// A call takes one registry snapshot at its start and scores every item under
// it, in parallel on the pool; each result carries that spec version (0 for a
// candidate spec dry run). Thread-safe; many concurrent callers.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "reward/spec_registry.h"
#include "reward/thread_pool.h"
#include "zerorl/v1/reward.pb.h"

namespace zerorl::reward {

class RewardScorer {
 public:
  RewardScorer(std::shared_ptr<SpecRegistry> registry, int threads)
      : registry_(std::move(registry)), pool_(threads) {}

  // FAILED_PRECONDITION when no spec is active; INVALID_ARGUMENT for a bad candidate spec.
  absl::StatusOr<std::vector<zerorl::v1::RewardResult>> Score(const std::vector<zerorl::v1::ScoreItem>& items,
                                                              const zerorl::v1::RewardSpec* candidate = nullptr);

  SpecRegistry& registry() { return *registry_; }

 private:
  std::shared_ptr<SpecRegistry> registry_;
  ThreadPool pool_;
};

}  // namespace zerorl::reward
