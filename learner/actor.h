// The learner actor: what `zerorl serve learner` serves.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/actor.h"

namespace zerorl {

absl::StatusOr<std::unique_ptr<Actor>> NewLearnerActor(const ActorOptions& options);

}  // namespace zerorl
