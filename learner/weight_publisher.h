// Publishing weights: one UpdateWeights client stream per rollout worker, all
// in parallel, all sending the same messages, built once with the data
// borrowed from the tensors (ForEachWireWeightChunk, small tensors batched).
// WeightPublisher adds the opt-in NCCL transport (learner.weight_transport
// "nccl"): workers in the learner's NCCL group get the version by a
// device-to-device broadcast, every other worker by the stream.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/channel.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/model.h"
#include "weights/weight_transfer.h"

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
  int nccl_workers = 0;             // workers that took the version over NCCL
  std::vector<std::string> fallbacks;  // weight_transport nccl: "address: why it was streamed to instead"
};

// Blocks until every stream finished or failed (deadline `timeout` each).
PublishResult PublishWeights(const std::vector<PublishTarget>& targets, const std::vector<WeightTensor>& tensors,
                             const ChunkOptions& options, std::chrono::milliseconds timeout);

enum class WeightTransport { kGrpc, kNccl };

// learner.weight_transport: "" or "grpc" -> kGrpc, "nccl" -> kNccl;
// INVALID_ARGUMENT naming the key otherwise.
absl::StatusOr<WeightTransport> ParseWeightTransport(absl::string_view value);

// The learner's parameters as the NCCL path sees them.
struct NcclWeightSource {
  float* params = nullptr;   // num_params fp32, Model::param_data() (device memory for NCCL)
  int64_t num_params = 0;
  bool on_device = false;    // !Model::on_host()
  std::string fingerprint;   // weights::ModelConfigFingerprint of the learner's config
};
NcclWeightSource NcclWeightSourceOf(model::Model& model);

class NcclWeightBroadcaster;

// Publishes each version through the configured transport, keeping the NCCL
// group between versions. Under kNccl a worker that cannot take the
// broadcast (reasons in nccl_weight_broadcaster.h, each logged once) gets the
// stream, and the publish succeeds as long as the stream does. Not
// thread-safe: one Publish at a time.
class WeightPublisher {
 public:
  struct Options {
    WeightTransport transport = WeightTransport::kGrpc;
    int nccl_device = 0;                                // the learner's CUDA device
    std::chrono::milliseconds nccl_join_timeout{60000};  // forming the NCCL group
  };
  explicit WeightPublisher(const Options& options);
  ~WeightPublisher();

  // `tensors` is called only when some worker gets the stream (on a GPU
  // learner it downloads the weights); `source` is used only under kNccl.
  PublishResult Publish(const std::vector<PublishTarget>& targets, const NcclWeightSource& source,
                        const std::function<std::vector<WeightTensor>()>& tensors, const ChunkOptions& options,
                        std::chrono::milliseconds timeout);

 private:
  const Options options_;
  std::unique_ptr<NcclWeightBroadcaster> nccl_;  // under kNccl
};

}  // namespace zerorl::learner
