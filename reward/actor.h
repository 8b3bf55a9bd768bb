// The reward actor: what `zerorl serve reward` serves (RewardService over the
// rule-based checkers and the sandbox). The spec comes from
// config.reward.spec_path (watched for changes when watch_spec), else the inline
// config.reward.spec, else the dataset kind's built-in spec.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/actor.h"

namespace zerorl {

absl::StatusOr<std::unique_ptr<Actor>> NewRewardActor(const ActorOptions& options);

}  // namespace zerorl
