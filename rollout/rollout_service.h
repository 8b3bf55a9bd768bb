// RolloutServiceImpl: the gRPC face of a GenerationEngine (rollout.proto).
// Request translation and status mapping only; the work is the engine's.
//   Generate        prompts (token_ids, else BOS + Encode(text)) x group_size;
//                   sampling: temperature 0 = greedy, top_p 0 = 1 (unset),
//                   max_new_tokens 0 = 256, seed 0 = derived from request_id.
//                   A request whose samples a drain aborted is answered
//                   UNAVAILABLE (handed back whole), never with cut samples.
//   UpdateWeights   client stream of WeightChunk, staged then swapped.
//   Drain           stop taking work, finish or abort what is in flight.
//   JoinWeightGroup / ReceiveWeightsNccl
//                   the NCCL weight broadcast (see nccl_weight_member.h).
// Also PullWeights: the pull path, a worker fetching the learner's current
// weights through LearnerService.FetchWeights.
#pragma once

#include <memory>
#include <string>

#include "rollout/generation_engine.h"
#include "rollout/nccl_weight_member.h"
#include "zerorl/v1/learner.grpc.pb.h"
#include "zerorl/v1/rollout.grpc.pb.h"

namespace zerorl::rollout {

class RolloutServiceImpl final : public zerorl::v1::RolloutService::Service {
 public:
  // `worker`: the name written into Sample.worker (usually host:port).
  // UpdateWeights is served by UpdateWeightsRaw (chunk data read straight from the
  // gRPC slices, no protobuf parse of the payload): the constructor swaps it in.
  // `cuda_device`: the device the engine's model lives on (for the NCCL
  // weight broadcast; unused on the CPU).
  RolloutServiceImpl(GenerationEngine* engine, std::string worker, int cuda_device = 0);

  grpc::Status Generate(grpc::ServerContext*, const zerorl::v1::GenerateRequest*,
                        zerorl::v1::GenerateResponse*) override;
  grpc::Status GetPolicyVersion(grpc::ServerContext*, const zerorl::v1::GetPolicyVersionRequest*,
                                zerorl::v1::PolicyVersion*) override;
  grpc::Status Drain(grpc::ServerContext*, const zerorl::v1::DrainRequest*, zerorl::v1::DrainResponse*) override;
  grpc::Status JoinWeightGroup(grpc::ServerContext*, const zerorl::v1::JoinWeightGroupRequest*,
                               zerorl::v1::JoinWeightGroupResponse*) override;
  grpc::Status ReceiveWeightsNccl(grpc::ServerContext*, const zerorl::v1::ReceiveWeightsNcclRequest*,
                                  zerorl::v1::UpdateWeightsResponse*) override;

 private:
  grpc::Status UpdateWeightsRaw(grpc::ServerContext*, grpc::ServerReader<grpc::ByteBuffer>*,
                                zerorl::v1::UpdateWeightsResponse*);

  GenerationEngine* engine_;
  std::string worker_;
  NcclWeightMember nccl_;
};

// Request -> engine params (the defaults above). INVALID_ARGUMENT on bad values.
absl::StatusOr<GenerationParams> ParamsFromRequest(const zerorl::v1::GenerateRequest& request);

// Fetches the learner's weights (at least min_version) into the engine.
absl::StatusOr<UpdateResult> PullWeights(GenerationEngine* engine, zerorl::v1::LearnerService::StubInterface* learner,
                                         int64_t min_version, std::chrono::milliseconds timeout);

}  // namespace zerorl::rollout
