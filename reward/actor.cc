// Placeholder reward actor until issue 4 lands: it serves RewardService with every
// method answering UNIMPLEMENTED, so health and reflection already work.
#include "reward/actor.h"

#include "zerorl/v1/reward.grpc.pb.h"

namespace zerorl {
namespace {

class PlaceholderRewardActor final : public Actor {
 public:
  std::vector<grpc::Service*> Services() override { return {&service_}; }

 private:
  zerorl::v1::RewardService::Service service_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Actor>> NewRewardActor(const ActorOptions&) {
  return std::make_unique<PlaceholderRewardActor>();
}

}  // namespace zerorl
