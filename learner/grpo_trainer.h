// GrpoTrainer: one GRPO optimisation step over a step's trajectory groups, on
// a policy model the trainer owns (plus a frozen reference when β > 0).
// Usable in-process (the orchestrator) and behind LearnerService.Train.
//
// A step: build sequences (prompt ids + completion ids) from the groups,
// optional DAPO overlong shaping and dynamic-sampling filter, group-normalised
// advantages, then μ epochs; each epoch walks the sequences in seeded-shuffled
// micro-batches, accumulating gradients, and ends with grad-norm clipping and
// one AdamW update at the scheduled LR. The "old" logprobs are the policy's
// own at the start of the step (the first epoch's forward, before any update);
// their gap to the rollout's logprobs is reported (rollout_train_kl,
// rollout_train_logprob_abs_diff_max) and, with learner.grpo.is_correction,
// weights the clipped term by the truncated / masked ratio π_old / π_rollout
// (is_clip_frac: tokens truncated or masked). After the epochs the MoE
// router biases move by γ·sign(mean_load − load) from the step's expert loads.
//
// Routing replay (grpo.routing_replay, R3): each sample's RoutingRecord is
// checked against the model (INVALID_ARGUMENT naming the group, sample and
// what is wrong) and every forward of the step — policy and reference, every
// epoch — and its backward use the recorded experts for the fed tokens; the
// combine weights come from the current router, the loads (and so the bias
// update) are the replayed ones. A sample without a record routes itself
// (metric routing_replay_missing). router_mismatch_frac: the share of
// replayed (token, MoE layer) pairs of the first epoch whose own top-k differs.
//
// Determinism: same weights, state and groups give bit-identical results on
// CPU, so Save + Restore resumes exactly. Not thread-safe (callers serialise).
//
// Devices: the policy may live on any backend (model.device). Where the
// trainer itself reads or writes weights (router bias, reference tensors in
// Save, WeightTensors) it goes through Download/UploadTensor when the policy
// is not host memory. WeightTensors() of a device policy are views into a
// host staging copy of the weights, downloaded (one NumParams() copy) at the
// first WeightTensors() call after each Step / Restore.
//
// Data parallel (PolicyReplicas with R > 1 ranks, learner.data_parallel_devices):
// one replica per rank, each with its own reference and AdamW state. In every
// epoch micro-batch j (of the same seeded shuffle as one rank would use) goes
// to rank j mod R; the ranks run their micro-batches on their own threads,
// then the gradients are summed across ranks (GradReducer), then every rank
// clips and steps AdamW on the identical summed gradient, so the replicas
// stay equal. Metrics are sums over ranks (grad_norm: rank 0's). The result
// matches the single-replica step up to the gradient summation order.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "learner/data_parallel.h"
#include "learner/grpo.h"
#include "model/model.h"
#include "model/optimizer.h"
#include "model/tokenizer.h"
#include "weights/weight_transfer.h"
#include "zerorl/v1/common.pb.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl::learner {

struct TrainerOptions {
  zerorl::v1::GrpoConfig grpo;            // as in RunConfig.learner.grpo (defaults filled)
  zerorl::v1::OptimizerConfig optimizer;  // as in RunConfig.learner.optimizer
  int32_t max_new_tokens = 256;           // rollout's limit: dr_grpo's max_len, overlong shaping
  int64_t total_steps = 100;              // cosine schedule length
  uint64_t seed = 0;                      // micro-batch shuffling
};

// From RunConfig: learner.grpo, learner.optimizer, rollout.sampling.max_new_tokens
// (0 -> 256), orchestrator.total_steps (0 -> 100), seed.
TrainerOptions TrainerOptionsFromConfig(const zerorl::v1::RunConfig& config);

// Metrics of one step, keyed by name (see StepMetrics in common.proto).
using Metrics = std::map<std::string, double>;

class GrpoTrainer {
 public:
  // Takes the policy; copies it as the frozen reference when grpo.beta > 0.
  static absl::StatusOr<std::unique_ptr<GrpoTrainer>> Create(std::unique_ptr<model::Model> policy,
                                                             std::shared_ptr<const Tokenizer> tokenizer,
                                                             const TrainerOptions& options);
  // Data-parallel: rank r trains replicas.models[r] (any backends, same
  // config; ranks >= 1 get rank 0's weights here) and reduces through
  // replicas.reducers[r] (one per rank when R > 1).
  static absl::StatusOr<std::unique_ptr<GrpoTrainer>> Create(PolicyReplicas replicas,
                                                             std::shared_ptr<const Tokenizer> tokenizer,
                                                             const TrainerOptions& options);

  // One optimisation step. INVALID_ARGUMENT on malformed groups (no samples,
  // token ids outside the vocabulary, sequences longer than the model's
  // positions); the model is untouched then. When dynamic sampling drops every
  // group the step makes no update ("skipped" = 1) and the version stays.
  absl::StatusOr<Metrics> Step(const std::vector<zerorl::v1::Group>& groups);

  // Checkpoint files in `dir` (created by the caller): config.json +
  // model.safetensors (HF names, F32), reference.safetensors (β > 0),
  // optimizer.bin, trainer_state.json {step, policy_version, data_cursor, rng}.
  absl::Status Save(const std::string& dir, const std::string& data_cursor) const;
  // Loads what Save wrote; returns the data cursor. FAILED_PRECONDITION when
  // the checkpoint's model config differs from the trainer's.
  absl::StatusOr<std::string> Restore(const std::string& dir);

  // The weights to publish, valid until the next Step / Restore: views into
  // the live policy on the host, into the host staging copy (see the banner)
  // for a device policy.
  std::vector<WeightTensor> WeightTensors();
  model::Model& policy() { return *policies_[0]; }  // rank 0
  int ranks() const { return static_cast<int>(policies_.size()); }
  model::Model& replica(int rank) { return *policies_[rank]; }
  int64_t step() const { return step_; }
  int64_t version() const { return version_; }
  const TrainerOptions& options() const { return options_; }
  void set_total_steps(int64_t n) { options_.total_steps = n; }  // LR schedule length

 private:
  struct Seq;         // one sample: prompt + completion ids, logprobs, advantage
  struct RankSums;    // one rank's loss, entropy, logprob-gap and expert-load sums
  struct StepState;   // what the phases of one Step share
  struct MicroBatch;  // one micro-batch in flight on one rank
  GrpoTrainer() = default;
  absl::Status BuildSequences(const std::vector<zerorl::v1::Group>& groups, std::vector<Seq>* seqs,
                              Metrics* m) const;
  absl::Status CheckRolloutLogprobs(size_t group, int sample, int reported, Seq* s) const;

  // The phases of Step, in the order it runs them (see grpo_trainer.cc).
  float ScheduledLr() const;
  absl::Status PrepareStep(StepState* st) const;
  absl::Status TrainEpoch(int epoch, StepState* st);
  absl::Status AccumulateGradients(int epoch, StepState* st);
  absl::Status RunMicroBatch(MicroBatch* mb, StepState* st);
  static void PackBatch(MicroBatch* mb);
  absl::Status ReferenceLogprobs(MicroBatch* mb);
  absl::Status PolicyForward(MicroBatch* mb, StepState* st);
  static absl::Status RecordOldLogprobs(const MicroBatch& mb, const grpo::IsOptions& is, RankSums* sums);
  absl::Status TokenLossGradient(MicroBatch* mb, StepState* st) const;
  absl::Status AllReduceGradients();
  absl::Status ClipAndUpdate(int epoch, StepState* st);
  static RankSums MergeRanks(const std::vector<RankSums>& per_rank);
  void FinishStep(const RankSums& sum, Metrics* m);
  void ReportStepMetrics(const RankSums& sum, float grad_norm, double seconds, Metrics* m) const;
  void UpdateRouterBias(const std::vector<std::vector<int64_t>>& loads, Metrics* m);

  TrainerOptions options_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  // [rank]: policy replica, frozen reference (β > 0), optimizer state, reducer (R > 1).
  std::vector<std::unique_ptr<model::Model>> policies_, references_;
  std::vector<std::unique_ptr<model::AdamW>> adams_;
  std::vector<std::unique_ptr<GradReducer>> reducers_;
  std::vector<float> staging_;  // [NumParams()] host copy of rank 0's weights (device policy)
  bool staging_stale_ = true;
  std::mt19937_64 rng_;
  int64_t step_ = 0, version_ = 0;
};

}  // namespace zerorl::learner
