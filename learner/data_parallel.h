// The data-parallel learner's replicas: which devices the learner's ranks run
// on (RunConfig learner.data_parallel_devices, else model.device), one policy
// replica per rank on its own backend, and the gradient reducers that tie the
// ranks together (NCCL for GPU replicas when built with NCCL, the in-process
// host reducer otherwise). GrpoTrainer::Create(PolicyReplicas, ...) trains on
// them: see grpo_trainer.h for how a step is split across ranks.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "learner/grad_reducer.h"
#include "model/model.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl::learner {

struct PolicyReplicas {
  // [rank]; rank 0 holds the loaded policy, the others its config (their
  // weights are made equal to rank 0's by GrpoTrainer::Create).
  std::vector<std::unique_ptr<model::Model>> models;
  // [rank] when more than one rank; empty for a single replica.
  std::vector<std::unique_ptr<GradReducer>> reducers;
};

// The learner's device strings, one per rank: learner.data_parallel_devices,
// or {model.device} when that list is empty. keys[i] names each in errors.
struct LearnerDevices {
  std::vector<std::string> devices;
  std::vector<std::string> keys;
};
LearnerDevices LearnerDevicesFromConfig(const zerorl::v1::RunConfig& config);

// Loads the policy (RunConfig.model) on rank 0's device and creates a replica
// on each other rank's device, plus the reducers. Errors name the config key
// (a malformed device, a GPU this build or machine does not have, ...).
absl::StatusOr<PolicyReplicas> LoadPolicyReplicas(const zerorl::v1::RunConfig& config);

// fn(rank) for rank in [0, n), each on its own thread (inline when n == 1);
// waits for all and returns the first error in rank order.
absl::Status RunOnRanks(int n, const std::function<absl::Status(int rank)>& fn);

}  // namespace zerorl::learner
