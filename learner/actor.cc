// Placeholder learner actor until issue 6 lands: it serves LearnerService with every
// method answering UNIMPLEMENTED, so health and reflection already work.
#include "learner/actor.h"

#include "zerorl/v1/learner.grpc.pb.h"

namespace zerorl {
namespace {

class PlaceholderLearnerActor final : public Actor {
 public:
  std::vector<grpc::Service*> Services() override { return {&service_}; }

 private:
  zerorl::v1::LearnerService::Service service_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Actor>> NewLearnerActor(const ActorOptions&) {
  return std::make_unique<PlaceholderLearnerActor>();
}

}  // namespace zerorl
