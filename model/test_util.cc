// Helpers shared by the model tests.
#include "model/test_util.h"

#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "tests/testing/subprocess.h"

namespace zerorl::model::testing {

namespace {
std::string Merge(const char* base, const std::string& extra) {
  auto j = nlohmann::json::parse(base);
  if (!extra.empty()) j.merge_patch(nlohmann::json::parse(extra));
  return j.dump();
}
}  // namespace

std::string TinyDeepseekJson(const std::string& extra) {
  return Merge(R"({"model_type":"deepseek_v3","vocab_size":40,"hidden_size":32,"intermediate_size":48,
    "moe_intermediate_size":16,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":4,
    "q_lora_rank":null,"kv_lora_rank":12,"qk_nope_head_dim":8,"qk_rope_head_dim":4,"v_head_dim":6,
    "n_routed_experts":8,"n_shared_experts":1,"num_experts_per_tok":2,"n_group":1,"topk_group":1,
    "topk_method":"noaux_tc","scoring_func":"sigmoid","norm_topk_prob":true,"routed_scaling_factor":1.0,
    "first_k_dense_replace":1,"moe_layer_freq":1,"hidden_act":"silu","rms_norm_eps":1e-6,
    "rope_theta":10000.0,"max_position_embeddings":128,"tie_word_embeddings":false,
    "attention_bias":false,"bos_token_id":1,"eos_token_id":2})",
               extra);
}

std::string TinyQwenJson(const std::string& extra) {
  return Merge(R"({"model_type":"qwen3_moe","vocab_size":40,"hidden_size":32,"intermediate_size":48,
    "moe_intermediate_size":16,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
    "head_dim":8,"num_experts":8,"num_experts_per_tok":2,"norm_topk_prob":true,"decoder_sparse_step":1,
    "mlp_only_layers":[],"hidden_act":"silu","rms_norm_eps":1e-6,"rope_theta":1000000.0,
    "max_position_embeddings":128,"tie_word_embeddings":false,"attention_bias":false,
    "use_sliding_window":false,"bos_token_id":1,"eos_token_id":2})",
               extra);
}

std::vector<NamedConfig> ReferenceConfigs() {
  return {
      {"mla_sigmoid_shared", TinyDeepseekJson()},
      {"mla_qlora_softmax_groups_noshared",
       TinyDeepseekJson(R"({"q_lora_rank":10,"scoring_func":"softmax","n_shared_experts":0,"n_group":4,
         "topk_group":2,"norm_topk_prob":false,"routed_scaling_factor":2.5,"first_k_dense_replace":0})")},
      {"mla_groups_balance_loss",
       TinyDeepseekJson(R"({"q_lora_rank":10,"n_group":2,"topk_group":1,"num_experts_per_tok":3})")},
      {"mla_greedy_top1", TinyDeepseekJson(R"({"topk_method":"greedy","num_experts_per_tok":1})")},
      {"gqa_norm_topk", TinyQwenJson()},
      {"gqa_tied_sparse_step", TinyQwenJson(R"({"tie_word_embeddings":true,"norm_topk_prob":false,
         "decoder_sparse_step":2,"num_hidden_layers":4,"mlp_only_layers":[3]})")},
  };
}

TrainBatch OneSequence(std::vector<int32_t> tokens) {
  TrainBatch b;
  b.B = 1;
  b.T = static_cast<int64_t>(tokens.size());
  b.lengths = {static_cast<int32_t>(tokens.size())};
  b.tokens = std::move(tokens);
  return b;
}

std::vector<float> FullLogits(Model& m, const std::vector<int32_t>& toks) {
  const TrainBatch b = OneSequence(toks);
  TrainOptions o;
  o.keep_logits = true;
  TrainOutput out;
  const absl::Status st = m.TrainForward(b, o, &out);
  if (!st.ok()) {
    std::fprintf(stderr, "FullLogits: %s\n", std::string(st.message()).c_str());
    std::abort();
  }
  return out.logits;
}

ModelConfig MustParse(const std::string& json) {
  auto c = ParseModelConfig(json);
  if (!c.ok()) {
    std::fprintf(stderr, "bad test config: %s\n", std::string(c.status().message()).c_str());
    std::abort();
  }
  return *c;
}

bool HaveTorch() {
  static const bool have = [] {
    std::string out;
    return zerorl::testing::RunCommand({"/usr/bin/python3", "-c", "import torch, numpy"}, &out) == 0;
  }();
  return have;
}

int RunReference(const std::vector<std::string>& args, std::string* out) {
  std::vector<std::string> argv = {"/usr/bin/python3", zerorl::testing::SourceDir() + "/tests/reference/ref_model.py"};
  argv.insert(argv.end(), args.begin(), args.end());
  return zerorl::testing::RunCommand(argv, out, std::chrono::seconds(120));
}

}  // namespace zerorl::model::testing
