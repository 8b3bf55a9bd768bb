// The rollout actor: a GenerationEngine on the policy named by RunConfig.model,
// served as RolloutService. At start it pulls the learner's current weights
// when learner.address is set (a worker that starts late catches up);
// Shutdown drains, aborting in-flight samples: their Generate calls answer
// UNAVAILABLE and the orchestrator retries them on another worker.
#include "rollout/actor.h"

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/log.h"
#include "common/server.h"
#include "common/status.h"
#include "model/policy_loader.h"
#include "rollout/rollout_service.h"

namespace zerorl {
namespace {

// The CUDA device of model.device (0 for the CPU; the NCCL weight broadcast only).
int CudaDeviceOf(const zerorl::v1::ModelConfig& model) {
  auto device = ParseDevice(model.device(), "model.device");
  return device.ok() && *device >= 0 ? *device : 0;
}

class RolloutActor final : public Actor {
 public:
  RolloutActor(std::unique_ptr<rollout::GenerationEngine> engine, const ActorOptions& options)
      : options_(options),
        engine_(std::move(engine)),
        service_(engine_.get(), options.self_address, CudaDeviceOf(options.config.model())) {}

  std::vector<grpc::Service*> Services() override { return {&service_}; }

  absl::Status Start() override {
    const std::string& learner = options_.config.learner().address();
    if (learner.empty()) return absl::OkStatus();
    auto stub = zerorl::v1::LearnerService::NewStub(MakeChannel(learner, options_.config.server()));
    auto r = rollout::PullWeights(engine_.get(), stub.get(), 0, std::chrono::seconds(60));
    if (!r.ok()) {
      ZLOG(WARNING) << "could not pull weights from the learner at " << learner << ": " << r.status().message();
    }
    return absl::OkStatus();  // keep serving the weights we have; the learner pushes later
  }

  void Shutdown() override {
    const rollout::DrainCounts c = engine_->Drain(/*abort_in_flight=*/true);
    ZLOG(INFO) << "rollout drained: " << c.finished << " finished, " << c.aborted << " aborted";
  }

  std::string Describe() const override { return absl::StrCat("policy version ", engine_->version()); }

 private:
  ActorOptions options_;
  std::unique_ptr<rollout::GenerationEngine> engine_;
  rollout::RolloutServiceImpl service_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Actor>> NewRolloutActor(const ActorOptions& options) {
  ZRL_ASSIGN_OR_RETURN(auto model, model::LoadPolicyModel(options.config.model()));
  ZRL_ASSIGN_OR_RETURN(auto tokenizer, model::LoadPolicyTokenizer(options.config.model()));
  rollout::GenerationEngine::Options eo;
  eo.max_batch_sequences = options.config.rollout().max_batch_sequences() > 0
                               ? options.config.rollout().max_batch_sequences()
                               : 256;
  eo.partial_rollout = options.config.rollout().partial_rollout();
  eo.kv_cache_bytes = options.config.rollout().kv_cache_mb() << 20;  // 0: a quarter of the backend's memory
  eo.mla_cache = options.config.rollout().mla_cache() == "expanded" ? model::MlaCache::kExpanded
                                                                     : model::MlaCache::kLatent;
  auto engine = std::make_unique<rollout::GenerationEngine>(std::move(model), std::move(tokenizer), eo);
  return std::make_unique<RolloutActor>(std::move(engine), options);
}

}  // namespace zerorl
