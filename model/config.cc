// config.json <-> ModelConfig for deepseek_v3 and qwen3_moe.
#include "model/config.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "common/json.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace zerorl::model {
namespace {

using nlohmann::json;

// Keys accepted without effect on the math.
const std::set<std::string> kIgnoredCommon = {
    "architectures", "model_type", "torch_dtype", "transformers_version", "use_cache",
    "initializer_range", "pad_token_id", "_name_or_path", "auto_map", "attention_dropout",
    "dtype"};  // transformers >= 4.56 writes "dtype" where older versions wrote "torch_dtype"
const std::set<std::string> kDeepseekKeys = {
    "vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size",
    "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "q_lora_rank",
    "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "n_routed_experts",
    "n_shared_experts", "num_experts_per_tok", "n_group", "topk_group", "topk_method",
    "scoring_func", "norm_topk_prob", "routed_scaling_factor", "first_k_dense_replace",
    "moe_layer_freq", "hidden_act", "rms_norm_eps", "rope_theta", "max_position_embeddings",
    "tie_word_embeddings", "attention_bias", "bos_token_id", "eos_token_id", "rope_scaling",
    // HF training-only or multi-token-prediction knobs (extra MTP tensors are ignored).
    "aux_loss_alpha", "seq_aux", "ep_size", "num_nextn_predict_layers", "pretraining_tp",
    // Written by transformers' own DeepseekV3Config (not by DeepSeek's remote code):
    // derived values, checked against the keys they derive from.
    "head_dim", "qk_head_dim", "rope_interleave"};
const std::set<std::string> kQwenKeys = {
    "vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size",
    "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "num_experts",
    "num_experts_per_tok", "norm_topk_prob", "decoder_sparse_step", "mlp_only_layers",
    "hidden_act", "rms_norm_eps", "rope_theta", "rope_scaling", "max_position_embeddings",
    "max_window_layers", "sliding_window", "use_sliding_window", "tie_word_embeddings",
    "attention_bias", "bos_token_id", "eos_token_id", "output_router_logits",
    "router_aux_loss_coef", "shared_expert_intermediate_size"};

absl::Status Bad(const std::string& key, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: '", key, "' ", why));
}

// Reads an integer key; `dflt` when absent (required keys pass nullopt-like -1 and check).
absl::Status GetInt(const json& j, const char* key, int64_t* out, bool required, bool nullable = false) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) return Bad(key, "is required");
    return absl::OkStatus();
  }
  if (it->is_null()) {
    if (nullable) { *out = 0; return absl::OkStatus(); }
    return Bad(key, "must not be null");
  }
  if (!it->is_number_integer()) return Bad(key, "must be an integer");
  *out = it->get<int64_t>();
  return absl::OkStatus();
}
absl::Status GetNum(const json& j, const char* key, double* out) {
  auto it = j.find(key);
  if (it == j.end()) return absl::OkStatus();
  if (!it->is_number()) return Bad(key, "must be a number");
  *out = it->get<double>();
  return absl::OkStatus();
}
absl::Status GetBool(const json& j, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end()) return absl::OkStatus();
  if (!it->is_boolean()) return Bad(key, "must be true or false");
  *out = it->get<bool>();
  return absl::OkStatus();
}
absl::Status GetString(const json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end()) return absl::OkStatus();
  if (!it->is_string()) return Bad(key, "must be a string");
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status ParseShared(const json& j, ModelConfig* c) {
  ZRL_RETURN_IF_ERROR(GetInt(j, "vocab_size", &c->vocab_size, true));
  ZRL_RETURN_IF_ERROR(GetInt(j, "hidden_size", &c->hidden_size, true));
  ZRL_RETURN_IF_ERROR(GetInt(j, "intermediate_size", &c->intermediate_size, true));
  ZRL_RETURN_IF_ERROR(GetInt(j, "moe_intermediate_size", &c->moe_intermediate_size, false));
  ZRL_RETURN_IF_ERROR(GetInt(j, "num_hidden_layers", &c->num_hidden_layers, true));
  ZRL_RETURN_IF_ERROR(GetInt(j, "num_attention_heads", &c->num_attention_heads, true));
  c->num_key_value_heads = c->num_attention_heads;
  ZRL_RETURN_IF_ERROR(GetInt(j, "num_key_value_heads", &c->num_key_value_heads, false));
  ZRL_RETURN_IF_ERROR(GetInt(j, "num_experts_per_tok", &c->num_experts_per_tok, false));
  ZRL_RETURN_IF_ERROR(GetBool(j, "norm_topk_prob", &c->norm_topk_prob));
  ZRL_RETURN_IF_ERROR(GetNum(j, "rms_norm_eps", &c->rms_norm_eps));
  ZRL_RETURN_IF_ERROR(GetNum(j, "rope_theta", &c->rope_theta));
  ZRL_RETURN_IF_ERROR(GetInt(j, "max_position_embeddings", &c->max_position_embeddings, false));
  ZRL_RETURN_IF_ERROR(GetBool(j, "tie_word_embeddings", &c->tie_word_embeddings));
  if (j.contains("bos_token_id") && !j["bos_token_id"].is_null())
    ZRL_RETURN_IF_ERROR(GetInt(j, "bos_token_id", &c->bos_token_id, false));
  if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      c->eos_token_ids = {it->get<int64_t>()};
    } else if (it->is_array()) {
      for (const auto& e : *it) {
        if (!e.is_number_integer()) return Bad("eos_token_id", "must be an integer or a list of integers");
        c->eos_token_ids.push_back(e.get<int64_t>());
      }
    } else {
      return Bad("eos_token_id", "must be an integer or a list of integers");
    }
  }
  std::string act = "silu";
  ZRL_RETURN_IF_ERROR(GetString(j, "hidden_act", &act));
  if (act != "silu") return Bad("hidden_act", absl::StrCat("= \"", act, "\" is not supported (only \"silu\")"));
  bool attention_bias = false;
  ZRL_RETURN_IF_ERROR(GetBool(j, "attention_bias", &attention_bias));
  if (attention_bias) return Bad("attention_bias", "= true is not supported");
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null())
    return Bad("rope_scaling", "is not supported (only null: plain RoPE)");
  return absl::OkStatus();
}

absl::Status ParseDeepseek(const json& j, ModelConfig* c) {
  c->family = ModelFamily::kDeepseekV3;
  ZRL_RETURN_IF_ERROR(ParseShared(j, c));
  ZRL_RETURN_IF_ERROR(GetInt(j, "q_lora_rank", &c->q_lora_rank, false, /*nullable=*/true));
  ZRL_RETURN_IF_ERROR(GetInt(j, "kv_lora_rank", &c->kv_lora_rank, true));
  ZRL_RETURN_IF_ERROR(GetInt(j, "qk_nope_head_dim", &c->qk_nope_head_dim, true));
  ZRL_RETURN_IF_ERROR(GetInt(j, "qk_rope_head_dim", &c->qk_rope_head_dim, true));
  ZRL_RETURN_IF_ERROR(GetInt(j, "v_head_dim", &c->v_head_dim, true));
  ZRL_RETURN_IF_ERROR(GetInt(j, "n_routed_experts", &c->n_routed_experts, false, true));
  ZRL_RETURN_IF_ERROR(GetInt(j, "n_shared_experts", &c->n_shared_experts, false, true));
  ZRL_RETURN_IF_ERROR(GetInt(j, "n_group", &c->n_group, false, true));
  ZRL_RETURN_IF_ERROR(GetInt(j, "topk_group", &c->topk_group, false, true));
  if (c->n_group == 0) c->n_group = 1;
  if (c->topk_group == 0) c->topk_group = 1;
  ZRL_RETURN_IF_ERROR(GetNum(j, "routed_scaling_factor", &c->routed_scaling_factor));
  ZRL_RETURN_IF_ERROR(GetInt(j, "first_k_dense_replace", &c->first_k_dense_replace, false));
  ZRL_RETURN_IF_ERROR(GetInt(j, "moe_layer_freq", &c->moe_layer_freq, false));
  std::string scoring = "sigmoid", method = "noaux_tc";
  ZRL_RETURN_IF_ERROR(GetString(j, "scoring_func", &scoring));
  ZRL_RETURN_IF_ERROR(GetString(j, "topk_method", &method));
  if (scoring == "sigmoid") c->scoring_func = ScoringFunc::kSigmoid;
  else if (scoring == "softmax") c->scoring_func = ScoringFunc::kSoftmax;
  else return Bad("scoring_func", absl::StrCat("= \"", scoring, "\" is not supported (sigmoid or softmax)"));
  if (method == "noaux_tc") {
    c->use_correction_bias = true;
  } else if (method == "greedy") {
    c->use_correction_bias = false;
    if (c->n_group != 1) return Bad("topk_method", "= \"greedy\" needs n_group 1 (use noaux_tc for groups)");
  } else {
    return Bad("topk_method", absl::StrCat("= \"", method, "\" is not supported (noaux_tc or greedy)"));
  }
  // transformers' DeepseekV3Config stores head_dim = qk_rope_head_dim and
  // qk_head_dim = qk_nope_head_dim + qk_rope_head_dim; other values would mean
  // a geometry we do not implement.
  int64_t head_dim = c->qk_rope_head_dim, qk_head_dim = c->qk_nope_head_dim + c->qk_rope_head_dim;
  ZRL_RETURN_IF_ERROR(GetInt(j, "head_dim", &head_dim, false));
  if (head_dim != c->qk_rope_head_dim)
    return Bad("head_dim", absl::StrCat("= ", head_dim, " must equal qk_rope_head_dim (", c->qk_rope_head_dim, ")"));
  ZRL_RETURN_IF_ERROR(GetInt(j, "qk_head_dim", &qk_head_dim, false));
  if (qk_head_dim != c->qk_nope_head_dim + c->qk_rope_head_dim)
    return Bad("qk_head_dim", absl::StrCat("= ", qk_head_dim, " must equal qk_nope_head_dim + qk_rope_head_dim (",
                                           c->qk_nope_head_dim + c->qk_rope_head_dim, ")"));
  bool interleave = true;  // DeepSeek-V3 ropes interleaved (even, odd) pairs
  ZRL_RETURN_IF_ERROR(GetBool(j, "rope_interleave", &interleave));
  if (!interleave) return Bad("rope_interleave", "= false is not supported (DeepSeek-V3 ropes interleaved pairs)");
  int64_t tp = 1;
  ZRL_RETURN_IF_ERROR(GetInt(j, "pretraining_tp", &tp, false));
  if (tp != 1) return Bad("pretraining_tp", "must be 1");
  return absl::OkStatus();
}

absl::Status ParseQwen(const json& j, ModelConfig* c) {
  c->family = ModelFamily::kQwen3Moe;
  c->use_correction_bias = false;
  c->scoring_func = ScoringFunc::kSoftmax;
  c->norm_topk_prob = false;  // HF default for qwen3_moe
  ZRL_RETURN_IF_ERROR(ParseShared(j, c));
  c->head_dim = c->hidden_size / std::max<int64_t>(1, c->num_attention_heads);
  ZRL_RETURN_IF_ERROR(GetInt(j, "head_dim", &c->head_dim, false));
  ZRL_RETURN_IF_ERROR(GetInt(j, "num_experts", &c->n_routed_experts, false));
  ZRL_RETURN_IF_ERROR(GetInt(j, "decoder_sparse_step", &c->decoder_sparse_step, false));
  if (auto it = j.find("mlp_only_layers"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return Bad("mlp_only_layers", "must be a list of layer indices");
    for (const auto& e : *it) {
      if (!e.is_number_integer()) return Bad("mlp_only_layers", "must be a list of layer indices");
      c->mlp_only_layers.push_back(e.get<int64_t>());
    }
  }
  bool sliding = false;
  ZRL_RETURN_IF_ERROR(GetBool(j, "use_sliding_window", &sliding));
  if (sliding) return Bad("use_sliding_window", "= true is not supported");
  int64_t shared = 0;
  ZRL_RETURN_IF_ERROR(GetInt(j, "shared_expert_intermediate_size", &shared, false));
  if (shared != 0) return Bad("shared_expert_intermediate_size", "must be 0 (qwen3_moe has no shared expert)");
  return absl::OkStatus();
}

}  // namespace

bool ModelConfig::IsMoeLayer(int64_t layer) const {
  if (n_routed_experts <= 0) return false;
  if (is_mla()) return layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
  return (layer + 1) % decoder_sparse_step == 0;
}

absl::Status ModelConfig::Validate() const {
  auto pos = [](int64_t v, const char* key) -> absl::Status {
    if (v <= 0) return Bad(key, absl::StrCat("must be > 0 (got ", v, ")"));
    return absl::OkStatus();
  };
  ZRL_RETURN_IF_ERROR(pos(vocab_size, "vocab_size"));
  ZRL_RETURN_IF_ERROR(pos(hidden_size, "hidden_size"));
  ZRL_RETURN_IF_ERROR(pos(num_hidden_layers, "num_hidden_layers"));
  ZRL_RETURN_IF_ERROR(pos(num_attention_heads, "num_attention_heads"));
  if (!(rms_norm_eps > 0)) return Bad("rms_norm_eps", "must be > 0");
  if (!(rope_theta > 0)) return Bad("rope_theta", "must be > 0");
  bool any_dense = false, any_moe = false;
  for (int64_t l = 0; l < num_hidden_layers; ++l) (IsMoeLayer(l) ? any_moe : any_dense) = true;
  if (any_dense) ZRL_RETURN_IF_ERROR(pos(intermediate_size, "intermediate_size"));
  if (any_moe) {
    ZRL_RETURN_IF_ERROR(pos(moe_intermediate_size, "moe_intermediate_size"));
    ZRL_RETURN_IF_ERROR(pos(num_experts_per_tok, "num_experts_per_tok"));
    if (num_experts_per_tok > n_routed_experts)
      return Bad("num_experts_per_tok", "must be <= the number of routed experts");
    if (n_routed_experts % n_group != 0) return Bad("n_group", "must divide n_routed_experts");
    if (topk_group > n_group) return Bad("topk_group", "must be <= n_group");
    if (n_group > 1 && n_routed_experts / n_group < 2) return Bad("n_group", "groups need >= 2 experts each");
    if (num_experts_per_tok > topk_group * (n_routed_experts / n_group))
      return Bad("num_experts_per_tok", "exceeds the experts in topk_group groups");
  }
  if (is_mla()) {
    if (q_lora_rank < 0) return Bad("q_lora_rank", "must be null or > 0");
    ZRL_RETURN_IF_ERROR(pos(kv_lora_rank, "kv_lora_rank"));
    ZRL_RETURN_IF_ERROR(pos(qk_nope_head_dim, "qk_nope_head_dim"));
    ZRL_RETURN_IF_ERROR(pos(qk_rope_head_dim, "qk_rope_head_dim"));
    ZRL_RETURN_IF_ERROR(pos(v_head_dim, "v_head_dim"));
    if (qk_rope_head_dim % 2) return Bad("qk_rope_head_dim", "must be even");
    ZRL_RETURN_IF_ERROR(pos(moe_layer_freq, "moe_layer_freq"));
  } else {
    ZRL_RETURN_IF_ERROR(pos(head_dim, "head_dim"));
    ZRL_RETURN_IF_ERROR(pos(num_key_value_heads, "num_key_value_heads"));
    if (num_attention_heads % num_key_value_heads)
      return Bad("num_key_value_heads", "must divide num_attention_heads");
    if (head_dim % 2) return Bad("head_dim", "must be even");
    ZRL_RETURN_IF_ERROR(pos(decoder_sparse_step, "decoder_sparse_step"));
  }
  return absl::OkStatus();
}

std::string ModelConfig::ToJson() const {
  json j;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["moe_intermediate_size"] = moe_intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["num_experts_per_tok"] = num_experts_per_tok;
  j["norm_topk_prob"] = norm_topk_prob;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["rope_scaling"] = nullptr;
  j["max_position_embeddings"] = max_position_embeddings;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["attention_bias"] = false;
  j["bos_token_id"] = bos_token_id >= 0 ? json(bos_token_id) : json(nullptr);
  if (eos_token_ids.size() == 1) j["eos_token_id"] = eos_token_ids[0];
  else if (eos_token_ids.empty()) j["eos_token_id"] = nullptr;
  else j["eos_token_id"] = eos_token_ids;
  j["torch_dtype"] = "float32";
  if (is_mla()) {
    j["architectures"] = {"DeepseekV3ForCausalLM"};
    j["model_type"] = "deepseek_v3";
    j["q_lora_rank"] = q_lora_rank > 0 ? json(q_lora_rank) : json(nullptr);
    j["kv_lora_rank"] = kv_lora_rank;
    j["qk_nope_head_dim"] = qk_nope_head_dim;
    j["qk_rope_head_dim"] = qk_rope_head_dim;
    j["v_head_dim"] = v_head_dim;
    j["n_routed_experts"] = n_routed_experts;
    j["n_shared_experts"] = n_shared_experts;
    j["n_group"] = n_group;
    j["topk_group"] = topk_group;
    j["topk_method"] = use_correction_bias ? "noaux_tc" : "greedy";
    j["scoring_func"] = scoring_func == ScoringFunc::kSigmoid ? "sigmoid" : "softmax";
    j["routed_scaling_factor"] = routed_scaling_factor;
    j["first_k_dense_replace"] = first_k_dense_replace;
    j["moe_layer_freq"] = moe_layer_freq;
  } else {
    j["architectures"] = {"Qwen3MoeForCausalLM"};
    j["model_type"] = "qwen3_moe";
    j["head_dim"] = head_dim;
    j["num_experts"] = n_routed_experts;
    j["decoder_sparse_step"] = decoder_sparse_step;
    j["mlp_only_layers"] = mlp_only_layers;
    j["use_sliding_window"] = false;
  }
  return j.dump(2) + "\n";
}

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text) {
  if (auto s = CheckJsonDepth(json_text); !s.ok()) return Annotate(s, "config.json");
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("config.json: not a JSON object");
  std::string type;
  ZRL_RETURN_IF_ERROR(GetString(j, "model_type", &type));
  const std::set<std::string>* keys = nullptr;
  ModelConfig c;
  if (type == "deepseek_v3") keys = &kDeepseekKeys;
  else if (type == "qwen3_moe") keys = &kQwenKeys;
  else return Bad("model_type", absl::StrCat("= \"", type, "\" is not supported (deepseek_v3 or qwen3_moe)"));
  for (const auto& [k, v] : j.items()) {
    if (!keys->count(k) && !kIgnoredCommon.count(k))
      return Bad(k, absl::StrCat("is not a known ", type, " config field"));
  }
  ZRL_RETURN_IF_ERROR(type == "deepseek_v3" ? ParseDeepseek(j, &c) : ParseQwen(j, &c));
  ZRL_RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  std::string file = path;
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) file = path + "/config.json";
  std::ifstream in(file);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", file));
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = ParseModelConfig(ss.str());
  if (!c.ok()) return Annotate(c.status(), file);
  return c;
}

double MatmulMacsPerToken(const ModelConfig& c) {
  const double D = c.hidden_size, H = c.num_attention_heads;
  double m = 0;
  if (c.is_mla()) {
    const double dq = c.qk_head_dim();
    m += c.q_lora_rank > 0 ? D * c.q_lora_rank + c.q_lora_rank * H * dq : D * H * dq;
    m += D * (c.kv_lora_rank + c.qk_rope_head_dim) + c.kv_lora_rank * H * (c.qk_nope_head_dim + c.v_head_dim);
    m *= c.num_hidden_layers;
  } else {
    m += c.num_hidden_layers * D * (H + 2.0 * c.num_key_value_heads) * c.head_dim;
  }
  m += c.num_hidden_layers * H * c.v_dim() * D;  // o_proj
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    if (c.IsMoeLayer(l))
      m += D * c.n_routed_experts + 3.0 * D * c.moe_intermediate_size * (c.num_experts_per_tok + c.n_shared_experts);
    else
      m += 3.0 * D * c.intermediate_size;
  }
  return m + D * c.vocab_size;
}

double AttentionMacsPerToken(const ModelConfig& c, double ctx) {
  return c.num_hidden_layers * c.num_attention_heads * (c.qk_head_dim() + c.v_dim()) * ctx;
}

int64_t KvCacheBytesPerToken(const ModelConfig& c, bool latent) {
  const int64_t per_layer = c.is_mla() && latent ? c.kv_lora_rank + c.qk_rope_head_dim
                                                 : c.kv_heads() * (c.qk_head_dim() + c.v_dim());
  return c.num_hidden_layers * per_layer * static_cast<int64_t>(sizeof(float));
}

}  // namespace zerorl::model
