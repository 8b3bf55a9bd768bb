// The reward actor: loads the initial spec, starts the file watcher, serves RewardService.
#include "reward/actor.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/log.h"
#include "common/status.h"
#include "reward/reward_spec.h"
#include "reward/scorer.h"
#include "reward/service.h"
#include "reward/spec_watcher.h"

namespace zerorl {
namespace {

using reward::RewardScorer;
using reward::SpecRegistry;

class RewardActor final : public Actor {
 public:
  RewardActor(std::shared_ptr<RewardScorer> scorer, std::shared_ptr<const AdminAuth> auth,
              std::shared_ptr<reward::SandboxProvider> sandbox)
      : scorer_(scorer), sandbox_(std::move(sandbox)), service_(scorer, std::move(auth)) {}

  std::vector<grpc::Service*> Services() override { return {&service_}; }

  void Watch(const std::string& path, std::string content) {
    watcher_ = std::make_unique<reward::SpecFileWatcher>(&scorer_->registry(), path, std::move(content));
  }

  void Shutdown() override { watcher_.reset(); }

  std::string Describe() const override {
    auto snap = scorer_->registry().Current();
    return absl::StrCat("reward spec v", snap.version, snap.spec ? " (" + snap.spec->spec().name() + ")" : "");
  }

 private:
  std::shared_ptr<RewardScorer> scorer_;
  std::shared_ptr<reward::SandboxProvider> sandbox_;
  reward::RewardServiceImpl service_;
  std::unique_ptr<reward::SpecFileWatcher> watcher_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Actor>> NewRewardActor(const ActorOptions& options) {
  const auto& rc = options.config.reward();
  reward::SpecEnvironment env;
  env.sandbox = reward::MakeSandboxProvider(rc.sandbox());
  if (options.config.rollout().sampling().max_new_tokens() > 0) env.default_max_tokens = options.config.rollout().sampling().max_new_tokens();
  int threads = rc.threads() > 0 ? rc.threads() : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  env.python_workers = threads;
  auto registry = std::make_shared<SpecRegistry>(env);
  zerorl::v1::RewardSpec spec;
  std::string source = "config", content;
  if (!rc.spec_path().empty()) {
    ZRL_ASSIGN_OR_RETURN(content, ReadFile(rc.spec_path()));
    ZRL_ASSIGN_OR_RETURN(spec, reward::ParseRewardSpecYaml(content, rc.spec_path()));
    source = "file";
  } else if (rc.spec().terms_size() > 0) {
    spec = rc.spec();
  } else {
    spec = reward::DefaultRewardSpec(options.config.dataset().kind());
  }
  auto set = registry->Set(spec, source, rc.spec_path().empty() ? "initial spec" : "initial spec: " + rc.spec_path());
  if (!set.ok()) return Annotate(set.status(), "reward spec");
  auto scorer = std::make_shared<RewardScorer>(registry, threads);
  auto actor = std::make_unique<RewardActor>(scorer, options.auth, env.sandbox);
  if (!rc.spec_path().empty() && rc.watch_spec()) actor->Watch(rc.spec_path(), content);
  return actor;
}

}  // namespace zerorl
