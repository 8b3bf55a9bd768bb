// ModelConfig: the architecture of a DeepSeek-V3 (`deepseek_v3`) or Qwen3-MoE
// (`qwen3_moe`) model, parsed from a HuggingFace config.json.
//
// Both families map onto one internal description: per layer an attention kind
// (MLA for deepseek_v3, GQA with per-head q/k RMSNorm for qwen3_moe) and an MLP
// kind (dense SwiGLU or routed MoE). Unknown keys, and known keys with values we
// do not implement (rope_scaling, attention_bias=true, hidden_act != silu, ...),
// are errors naming the key. Keys that do not change the math (torch_dtype,
// transformers_version, use_cache, initializer_range, aux-loss coefficients
// used only by HF training code, ...) are accepted and ignored.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zerorl::model {

enum class ModelFamily { kDeepseekV3, kQwen3Moe };
enum class ScoringFunc { kSigmoid, kSoftmax };

struct ModelConfig {
  ModelFamily family = ModelFamily::kDeepseekV3;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;              // D
  int64_t intermediate_size = 0;        // dense SwiGLU width
  int64_t moe_intermediate_size = 0;    // width of one routed (and one shared) expert
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;      // H
  int64_t num_key_value_heads = 0;      // Hkv (GQA); MLA uses H
  // MLA (deepseek_v3). q_lora_rank == 0 means null: a plain q_proj.
  int64_t q_lora_rank = 0;
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  // GQA (qwen3_moe).
  int64_t head_dim = 0;
  // MoE.
  int64_t n_routed_experts = 0;         // E (qwen3_moe: num_experts)
  int64_t n_shared_experts = 0;         // shared expert width = n_shared * moe_intermediate_size
  int64_t num_experts_per_tok = 0;      // K
  int64_t n_group = 1;                  // group-limited routing: E split in n_group groups,
  int64_t topk_group = 1;               //   only the best topk_group groups are eligible
  ScoringFunc scoring_func = ScoringFunc::kSigmoid;
  bool use_correction_bias = false;     // e_score_correction_bias (topk_method noaux_tc)
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.0;
  int64_t first_k_dense_replace = 0;    // deepseek_v3: layers < k are dense
  int64_t moe_layer_freq = 1;           // deepseek_v3
  int64_t decoder_sparse_step = 1;      // qwen3_moe
  std::vector<int64_t> mlp_only_layers; // qwen3_moe
  // Shared.
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int64_t max_position_embeddings = 4096;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1;            // -1: none
  std::vector<int64_t> eos_token_ids;   // config's eos_token_id (int or list)

  bool is_mla() const { return family == ModelFamily::kDeepseekV3; }
  bool IsMoeLayer(int64_t layer) const;
  // Attention geometry common to both families.
  int64_t kv_heads() const { return is_mla() ? num_attention_heads : num_key_value_heads; }
  int64_t qk_head_dim() const { return is_mla() ? qk_nope_head_dim + qk_rope_head_dim : head_dim; }
  int64_t rope_dim() const { return is_mla() ? qk_rope_head_dim : head_dim; }
  int64_t v_dim() const { return is_mla() ? v_head_dim : head_dim; }
  // Checks internal consistency (divisibility, ranges); Parse* calls it.
  absl::Status Validate() const;
  // HF config.json text for this config (the family's key names).
  std::string ToJson() const;
};

// Parses config.json text. Errors name the offending key.
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text);
// Reads and parses a config.json file (or DIR/config.json when given a directory).
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path);

// Multiply-accumulates per token in the model's matmuls (projections, router,
// the K routed + shared experts, the head; no attention core), and in the
// attention core of a token attending over `ctx` positions. FLOP counts for
// the benchmarks' MFU (CPU and GPU count the same way).
double MatmulMacsPerToken(const ModelConfig& c);
double AttentionMacsPerToken(const ModelConfig& c, double ctx);

// Bytes of KV cache one token takes over all layers (fp32): with `latent`, an
// MLA model caches the normalised latent c_kv [kv_lora_rank] and the roped
// k_pe [qk_rope_head_dim] per layer; otherwise (and always for GQA) roped K
// [kv_heads, qk_head_dim] and V [kv_heads, v_dim] per layer.
int64_t KvCacheBytesPerToken(const ModelConfig& c, bool latent);

}  // namespace zerorl::model
