// Publishing weights: one UpdateWeights client stream per rollout worker, all
// in parallel, all sending the same messages, built once with the data
// borrowed from the tensors (ForEachWireWeightChunk, small tensors batched).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/channel.h>

#include "rollout/weight_transfer.h"

namespace zerorl::learner {

struct PublishTarget {
  std::string address;                     // for messages
  std::shared_ptr<grpc::Channel> channel;  // to its RolloutService
};

struct PublishResult {
  int64_t bytes = 0;      // data bytes delivered, summed over the workers that took them
  double seconds = 0;     // wall time of the whole parallel push
  double mb_per_s = 0;    // bytes / seconds / 1e6
  std::vector<std::string> errors;  // "address: reason" for each worker that did not take them
};

// Blocks until every stream finished or failed (deadline `timeout` each).
PublishResult PublishWeights(const std::vector<PublishTarget>& targets, const std::vector<WeightTensor>& tensors,
                             const ChunkOptions& options, std::chrono::milliseconds timeout);

}  // namespace zerorl::learner
