// Placeholder orchestrator actor until issue 7 lands: it serves OrchestratorService with every
// method answering UNIMPLEMENTED, so health and reflection already work.
#include "orchestrator/actor.h"

#include "zerorl/v1/orchestrator.grpc.pb.h"

namespace zerorl {
namespace {

class PlaceholderOrchestratorActor final : public Actor {
 public:
  std::vector<grpc::Service*> Services() override { return {&service_}; }

 private:
  zerorl::v1::OrchestratorService::Service service_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Actor>> NewOrchestratorActor(const ActorOptions&) {
  return std::make_unique<PlaceholderOrchestratorActor>();
}

}  // namespace zerorl
