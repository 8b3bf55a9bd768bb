// Device strings to backends: "cpu" (or "") is the CPU backend, "cuda" /
// "cuda:N" the CUDA backend of GPU N. Shared by the RunConfig loaders
// (model.device, learner.data_parallel_devices) and `zerorl generate --device`.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "model/ops/ops.h"

namespace zerorl::model {

// nullptr for the CPU (the models' default backend), ops::CudaBackend(N) for
// cuda[:N]. `key` names the setting in errors: INVALID_ARGUMENT for a
// malformed string; FAILED_PRECONDITION "<key> is cuda:0 but zerorl was built
// without CUDA" or "<key> is cuda:1: no CUDA device: ..." when the GPU is not there.
absl::StatusOr<ops::Backend*> BackendForDevice(const std::string& device, const std::string& key);

}  // namespace zerorl::model
