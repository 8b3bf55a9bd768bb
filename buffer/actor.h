// The buffer actor: what `zerorl serve buffer` serves.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/actor.h"

namespace zerorl {

absl::StatusOr<std::unique_ptr<Actor>> NewBufferActor(const ActorOptions& options);

}  // namespace zerorl
