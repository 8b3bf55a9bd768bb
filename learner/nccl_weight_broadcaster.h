// NcclWeightBroadcaster: the learner's side (rank 0) of the NCCL weight
// broadcast to rollout workers (the worker side is rollout/nccl_weight_member.h).
//
// Send() delivers one version to the workers it can reach over NCCL and says,
// per worker, why not for the others; the caller streams to those
// (UpdateWeights), so a publish never depends on NCCL. How:
//   1. Preconditions on this side: built with NCCL, the learner's parameters
//      in device memory. Otherwise every worker falls back, with the reason.
//   2. Group formation, when the set of workers differs from the current
//      group's: each candidate is asked JoinWeightGroup{check_only} (model
//      config fingerprint, parameter count, its model on a GPU, NCCL built);
//      a worker that refuses is remembered with its reason (logged once) and
//      not asked again while it stays in the target list. The others get
//      ranks 1..n of a fresh unique id and join while this side creates rank
//      0, all within join_timeout. A group that fails to form is not retried
//      for the same set of workers.
//   3. Per version: ReceiveWeightsNccl{version} to every member while this
//      side broadcasts its parameter buffer as root, within `timeout`. Any
//      failure drops the group (not formed again for the same workers) and
//      the version goes by stream to the members that did not take it.
// NCCL calls cannot be interrupted: on a timeout the stuck call is left on a
// detached thread (see rollout/nccl_weight_deadline.h) and the group dropped.
// Not thread-safe: one Send at a time (the learner publishes serially).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "learner/weight_publisher.h"

namespace zerorl::weights {
class NcclComm;
}  // namespace zerorl::weights

namespace zerorl::learner {

class NcclWeightBroadcaster {
 public:
  struct Options {
    int device = 0;                                  // the learner's CUDA device
    std::chrono::milliseconds join_timeout{60000};   // forming a group (all ranks)
  };
  explicit NcclWeightBroadcaster(const Options& options);
  ~NcclWeightBroadcaster();

  // One status per target (same order): OK when the worker now serves
  // `version` through NCCL, else why it did not (stream to it instead).
  std::vector<absl::Status> Send(const std::vector<PublishTarget>& targets, const NcclWeightSource& source,
                                 int64_t version, std::chrono::milliseconds timeout);

  // Workers in the current group (0 when none).
  int group_size() const { return static_cast<int>(members_.size()); }

 private:
  struct Member {
    PublishTarget target;
    int rank;
  };
  absl::Status FormGroup(const std::vector<PublishTarget>& candidates, const NcclWeightSource& source,
                         std::chrono::milliseconds timeout);
  void DropGroup();

  const Options options_;
  std::shared_ptr<weights::NcclComm> comm_;             // rank 0 of the current group
  std::vector<Member> members_;                // its workers
  std::string group_fingerprint_;
  std::set<std::string> failed_group_;         // addresses of a group that could not be formed
  std::map<std::string, std::string> refused_; // address -> why it cannot join (asked once)
  bool logged_local_ = false;                  // the local precondition was logged
};

}  // namespace zerorl::learner
