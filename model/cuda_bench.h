// `zerorl bench model --device cuda`: op-level GPU numbers for a model config
// (the whole Model does not run on the CUDA backend yet — its parameters live
// in one host buffer). Measures, on the model's own shapes:
//  - the linear layers as cuBLAS GEMMs, bf16 tensor-core compute vs the fp32
//    path measured in the same run (the peer), TFLOP/s and MFU against the
//    device's dense bf16 peak (H100/H200: 989 TFLOP/s, A100: 312);
//  - the decode attention kernel over a KV cache (tokens/s per layer).
// Returns the process exit code: 0 ok, 2 when no CUDA device is usable or the
// binary was built without CUDA (the message says which), 1 on a CUDA error.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace zerorl::model {

int BenchModelCuda(const ModelConfig& c, int64_t tokens, int64_t decode_batch, int64_t decode_ctx);

}  // namespace zerorl::model
