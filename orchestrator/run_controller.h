// RunController: drives one GRPO run through the actors' gRPC services.
//
// One step (synchronous mode): take prompts_per_step prompts from the train
// split, Generate G samples each on the rollout workers, Score them on the
// reward workers, Append the groups to the buffer, Train on the learner (which
// leases exactly this step's groups and publishes the new weights to the
// rollout workers), then record metrics and the run state.
//
// Asynchronous mode streams: a producer thread generates, scores and stores
// steps ahead of training, as far as orchestrator.max_staleness (S) allows —
// step j starts as soon as step j-S-1 is trained, so the rollout workers never
// wait for a training step they do not need, and the learner trains step k as
// soon as its groups are stored. Step j asks the rollout workers for versions
// >= version(j) - S, and Train asks the buffer for the same bound, so a group
// whose oldest token is staler is never trained on (counted in stale_groups).
// With rollout.partial_rollout the weights a Train publishes reach sequences
// in flight at the next decode iteration. S = 1 is the classic one-step
// overlap; S = 0 is synchronous.
//
// Reliability: every call goes through one CallPolicy (call_policy.h): the
// configured deadline, retries on another worker, and an outage budget
// (orchestrator.outage_seconds) for an actor that is down; past it the run
// stops as STOPPED (resumable), not FAILED, and RunInfo.waiting_for says what
// it waits for meanwhile. IDs are deterministic — trajectory
// RUN/STEP/GROUP/SAMPLE, sampling seeds from (seed, step, prompt) — so a
// retried or re-run step writes the same trajectories and the buffer stores
// each exactly once.
//
// Durability and restarts: RUN_DIR/state.json (run_state.h) is written after
// every step; the run's step is the state's (the next step to record). The
// prompts of step k are a pure function of (seed, k). A restarted orchestrator
// re-runs the step it had not recorded: the groups already stored are not
// generated again (the step's metrics come from them), and the learner's
// Train is idempotent (learner_service.h), so a step trained before the crash
// is answered from its record, not trained twice; each step is recorded in
// metrics.jsonl once. A learner behind the state (restored from an older
// checkpoint) is caught up before the first step by re-training from the
// buffer.
//
// Thread-safety: Pause/Resume/RequestStop/Info/Metrics may be called from any
// thread while Run() executes on one.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/channel.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "orchestrator/call_policy.h"
#include "orchestrator/dataset.h"
#include "orchestrator/metrics_log.h"
#include "orchestrator/progress.h"
#include "orchestrator/prometheus.h"
#include "orchestrator/run_dir_lock.h"
#include "orchestrator/run_state.h"
#include "orchestrator/tensorboard.h"
#include "orchestrator/worker_registry.h"
#include "zerorl/v1/buffer.grpc.pb.h"
#include "zerorl/v1/learner.grpc.pb.h"
#include "zerorl/v1/orchestrator.pb.h"

namespace zerorl {

struct RunControllerOptions {
  std::string base_dir;    // resolves relative dataset paths (the config file's directory)
  ChatRenderer chat;       // for dataset.template: chat (may be empty)
  DatasetLimits dataset_limits;  // over-long prompts skipped, enough train prompts (prompt_limit.h)
  bool progress = true;    // progress bar on stderr (also needs orchestrator.progress)
};

// Before/after numbers of a run, for the closing table.
struct RunSummary {
  bool has_before = false, has_after = false;
  double eval_before = 0, eval_after = 0;          // greedy eval accuracy
  double reward_first = 0, reward_last = 0;        // train reward mean, first and last recorded step
  int64_t steps_done = 0;
  double seconds = 0;                              // wall time of this invocation's steps
};

class RunController {
 public:
  RunController(zerorl::v1::RunConfig config, WorkerRegistry* registry, std::shared_ptr<grpc::Channel> buffer,
                std::shared_ptr<grpc::Channel> learner, RunControllerOptions options);
  ~RunController();

  // Locks the run dir (FAILED_PRECONDITION naming it and the holder's pid when
  // another run holds it), loads the dataset and any saved state, opens the
  // metrics files, and reconciles the step with the learner. Errors name the
  // bad file or key.
  absl::Status Prepare();
  // Runs steps until total_steps (FINISHED), RequestStop (STOPPED) or a
  // failure (FAILED, returned). Blocking.
  absl::Status Run();
  void StartInBackground();
  void Join();

  void Pause();
  void Resume();
  // Stops after the step in flight; the learner checkpoints; state says STOPPED.
  void RequestStop();

  zerorl::v1::RunInfo Info() const;
  std::vector<zerorl::v1::StepMetrics> Metrics(int last) const;
  RunSummary Summary() const;
  const zerorl::v1::RunConfig& config() const { return config_; }

 private:
  struct StepData;
  class Pipeline;  // async mode's producer thread (run_controller.cc)
  struct EvalResult {
    double greedy_accuracy = 0;
    double pass_at_k = -1;  // -1 when not measured
    double reward_mean = 0;
    double completion_len_mean = 0;
    std::map<std::string, double> text_counts;  // orchestrator.text_counters: name -> mean count
  };

  absl::Status RunLoop();
  absl::StatusOr<zerorl::v1::LearnerState> FetchLearnerState();
  // Logs how the learner's step relates to the state's; with no state.json
  // (`fresh_state`), the learner's step and version become the run's.
  absl::Status ReconcileWithLearner(bool fresh_state);
  // Re-trains what a learner restored from an older checkpoint lacks.
  absl::Status CatchUpLearner();
  // The step's metrics from its stored completions when all its groups are in the buffer already.
  absl::StatusOr<std::optional<StepData>> StoredStep(int64_t step);
  absl::StatusOr<StepData> Produce(int64_t step, int64_t min_version);
  // min_version > 0: the learner leaves out groups whose oldest token is older.
  absl::StatusOr<zerorl::v1::TrainResponse> Train(int64_t step, int64_t min_version = 0);
  absl::StatusOr<EvalResult> Evaluate(int64_t version);
  absl::Status Record(int64_t step, const StepData& data, const zerorl::v1::TrainResponse& train,
                      double step_seconds, double learner_idle_fraction, const EvalResult* eval);
  absl::Status RecordFinalEval(int64_t step, const EvalResult& eval);
  absl::Status SaveState();
  absl::Status Checkpoint();

  // Generate with retries on other workers; returns one group of samples per
  // prompt, and (when prompt_ids is set) each prompt's token ids as the worker
  // tokenized them. Only the prompt's id and text are sent. Adds the request
  // bytes sent to *sent_bytes when set. record_routing asks the workers for
  // each sample's routing record (learner.grpo.routing_replay; training only).
  absl::StatusOr<std::vector<std::vector<zerorl::v1::Sample>>> GenerateAll(
      const std::vector<zerorl::v1::Prompt>& prompts, int group_size, const zerorl::v1::SamplingParams& sampling,
      uint64_t seed, int64_t min_version, const std::string& request_prefix,
      std::vector<std::vector<int32_t>>* prompt_ids = nullptr, std::atomic<int64_t>* sent_bytes = nullptr,
      bool record_routing = false);
  // Scores each group in one call that carries its prompt and answer once.
  absl::StatusOr<std::vector<std::vector<zerorl::v1::RewardResult>>> ScoreAll(
      const std::vector<zerorl::v1::Prompt>& prompts, const std::vector<std::vector<zerorl::v1::Sample>>& samples,
      std::atomic<int64_t>* sent_bytes = nullptr);

  std::vector<zerorl::v1::Prompt> PromptsForStep(int64_t step) const;
  DatasetCursor CursorForStep(int64_t step) const;
  uint64_t SeedForStep(int64_t step) const;
  std::string DataCursorJson(int64_t step) const;
  bool WaitWhilePaused();  // false when a stop was requested
  void SetState(zerorl::v1::RunState s, const std::string& error = "");

  zerorl::v1::RunConfig config_;
  WorkerRegistry* registry_;
  std::unique_ptr<zerorl::v1::BufferService::Stub> buffer_;
  std::unique_ptr<zerorl::v1::LearnerService::Stub> learner_;
  RunControllerOptions options_;
  CallPolicy calls_;  // every call to another actor
  std::unique_ptr<RunDirLock> dir_lock_;  // held from Prepare on

  DatasetSplits data_;
  std::vector<zerorl::v1::Prompt> eval_prompts_;
  MetricsLog metrics_log_;
  TensorBoardWriter tensorboard_;
  std::unique_ptr<PrometheusEndpoint> prometheus_;
  std::unique_ptr<ProgressBar> progress_;
  std::thread thread_;
  std::atomic<bool> stop_{false};

  mutable absl::Mutex mu_;
  RunStateRecord state_ ABSL_GUARDED_BY(mu_);
  std::vector<zerorl::v1::StepMetrics> metrics_ ABSL_GUARDED_BY(mu_);
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  RunSummary summary_ ABSL_GUARDED_BY(mu_);
  int64_t updated_unix_ms_ ABSL_GUARDED_BY(mu_) = 0;
  std::string waiting_for_ ABSL_GUARDED_BY(mu_);  // RunInfo.waiting_for
};

}  // namespace zerorl
