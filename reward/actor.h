// The reward actor: what `zerorl serve reward` serves.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/actor.h"

namespace zerorl {

absl::StatusOr<std::unique_ptr<Actor>> NewRewardActor(const ActorOptions& options);

}  // namespace zerorl
