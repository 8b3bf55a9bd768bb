// Test-only helpers: a tiny DeepSeek-V3-style MoE (char vocabulary, 2 layers,
// 4 routed experts) that runs in milliseconds on CPU.
#pragma once

#include <memory>
#include <string>

#include "model/model.h"
#include "model/tokenizer.h"

namespace zerorl::testing {

inline std::string TinyMoeConfigJson(int hidden = 32) {
  return R"({"model_type": "deepseek_v3", "vocab_size": 100, "hidden_size": )" + std::to_string(hidden) +
         R"(, "intermediate_size": 64, "moe_intermediate_size": 32, "num_hidden_layers": 2,
  "num_attention_heads": 2, "num_key_value_heads": 2, "q_lora_rank": null, "kv_lora_rank": 16,
  "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8, "n_routed_experts": 4,
  "n_shared_experts": 1, "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1,
  "topk_method": "noaux_tc", "scoring_func": "sigmoid", "norm_topk_prob": true,
  "routed_scaling_factor": 1.0, "first_k_dense_replace": 1, "moe_layer_freq": 1,
  "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
  "max_position_embeddings": 256, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2})";
}

inline std::unique_ptr<model::Model> TinyMoe(uint64_t seed, int hidden = 32) {
  auto cfg = model::ParseModelConfig(TinyMoeConfigJson(hidden));
  if (!cfg.ok()) return nullptr;
  auto m = model::Model::Create(*cfg, seed);
  return m.ok() ? std::move(*m) : nullptr;
}

inline std::shared_ptr<const Tokenizer> CharTokenizer() { return Tokenizer::CharVocabulary(); }

}  // namespace zerorl::testing
