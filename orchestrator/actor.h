// The orchestrator actor: what `zerorl serve orchestrator` serves.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/actor.h"

namespace zerorl {

absl::StatusOr<std::unique_ptr<Actor>> NewOrchestratorActor(const ActorOptions& options);

}  // namespace zerorl
