// The policy model and tokenizer a RunConfig's `model:` section names, as the
// rollout workers and the learner both load them:
//   path set         Model::Load(path) (config.json + safetensors)
//   else init_config a random model of that config.json, seeded by init_seed
//   tokenizer        "auto": tokenizer.json in path if present, else "char";
//                    otherwise Tokenizer::Load(spec)
// Errors name the config key at fault.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl::rollout {

absl::StatusOr<std::unique_ptr<model::Model>> LoadPolicyModel(const zerorl::v1::ModelConfig& config);
absl::StatusOr<std::shared_ptr<const Tokenizer>> LoadPolicyTokenizer(const zerorl::v1::ModelConfig& config);

}  // namespace zerorl::rollout
