// The policy model and tokenizer a RunConfig's `model:` section names, as the
// rollout workers and the learner both load them:
//   path set         Model::Load(path) (config.json + safetensors)
//   else init_config a random model of that config.json, seeded by init_seed
//   device           "cpu" (default): the CPU backend; "cuda" / "cuda:N": the
//                    model lives on GPU N (ops::CudaBackend(N)) — needs a build
//                    with CUDA (ZERORL_CUDA) and a usable device, otherwise
//                    FAILED_PRECONDITION naming the key and the reason
//   tokenizer        "auto": tokenizer.json in path if present, else "char";
//                    otherwise Tokenizer::Load(spec)
// Errors name the config key at fault.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/device.h"
#include "model/model.h"
#include "model/ops/ops.h"
#include "model/tokenizer.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl::model {

// The model on config.device (see the banner).
absl::StatusOr<std::unique_ptr<Model>> LoadPolicyModel(const zerorl::v1::ModelConfig& config);
// The same model on another backend (nullptr: CPU) — the learner's data-parallel replicas.
absl::StatusOr<std::unique_ptr<Model>> LoadPolicyModelOn(const zerorl::v1::ModelConfig& config,
                                                                ops::Backend* backend);
absl::StatusOr<std::shared_ptr<const Tokenizer>> LoadPolicyTokenizer(const zerorl::v1::ModelConfig& config);
// The files LoadPolicyTokenizer reads, which a checkpoint of the policy must
// carry to load on its own (`zerorl generate --model CKPT`, HF tooling): first
// the tokenizer.json (a checkpoint stores it under that name whatever the
// source file is called), then, when present beside it, the
// tokenizer_config.json that sets its bos/eos/pad. Empty for the char vocabulary. The same resolution as
// LoadPolicyTokenizer ("auto", a file or a directory).
std::vector<std::string> PolicyTokenizerFiles(const zerorl::v1::ModelConfig& config);

}  // namespace zerorl::model
