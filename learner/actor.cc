// The learner actor: a GrpoTrainer on the policy named by RunConfig.model
// (on model.device, or data-parallel over learner.data_parallel_devices),
// served as LearnerService. It resumes from the newest complete checkpoint in
// the checkpoint dir and reaches the buffer at buffer.address.
#include "learner/actor.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/server.h"
#include "common/status.h"
#include "learner/data_parallel.h"
#include "learner/learner_service.h"
#include "model/policy_loader.h"

namespace zerorl {
namespace {

class LearnerActor final : public Actor {
 public:
  explicit LearnerActor(std::unique_ptr<learner::LearnerServiceImpl> service) : service_(std::move(service)) {}
  std::vector<grpc::Service*> Services() override { return {service_.get()}; }
  std::string Describe() const override { return absl::StrCat("policy version ", service_->version()); }

 private:
  std::unique_ptr<learner::LearnerServiceImpl> service_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Actor>> NewLearnerActor(const ActorOptions& options) {
  const zerorl::v1::RunConfig& c = options.config;
  ZRL_ASSIGN_OR_RETURN(auto replicas, learner::LoadPolicyReplicas(c));
  ZRL_ASSIGN_OR_RETURN(auto tokenizer, model::LoadPolicyTokenizer(c.model()));
  if (replicas.models.size() > 1) {
    ZLOG(INFO) << "learner: data parallel over " << replicas.models.size() << " replicas ("
               << replicas.reducers[0]->kind() << " gradient all-reduce)";
  }
  ZRL_ASSIGN_OR_RETURN(auto trainer, learner::GrpoTrainer::Create(std::move(replicas), std::move(tokenizer),
                                                                  learner::TrainerOptionsFromConfig(c)));
  std::shared_ptr<grpc::Channel> buffer;
  if (!c.buffer().address().empty()) buffer = MakeChannel(c.buffer().address(), c.server());
  auto service = std::make_unique<learner::LearnerServiceImpl>(std::move(trainer), c, buffer);
  ZRL_RETURN_IF_ERROR(service->ResumeFromLatest().status());
  return std::make_unique<LearnerActor>(std::move(service));
}

}  // namespace zerorl
