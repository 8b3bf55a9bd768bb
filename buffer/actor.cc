// Placeholder buffer actor until issue 5 lands: it serves BufferService with every
// method answering UNIMPLEMENTED, so health and reflection already work.
#include "buffer/actor.h"

#include "zerorl/v1/buffer.grpc.pb.h"

namespace zerorl {
namespace {

class PlaceholderBufferActor final : public Actor {
 public:
  std::vector<grpc::Service*> Services() override { return {&service_}; }

 private:
  zerorl::v1::BufferService::Service service_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Actor>> NewBufferActor(const ActorOptions&) {
  return std::make_unique<PlaceholderBufferActor>();
}

}  // namespace zerorl
