// The buffer actor: owns a TrajectoryStore and the BufferService over it.
#include "buffer/actor.h"

#include "absl/strings/str_cat.h"
#include "buffer/service.h"
#include "buffer/trajectory_store.h"

namespace zerorl {
namespace {

class BufferActor final : public Actor {
 public:
  BufferActor(std::unique_ptr<buffer::TrajectoryStore> store, std::shared_ptr<const AdminAuth> auth)
      : store_(std::move(store)), service_(store_.get(), std::move(auth)) {}

  std::vector<grpc::Service*> Services() override { return {&service_}; }
  void Shutdown() override { store_->Close(); }  // ends open Tail streams
  std::string Describe() const override {
    int64_t trajectories = 0;
    auto runs = store_->ListRuns();
    for (const auto& r : runs.runs()) trajectories += r.trajectories();
    return absl::StrCat(runs.runs_size(), " runs, ", trajectories, " trajectories at ", store_->path());
  }
  buffer::TrajectoryStore* store() { return store_.get(); }

 private:
  std::unique_ptr<buffer::TrajectoryStore> store_;
  buffer::BufferServiceImpl service_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Actor>> NewBufferActor(const ActorOptions& options) {
  const auto& c = options.config.buffer();
  auto store = buffer::TrajectoryStore::Open(c.path(), buffer::StoreOptions::FromConfig(c));
  if (!store.ok()) return store.status();
  auto auth = options.auth ? options.auth : std::make_shared<const AdminAuth>();
  return std::make_unique<BufferActor>(std::move(store).value(), std::move(auth));
}

buffer::TrajectoryStore* BufferStoreOf(Actor* actor) {
  auto* b = dynamic_cast<BufferActor*>(actor);
  return b ? b->store() : nullptr;
}

}  // namespace zerorl
