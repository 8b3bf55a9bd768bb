// The orchestrator actor of `zerorl serve orchestrator`: OrchestratorService
// plus a worker registry built from the config's addresses (rollout.workers,
// reward.workers, buffer.address, learner.address) and probed every
// orchestrator.heartbeat_ms. When the config names a training set, the
// configured run starts (or resumes from RUN_DIR/state.json) as soon as the
// server listens; CreateRun (admin) starts further runs against the same actors.
#include "orchestrator/actor.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/server.h"
#include "common/status.h"
#include "orchestrator/orchestrator_service.h"
#include "orchestrator/prompt_limit.h"
#include "orchestrator/run_controller.h"
#include "orchestrator/worker_registry.h"
#include "model/policy_loader.h"

namespace zerorl {
namespace {

class OrchestratorActor final : public Actor {
 public:
  explicit OrchestratorActor(const ActorOptions& opts)
      : opts_(opts),
        // The orchestrator's CallPolicy owns its retries: channels without any.
        registry_([this](const std::string& a) { return MakeChannel(a, opts_.config.server(), false); }),
        service_(opts.auth, &registry_,
                 [this](const zerorl::v1::RunConfig& c) -> absl::StatusOr<std::shared_ptr<RunController>> {
                   return MakeRun(c);
                 }) {}

  std::vector<grpc::Service*> Services() override { return {&service_}; }

  absl::Status Start() override {
    const auto& c = opts_.config;
    auto add = [&](zerorl::v1::WorkerRole role, const std::string& address) {
      if (address.empty()) return;
      zerorl::v1::WorkerInfo w;
      w.set_role(role);
      w.set_address(address);
      registry_.Register(w);
    };
    for (const auto& a : c.rollout().workers()) add(zerorl::v1::WORKER_ROLE_ROLLOUT, a);
    for (const auto& a : c.reward().workers()) add(zerorl::v1::WORKER_ROLE_REWARD, a);
    add(zerorl::v1::WORKER_ROLE_BUFFER, c.buffer().address());
    add(zerorl::v1::WORKER_ROLE_LEARNER, c.learner().address());
    prober_ = std::thread([this] {
      const auto period = std::chrono::milliseconds(std::max(100, opts_.config.orchestrator().heartbeat_ms()));
      while (!stop_) {
        registry_.ProbeAll(std::min(period, std::chrono::milliseconds(2000)));
        for (auto t = std::chrono::milliseconds(0); t < period && !stop_; t += std::chrono::milliseconds(50)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
    });
    if (!c.dataset().train_path().empty()) {
      // Prepare waits for the learner, so the configured run starts in the background.
      starter_ = std::thread([this] {
        auto run = MakeRun(opts_.config);
        if (!run.ok()) {
          ZLOG(ERROR) << "run " << opts_.config.run_id() << " could not start: " << run.status();
          return;
        }
        service_.AddRun(*run);
        if (!stop_) (*run)->StartInBackground();
      });
    }
    return absl::OkStatus();
  }

  void Shutdown() override {
    stop_ = true;
    if (starter_.joinable()) starter_.join();
    for (const auto& r : service_.Runs()) r->RequestStop();
    for (const auto& r : service_.Runs()) r->Join();
    if (prober_.joinable()) prober_.join();
  }

  std::string Describe() const override {
    auto runs = service_.Runs();
    if (runs.empty()) return "no run";
    auto info = runs.front()->Info();
    return absl::StrCat("run ", info.run_id(), " step ", info.step(), "/", info.total_steps());
  }

 private:
  absl::StatusOr<std::shared_ptr<RunController>> MakeRun(const zerorl::v1::RunConfig& c) {
    if (c.buffer().address().empty() || c.learner().address().empty()) {
      return absl::InvalidArgumentError("buffer.address and learner.address must be set for `zerorl serve orchestrator`");
    }
    if (c.rollout().workers().empty() || c.reward().workers().empty()) {
      return absl::InvalidArgumentError("rollout.workers and reward.workers must list at least one address each");
    }
    RunControllerOptions o;
    o.progress = false;
    ZRL_ASSIGN_OR_RETURN(o.dataset_limits, DatasetLimitsFor(c));
    if (c.dataset().template_() == zerorl::v1::PROMPT_TEMPLATE_CHAT) {
      ZRL_ASSIGN_OR_RETURN(std::shared_ptr<const Tokenizer> tok, model::LoadPolicyTokenizer(c.model()));
      o.chat = [tok](const std::string& user) -> absl::StatusOr<std::string> { return tok->ApplyChatTemplate(user); };
    }
    auto run = std::make_shared<RunController>(c, &registry_, MakeChannel(c.buffer().address(), c.server(), false),
                                               MakeChannel(c.learner().address(), c.server(), false), o);
    ZRL_RETURN_IF_ERROR(run->Prepare());
    return run;
  }

  ActorOptions opts_;
  WorkerRegistry registry_;
  OrchestratorServiceImpl service_;
  std::atomic<bool> stop_{false};
  std::thread prober_, starter_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Actor>> NewOrchestratorActor(const ActorOptions& options) {
  return std::make_unique<OrchestratorActor>(options);
}

}  // namespace zerorl
