// The buffer actor: what `zerorl serve buffer` serves — a TrajectoryStore at
// buffer.path (BufferConfig) behind the gRPC BufferService.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/actor.h"

namespace zerorl {

namespace buffer {
class TrajectoryStore;
}

// Opens (or creates) the store; errors name the path (see trajectory_store.h).
absl::StatusOr<std::unique_ptr<Actor>> NewBufferActor(const ActorOptions& options);

// The store behind an actor made by NewBufferActor, for in-process users
// (`zerorl run`); nullptr for any other actor. Owned by the actor.
buffer::TrajectoryStore* BufferStoreOf(Actor* actor);

}  // namespace zerorl
