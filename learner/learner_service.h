// LearnerServiceImpl: the gRPC face of a GrpoTrainer (learner.proto).
//   Train            leases the step's groups from the BufferService (through
//                    any channel: in-process or TCP), runs GrpoTrainer::Step,
//                    acks the lease (an unacked lease expires and the groups
//                    come back, so a crash mid-step loses nothing), checkpoints
//                    every checkpoint.every_steps steps and publishes the new
//                    weights to `publish_to` every publish_every steps.
//   SaveCheckpoint   a checkpoint now, with the orchestrator's data cursor.
//   FetchWeights     the pull path: streams the current weights.
//   GetLearnerState  version, step, last checkpoint.
// Calls are serialised on one mutex (training, checkpoints and weight reads
// never interleave).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "learner/checkpoint_dir.h"
#include "learner/grpo_trainer.h"
#include "learner/weight_publisher.h"
#include "zerorl/v1/buffer.grpc.pb.h"
#include "zerorl/v1/config.pb.h"
#include "zerorl/v1/learner.grpc.pb.h"

namespace zerorl::learner {

class LearnerServiceImpl final : public zerorl::v1::LearnerService::Service {
 public:
  // Maps a rollout worker address to a channel (default: MakeChannel over TCP).
  using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>(const std::string& address)>;

  // `config`: the run's config (learner, buffer, server sections are used).
  LearnerServiceImpl(std::unique_ptr<GrpoTrainer> trainer, const zerorl::v1::RunConfig& config,
                     std::shared_ptr<grpc::Channel> buffer, ChannelFactory rollout_channels = nullptr);

  // Restores the newest complete checkpoint under the checkpoint dir, if any.
  // Returns whether one was loaded.
  absl::StatusOr<bool> ResumeFromLatest();

  grpc::Status Train(grpc::ServerContext*, const zerorl::v1::TrainRequest*, zerorl::v1::TrainResponse*) override;
  grpc::Status SaveCheckpoint(grpc::ServerContext*, const zerorl::v1::SaveCheckpointRequest*,
                              zerorl::v1::CheckpointInfo*) override;
  grpc::Status FetchWeights(grpc::ServerContext*, const zerorl::v1::FetchWeightsRequest*,
                            grpc::ServerWriter<zerorl::v1::WeightChunk>*) override;
  grpc::Status GetLearnerState(grpc::ServerContext*, const zerorl::v1::GetLearnerStateRequest*,
                               zerorl::v1::LearnerState*) override;

  int64_t version() const;

 private:
  absl::StatusOr<zerorl::v1::CheckpointInfo> CheckpointLocked(const std::string& data_cursor)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string ConfigJson() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::unique_ptr<GrpoTrainer> trainer_ ABSL_GUARDED_BY(mu_);
  // Set at construction, read-only after.
  zerorl::v1::RunConfig config_;
  std::unique_ptr<zerorl::v1::BufferService::Stub> buffer_;
  ChannelFactory rollout_channels_;
  CheckpointDir checkpoints_ ABSL_GUARDED_BY(mu_);
  zerorl::v1::CheckpointInfo last_checkpoint_ ABSL_GUARDED_BY(mu_);
  std::string data_cursor_ ABSL_GUARDED_BY(mu_);  // last cursor the orchestrator gave us
  // learner.weight_transport; keeps the NCCL group between publishes.
  WeightPublisher publisher_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zerorl::learner
