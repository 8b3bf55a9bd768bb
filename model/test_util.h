// Helpers shared by the model tests: tiny random configs for both families and
// the PyTorch reference runner (tests/reference/ref_model.py via /usr/bin/python3).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/model.h"

namespace zerorl::model::testing {

// Tiny config JSON texts; `extra` is merged over the family's defaults.
std::string TinyDeepseekJson(const std::string& extra = "");
std::string TinyQwenJson(const std::string& extra = "");
ModelConfig MustParse(const std::string& json);

// A batch of one sequence, all of it counted (lengths = {T}).
TrainBatch OneSequence(std::vector<int32_t> tokens);

// The logits of one sequence through the training forward ([T, V]): what
// Prefill / DecodeStep over a cache must reproduce.
std::vector<float> FullLogits(Model& m, const std::vector<int32_t>& toks);

// The six configs model_reference_test checks against PyTorch (4 MLA, 2 GQA), by name.
struct NamedConfig {
  std::string name;
  std::string json;
};
std::vector<NamedConfig> ReferenceConfigs();

// True when /usr/bin/python3 can import torch (the reference tests skip otherwise).
bool HaveTorch();
// Runs ref_model.py with args; returns its exit code, stdout in *out.
int RunReference(const std::vector<std::string>& args, std::string* out);

}  // namespace zerorl::model::testing
