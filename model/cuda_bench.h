// `zerorl bench model --device cuda`: GPU numbers for a model config.
//  - The whole Model on the CUDA backend (bf16 tensor-core GEMMs, fp32
//    master weights): train tokens/s (TrainForward + TrainBackward +
//    ClipGradNorm + AdamW, B x T tokens per step) and decode tokens/s
//    (Generate: G samples of one prompt, KV cache on the device, sampling on
//    the device), each with the model FLOP/s and the MFU against the device's
//    dense bf16 peak (H100/H200: 989.4 TFLOP/s, A100: 312).
//  - Op level, on the model's own shapes: the linear layers as cuBLAS GEMMs,
//    bf16 vs the fp32 path measured in the same run, and the decode
//    attention kernel over a KV cache.
//  - Optionally the PyTorch peer (bench/peers/moe_bench_torch.py) on the same
//    GPU, when a python3 with CUDA-enabled torch is found: the same workloads
//    with torch.set_default_device("cuda") and bf16 fp32-matmul precision
//    ("medium", the same cuBLAS mode as ours); skipped with a note otherwise.
// Returns the process exit code: 0 ok, 2 when no CUDA device is usable or the
// binary was built without CUDA (the message says which), 1 on a CUDA error
// or when the model does not fit (the out-of-memory message is printed).
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"

namespace zerorl::model {

struct CudaBenchOptions {
  int64_t batch = 16, seq = 128, train_steps = 4;  // train: B x T tokens per step
  int64_t samples = 16, prompt = 32, new_tokens = 64;  // decode: G samples of one prompt
  std::string config_path;  // for the PyTorch peer (empty: no peer)
  std::string peer_script = "bench/peers/moe_bench_torch.py";
  bool peer = true;
};

int BenchModelCuda(const ModelConfig& c, const CudaBenchOptions& options);

}  // namespace zerorl::model
