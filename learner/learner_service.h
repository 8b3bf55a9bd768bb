// LearnerServiceImpl: the gRPC face of a GrpoTrainer (learner.proto).
//   Train            leases the step's groups from the BufferService (through
//                    any channel: in-process or TCP), runs GrpoTrainer::Step,
//                    records the answer (step_results.h), checkpoints every
//                    checkpoint.every_steps steps (a failed checkpoint fails
//                    the call with the path and reason), acks the lease and
//                    publishes the new weights to `publish_to` every
//                    publish_every steps.
//
// Crash semantics of Train (by_step, the synchronous mode):
//   - Leases carry the holder "learner" and an incarnation that rises with
//     every Lease (start time in ms, then a counter), so a restarted learner
//     takes over the leases its dead predecessor held at once.
//   - Train of step k is idempotent: when the learner is already past k (it
//     checkpointed k, then died before answering or before its ack, or a
//     retry arrives after the answer was lost), it answers k's recorded result,
//     finishes the ack and any weight push the record lacks, and does not
//     train twice. When it is behind k (restored from an older checkpoint), it
//     re-trains the steps in between from the buffer (consumed groups are
//     leased again), deterministically, then trains k. The policy version is
//     therefore +1 per step across any crash.
//   Asynchronous Train (by_step false) is not idempotent.
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
#include "learner/step_results.h"
#include "learner/weight_publisher.h"
#include "zerorl/v1/buffer.grpc.pb.h"
#include "zerorl/v1/config.pb.h"
#include "zerorl/v1/learner.grpc.pb.h"

namespace zerorl::learner {

class LearnerServiceImpl final : public zerorl::v1::LearnerService::Service {
 public:
  // Maps a rollout worker address to a channel (default: MakeChannel over TCP).
  using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>(const std::string& address)>;

  // `config`: the run's config, finalized (FinalizeRunConfig: in range, defaults
  // filled in); its learner, buffer, server sections are used as they are.
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
  static constexpr const char* kLeaseHolder = "learner";
  static constexpr int kKeptResults = 64;  // recorded Train answers kept (steps)

  absl::StatusOr<zerorl::v1::CheckpointInfo> CheckpointLocked(const std::string& data_cursor) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Copies model::PolicyTokenizerFiles into a checkpoint being written (`dir`).
  absl::Status CopyTokenizerFiles(const std::string& dir) const;
  std::string ConfigJson() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int DeadlineMs() const;  // of the learner's own calls: orchestrator.call_deadline_ms
  int64_t NextIncarnation() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Trains one step: lease, step, record, checkpoint on schedule, ack, publish.
  absl::Status TrainStepLocked(const zerorl::v1::TrainRequest& req, zerorl::v1::TrainResponse* resp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A step the learner is already past: its recorded answer (see above).
  absl::Status AnswerAppliedStepLocked(const zerorl::v1::TrainRequest& req, zerorl::v1::TrainResponse* resp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<zerorl::v1::LeaseResponse> LeaseLocked(const zerorl::v1::TrainRequest& req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AckLocked(const std::string& lease_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishLocked(const zerorl::v1::TrainRequest& req, zerorl::v1::TrainResponse* resp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::unique_ptr<GrpoTrainer> trainer_ ABSL_GUARDED_BY(mu_);
  // Set at construction, read-only after.
  zerorl::v1::RunConfig config_;
  std::unique_ptr<zerorl::v1::BufferService::Stub> buffer_;
  ChannelFactory rollout_channels_;
  CheckpointDir checkpoints_ ABSL_GUARDED_BY(mu_);
  zerorl::v1::CheckpointInfo last_checkpoint_ ABSL_GUARDED_BY(mu_);
  std::string data_cursor_ ABSL_GUARDED_BY(mu_);  // last cursor the orchestrator gave us
  StepResults results_ ABSL_GUARDED_BY(mu_);  // CHECKPOINT_DIR/train-results
  WeightPublisher publisher_ ABSL_GUARDED_BY(mu_);  // learner.weight_transport; keeps the NCCL group between publishes
  const int64_t start_ms_;     // this incarnation's start, wall clock ms
  int64_t lease_requests_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace zerorl::learner
