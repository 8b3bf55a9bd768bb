// A model's parameters as weight-transfer tensors (weight_transfer.h): what a
// publish of a host-resident model sends.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model.h"
#include "weights/weight_transfer.h"
#include "zerorl/v1/rollout.pb.h"

namespace zerorl {

// Views into the model's parameters, in Parameters() order; the model's
// memory must be the host's (a device policy stages a host copy first, as
// GrpoTrainer::WeightTensors does).
std::vector<WeightTensor> HostWeightTensors(model::Model& m);

// Every chunk of the model's weights as version `version`, its config on the
// first, at most `chunk_bytes` data bytes each: a whole transfer at once.
absl::StatusOr<std::vector<zerorl::v1::WeightChunk>> WeightChunksOf(model::Model& m, int64_t version,
                                                                   int64_t chunk_bytes);

}  // namespace zerorl
