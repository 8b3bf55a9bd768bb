// Loading the policy model and tokenizer from RunConfig.model (see policy_loader.h).
#include "model/policy_loader.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/status.h"

namespace zerorl::model {

absl::StatusOr<std::unique_ptr<Model>> LoadPolicyModelOn(const zerorl::v1::ModelConfig& config,
                                                                ops::Backend* backend) {
  if (!config.path().empty()) {
    auto m = Model::Load(config.path(), backend);
    if (!m.ok()) return Annotate(m.status(), "model.path");
    return m;
  }
  if (!config.init_config().empty()) {
    auto cfg = LoadModelConfig(config.init_config());
    if (!cfg.ok()) return Annotate(cfg.status(), "model.init_config");
    return Model::Create(*cfg, config.init_seed(), backend);
  }
  return absl::InvalidArgumentError("model: set model.path (a checkpoint) or model.init_config (a config.json)");
}

absl::StatusOr<std::unique_ptr<Model>> LoadPolicyModel(const zerorl::v1::ModelConfig& config) {
  ZRL_ASSIGN_OR_RETURN(ops::Backend * backend, BackendForDevice(config.device(), "model.device"));
  return LoadPolicyModelOn(config, backend);
}

namespace {

// The Tokenizer::Load spec config.tokenizer resolves to.
std::string TokenizerSpec(const zerorl::v1::ModelConfig& config) {
  const std::string& spec = config.tokenizer();
  if (!spec.empty() && spec != "auto") return spec;
  return !config.path().empty() && std::filesystem::exists(config.path() + "/tokenizer.json")
             ? config.path() + "/tokenizer.json"
             : "char";
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Tokenizer>> LoadPolicyTokenizer(const zerorl::v1::ModelConfig& config) {
  auto t = Tokenizer::Load(TokenizerSpec(config));
  if (!t.ok()) return Annotate(t.status(), "model.tokenizer");
  return std::shared_ptr<const Tokenizer>(std::move(*t));
}

std::vector<std::string> PolicyTokenizerFiles(const zerorl::v1::ModelConfig& config) {
  namespace fs = std::filesystem;
  const std::string spec = TokenizerSpec(config);
  if (spec == "char") return {};
  std::error_code ec;
  fs::path file(spec);
  if (fs::is_directory(file, ec)) file /= "tokenizer.json";
  std::vector<std::string> files = {file.string()};
  const fs::path beside = file.parent_path() / "tokenizer_config.json";
  if (fs::exists(beside, ec)) files.push_back(beside.string());
  return files;
}

}  // namespace zerorl::model
