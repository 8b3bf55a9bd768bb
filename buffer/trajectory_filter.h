// TrajectoryFilter semantics shared by List and Tail: validation and matching.
#pragma once

#include "absl/status/status.h"
#include "zerorl/v1/buffer.pb.h"

namespace zerorl::buffer {

// INVALID_ARGUMENT naming the field when the filter cannot be satisfied as
// written: bad run id, negative steps, step_max < step_min, NaN or inverted
// reward bounds, negative policy version, unknown finish reason, prompt id with NUL.
// An empty run_id means every run.
absl::Status ValidateFilter(const zerorl::v1::TrajectoryFilter& filter);

// True when `t` (with its prompt attached) satisfies every set field. `contains`
// is a case-sensitive substring of the prompt text or the completion text.
bool Matches(const zerorl::v1::TrajectoryFilter& filter, const zerorl::v1::Trajectory& t);

}  // namespace zerorl::buffer
