// Placeholder rollout actor until issue 6 lands: it serves RolloutService with every
// method answering UNIMPLEMENTED, so health and reflection already work.
#include "rollout/actor.h"

#include "zerorl/v1/rollout.grpc.pb.h"

namespace zerorl {
namespace {

class PlaceholderRolloutActor final : public Actor {
 public:
  std::vector<grpc::Service*> Services() override { return {&service_}; }

 private:
  zerorl::v1::RolloutService::Service service_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Actor>> NewRolloutActor(const ActorOptions&) {
  return std::make_unique<PlaceholderRolloutActor>();
}

}  // namespace zerorl
