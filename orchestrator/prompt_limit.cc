// Dataset limits from the run config and the policy's tokenizer (see prompt_limit.h).
#include "orchestrator/prompt_limit.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "model/config.h"
#include "model/policy_loader.h"

namespace zerorl {

absl::StatusOr<DatasetLimits> DatasetLimitsFor(const zerorl::v1::RunConfig& config) {
  DatasetLimits limits;
  limits.min_train_prompts = config.rollout().prompts_per_step();
  const auto& m = config.model();
  const std::string config_path = !m.path().empty() ? m.path() : m.init_config();
  if (config_path.empty()) return limits;
  auto model_config = model::LoadModelConfig(config_path);
  auto tokenizer = model::LoadPolicyTokenizer(m);
  if (!model_config.ok() || !tokenizer.ok()) {
    ZLOG(WARNING) << "dataset: prompt lengths are not checked here ("
                  << (model_config.ok() ? tokenizer.status() : model_config.status()).message()
                  << "); the rollout worker refuses an over-long prompt";
    return limits;
  }
  const int64_t positions = model_config->max_position_embeddings;
  const int64_t max_new = config.rollout().sampling().max_new_tokens();
  const int64_t room = positions - max_new;
  if (room < 1) {
    return absl::InvalidArgumentError(absl::StrCat("rollout.sampling.max_new_tokens: ", max_new,
                                                   " leaves no room for a prompt in the model's ", positions,
                                                   " positions (", config_path, ")"));
  }
  const int64_t configured = config.dataset().max_prompt_tokens();
  limits.max_prompt_tokens = configured > 0 ? std::min(configured, room) : room;
  std::shared_ptr<const Tokenizer> tok = *tokenizer;
  limits.count_tokens = [tok](const std::string& text) {
    return static_cast<int64_t>(tok->EncodePrompt(text).size());
  };
  return limits;
}

}  // namespace zerorl
