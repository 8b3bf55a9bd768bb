// The rollout actor: what `zerorl serve rollout` serves.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/actor.h"

namespace zerorl {

absl::StatusOr<std::unique_ptr<Actor>> NewRolloutActor(const ActorOptions& options);

}  // namespace zerorl
