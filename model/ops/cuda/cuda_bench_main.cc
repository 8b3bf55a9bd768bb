// zerorl_cuda_bench: `zerorl bench model --device cuda` as a small binary
// that links only the model (no gRPC services), for GPU machines that have
// the CUDA toolkit but not the whole service's dependencies (scripts/gpu-check
// runs it). Same numbers and exit codes as BenchModelCuda (model/cuda_bench.h).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "model/config.h"
#include "model/cuda_bench.h"

int main(int argc, char** argv) {
  CLI::App app{"The model on the CUDA backend: train/decode tokens/s and MFU, op-level GEMMs, PyTorch peer.",
               "zerorl_cuda_bench"};
  zerorl::model::CudaBenchOptions o;
  bool no_peer = false;
  app.add_option("--config", o.config_path, "HF config.json of the model to benchmark")->required();
  app.add_option("--batch", o.batch, "train: sequences per step")->capture_default_str();
  app.add_option("--seq", o.seq, "train: tokens per sequence")->capture_default_str();
  app.add_option("--train-steps", o.train_steps, "train: timed steps (after one warm-up)")->capture_default_str();
  app.add_option("--samples", o.samples, "decode: samples of the one prompt")->capture_default_str();
  app.add_option("--prompt", o.prompt, "decode: prompt tokens")->capture_default_str();
  app.add_option("--new", o.new_tokens, "decode: new tokens per sample")->capture_default_str();
  app.add_option("--peer-script", o.peer_script, "the PyTorch peer")->capture_default_str();
  app.add_flag("--no-peer", no_peer, "skip the PyTorch peer");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  o.peer = !no_peer;
  auto config = zerorl::model::LoadModelConfig(o.config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "zerorl_cuda_bench: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  std::printf("zerorl_cuda_bench: %s\n", o.config_path.c_str());
  return zerorl::model::BenchModelCuda(*config, o);
}
