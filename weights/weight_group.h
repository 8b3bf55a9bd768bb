// What both halves of the NCCL weight broadcast (learner/nccl_weight_broadcaster,
// rollout/nccl_weight_member) must agree on before a group forms: the layout of
// the model whose flat parameter buffer is broadcast, and whether this binary
// can take part at all.
#pragma once

#include <string>

#include "model/config.h"

namespace zerorl::weights {

// "fnv1a64:<16 hex digits>" of config.ToJson(): equal fingerprints mean equal
// parameter layouts (same tensors, shapes and order), the precondition for
// broadcasting one flat parameter buffer into another.
std::string ModelConfigFingerprint(const model::ModelConfig& config);

// Whether this binary was built with NCCL (the CUDA build with NCCL found).
bool NcclWeightTransportBuilt();

}  // namespace zerorl::weights
