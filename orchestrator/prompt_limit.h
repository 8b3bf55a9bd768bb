// The limits a run's dataset is loaded under (DatasetLimits, dataset.h), from
// its RunConfig: the policy tokenizer counts each rendered prompt; a prompt is
// skipped when it has more than
//   min(dataset.max_prompt_tokens (0 = no bound),
//       the model's max_position_embeddings - rollout.sampling.max_new_tokens)
// tokens, since the rollout worker would refuse it on every attempt; the train
// split must keep rollout.prompts_per_step prompts.
#pragma once

#include "absl/status/statusor.h"
#include "orchestrator/dataset.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl {

// INVALID_ARGUMENT naming rollout.sampling.max_new_tokens when it leaves no
// room for a prompt in the model's positions. When the model's config or its
// tokenizer cannot be read here (an orchestrator without the model files),
// the limits count nothing (logged): the rollout worker still refuses an
// over-long prompt, by its id.
absl::StatusOr<DatasetLimits> DatasetLimitsFor(const zerorl::v1::RunConfig& config);

}  // namespace zerorl
