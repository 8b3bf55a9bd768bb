// Model: a DeepSeek-V3 / Qwen3-MoE transformer (see model/config.h) — weights,
// training forward/backward, and KV-cache generation.
//
// Parameters live in one contiguous float buffer (one more for gradients), in
// HF tensor-name order; `Parameters()` names every tensor. Training follows
// llm.c: TrainForward saves the activations, TrainBackward walks them back
// op by op and ACCUMULATES into the grad buffer (call ZeroGrad between steps).
// Generation keeps a KVCache per sequence (roped K and V per layer; for MLA by
// default the compressed latent c_kv and k_pe, see MlaCache); the G samples of a prompt share one prefill by forking its cache,
// and tokens are sampled by the backend (SampleRows), so only the drawn tokens
// and their logprobs come back to the host each step.
//
// Backends: all numerics go through model/ops, on the backend given at
// Create/Load (the CPU backend by default; ops::CudaBackend(device) for a
// GPU). Weights, gradients, activations and KV caches live in that backend's
// memory: on a GPU, param_data(), grad_data() and TensorRef::data/grad are
// device pointers — use DownloadTensor/UploadTensor (or the whole-buffer
// variants) to reach them from the host. Running out of backend memory is a
// RESOURCE_EXHAUSTED error naming the buffer, the bytes asked for and the
// bytes free. Not thread-safe: one caller at a time; CopyWeightsFrom between
// decode steps swaps weights safely.
//
// Random init (Create): every matrix ~ N(0, 0.02^2) (HF initializer_range),
// except output projections (o_proj, down_proj) scaled by 1/sqrt(2*layers);
// RMSNorm weights 1; e_score_correction_bias 0. Deterministic in the seed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/ops/buffer.h"
#include "model/ops/ops.h"
#include "model/safetensors.h"
#include "model/sampler.h"

namespace zerorl::model {
namespace internal {
struct Layer;
struct LayerActs;
struct TrainState;
struct Net;
}  // namespace internal

// One named parameter tensor; data/grad point into the model's buffers.
struct TensorRef {
  std::string name;            // HF name, e.g. "model.layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // HF shape ([out, in] for linear weights)
  float* data = nullptr;       // size floats (backend memory)
  float* grad = nullptr;       // size floats (backend memory)
  int64_t size = 0;
  bool trainable = true;       // false: e_score_correction_bias (moved by UpdateRouterBias)
  ops::Backend* ops = nullptr; // the backend whose memory data/grad are in (nullptr: CPU)
};

// B sequences padded to T tokens. Position t predicts tokens[b, t+1]; targets
// at t+1 >= lengths[b] are padding (logp 0, gradient ignored).
struct TrainBatch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> tokens;   // [B, T]
  std::vector<int32_t> lengths;  // [B], each in [1, T]
  // Routing replay (R3): empty (the model routes every token itself), or
  // [B, T, moe_layers, K] expert ids (model/routing_record.h's layout) that
  // the forward and backward use instead of the router's own top-k; the
  // combine weights still come from the current router scores of those
  // experts. A (token, layer) whose K entries are all -1 is routed by the
  // model itself. Ids must be in [0, E) and distinct per (token, layer).
  std::vector<int32_t> routed_experts;
};

struct TrainOptions {
  bool entropy = false;        // fill TrainOutput::entropy
  bool keep_logits = false;    // fill TrainOutput::logits
  float balance_alpha = 0.f;   // sequence-wise balance loss weight (DeepSeek-V3 eq. 17-20);
                               // its gradient is added inside TrainBackward
};

struct TrainOutput {
  std::vector<float> logp;     // [B, T-1] log p(tokens[b,t+1] | tokens[b,<=t])
  std::vector<float> entropy;  // [B, T-1] when requested
  std::vector<float> logits;   // [B, T, V] when requested
  float balance_loss = 0.f;    // alpha * sum over MoE layers, mean over sequences
  // Routing replay: (token, layer) pairs of real tokens that were replayed,
  // and of those, how many the router's own top-k would have routed to a
  // different set of experts.
  int64_t replayed_routes = 0;
  int64_t mismatched_routes = 0;
};

// How a deepseek_v3 (MLA) model caches attention state for generation.
enum class MlaCache {
  // Per token and layer the normalised latent c_kv [kv_lora_rank] and the
  // roped k_pe [qk_rope_head_dim] (DeepSeek-V3: 576 floats instead of
  // 128 x (192 + 128), ~1/71). Decode attends in the latent space: W_UK is
  // absorbed into the query, W_UV into the output. A prefill into an empty
  // cache still attends in the expanded form (fewer MACs per query-key pair)
  // and caches only the latent rows.
  kLatent,
  // Roped K [H, dk] and V [H, dv] per token and layer, as for GQA.
  kExpanded,
};

// KV cache of one sequence, in the model's backend memory. Per layer either
// roped keys [len, Hkv*dk] and values [len, Hkv*dv] (GQA, and MLA with
// MlaCache::kExpanded) or latent rows [len, kv_lora_rank + qk_rope_head_dim]
// = [c_kv | roped k_pe] (MLA with MlaCache::kLatent); the first forward that
// fills it (or Model::ReserveCache) fixes the layout. Fork() is a deep copy on
// the backend (device-to-device on a GPU) keeping the reserved capacity.
class KVCache {
 public:
  int64_t length() const { return len_; }
  // Backend bytes held (allocated capacity over all layers).
  int64_t bytes() const;
  KVCache Fork() const;

 private:
  friend class Model;
  enum class Layout { kNone, kKV, kLatent };
  int64_t len_ = 0;
  Layout layout_ = Layout::kNone;
  // kKV: [layers][len * Hkv * dk], [layers][len * Hkv * dv].
  // kLatent: k_ [layers][len * (kv_lora_rank + qk_rope_head_dim)], v_ unused.
  std::vector<ops::Buf<float>> k_, v_;
};

enum class FinishReason { kStop, kLength };

struct GeneratedSample {
  std::vector<int32_t> tokens;            // new tokens, the stop token included when hit
  std::vector<float> logprobs;            // raw policy (temperature 1), per token
  std::vector<float> sampling_logprobs;   // under the sampling distribution
  FinishReason finish = FinishReason::kLength;
};

class Model {
 public:
  // A randomly initialised model (scheme in the banner). INVALID_ARGUMENT on a bad config.
  // backend nullptr: the CPU backend. The model does not own the backend.
  static absl::StatusOr<std::unique_ptr<Model>> Create(const ModelConfig& config, uint64_t seed,
                                                       ops::Backend* backend = nullptr);
  // DIR/config.json + DIR/model.safetensors or sharded model.safetensors.index.json
  // (F32/BF16/F16). Errors name the file and tensor (missing, wrong shape, truncated).
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& dir, ops::Backend* backend = nullptr);
  // Writes DIR/config.json and DIR/model.safetensors (F32 or BF16), HF names.
  absl::Status Save(const std::string& dir, DType dtype = DType::kF32) const;
  // Loads tensors into this model from an open reader (shapes must match).
  absl::Status LoadWeights(const SafetensorsReader& reader);

  ~Model();
  const ModelConfig& config() const { return config_; }
  std::vector<TensorRef> Parameters();
  int64_t NumParams() const { return num_params_; }
  float* param_data() { return params_.data(); }  // NumParams() floats, Parameters() order (backend memory)
  float* grad_data() { return grads_.data(); }
  // True when param_data() etc. are host pointers (the CPU backend).
  bool on_host() const { return ops_->host_memory(); }
  // Host copies of one tensor (t.size floats) or of all weights (NumParams()).
  void DownloadTensor(const TensorRef& t, float* host) const;
  void UploadTensor(const TensorRef& t, const float* host);
  void DownloadParams(float* host) const;
  void UploadParams(const float* host);
  // Same-config check (FAILED_PRECONDITION otherwise), then a buffer copy
  // (through the host when the models live on different backends).
  absl::Status CopyWeightsFrom(const Model& other);
  void ZeroGrad();

  // ---- training ----
  absl::Status TrainForward(const TrainBatch& batch, const TrainOptions& options, TrainOutput* out);
  // dlogp [B, T-1] (and optional dentropy [B, T-1]): d(objective)/d(logp).
  // For a plain cross-entropy loss: dlogp = -mask / count. Requires a
  // preceding TrainForward; accumulates into the grads.
  absl::Status TrainBackward(const float* dlogp, const float* dentropy = nullptr);
  // Tokens routed to each expert in the last TrainForward: [layer][E]
  // (empty vectors for dense layers). Padding tokens are not counted. Under
  // routing replay these are the replayed picks.
  const std::vector<std::vector<int64_t>>& ExpertLoads() const { return expert_loads_; }
  // Aux-loss-free balancing: bias_e += gamma * sign(mean_load - load_e) per MoE
  // layer, from ExpertLoads(). No-op without e_score_correction_bias.
  void UpdateRouterBias(float gamma);

  // ---- generation ----
  // The cache layout of deepseek_v3 models (default kLatent); GQA models
  // always cache K/V. Caches filled under one layout are FAILED_PRECONDITION
  // under the other.
  void set_mla_cache(MlaCache mode) { mla_cache_ = mode; }
  MlaCache mla_cache() const { return mla_cache_; }
  bool latent_cache() const { return config_.is_mla() && mla_cache_ == MlaCache::kLatent; }
  // KV-cache bytes per token (all layers) in this model's cache layout.
  int64_t KvBytesPerToken() const { return KvCacheBytesPerToken(config_, latent_cache()); }
  // Allocates room for `tokens` positions in every layer of `cache` (empty or
  // partly filled, contents kept), so forwards up to that length allocate no
  // cache memory: cache->bytes() == tokens * KvBytesPerToken() afterwards when
  // it held less. RESOURCE_EXHAUSTED when the backend is out of memory.
  absl::Status ReserveCache(KVCache* cache, int64_t tokens);
  // Appends tokens to the cache (which may already hold a prefix) and returns
  // the logits of the last token [V] (all positions [n, V] when all_logits).
  // routes (optional, routing replay) gets the experts each new token was
  // routed to: [n, moe_layers, K] (model/routing_record.h's layout).
  absl::Status Prefill(const std::vector<int32_t>& tokens, KVCache* cache, std::vector<float>* logits,
                       bool all_logits = false, std::vector<int32_t>* routes = nullptr);
  // One new token for each of n sequences of any lengths; logits [n, V];
  // routes (optional) [n, moe_layers, K] as for Prefill.
  absl::Status DecodeStep(const std::vector<KVCache*>& caches, const std::vector<int32_t>& tokens,
                          std::vector<float>* logits, std::vector<int32_t>* routes = nullptr);
  // G samples for each prompt: one prefill per prompt, forked G ways, decoded
  // together. Sample g of prompt p draws from Sampler(params, MixSeed(seed, p*G+g)).
  // Stops at a token in stop_ids or after max_new tokens. Result [P*G], prompt-major.
  absl::StatusOr<std::vector<GeneratedSample>> Generate(
      const std::vector<std::vector<int32_t>>& prompts, int64_t G, const SamplerParams& params,
      uint64_t seed, const std::vector<int32_t>& stop_ids, int64_t max_new);

  ops::Backend* backend() const { return ops_; }

 private:
  Model(const ModelConfig& config, ops::Backend* backend);
  void Layout();
  void InitRandom(uint64_t seed);
  internal::Net net();
  absl::Status TrainForwardImpl(const TrainBatch& batch, const TrainOptions& options, TrainOutput* out);
  absl::Status TrainBackwardImpl(const float* dlogp, const float* dentropy);
  absl::Status GenerateImpl(const std::vector<std::vector<int32_t>>& prompts, int64_t G, const SamplerParams& params,
                            uint64_t seed, const std::vector<int32_t>& stop_ids, int64_t max_new,
                            std::vector<GeneratedSample>* out);
  // logits [rows, V] stay in backend memory; InferToHost copies them out.
  absl::Status InferForward(const std::vector<KVCache*>& caches, const std::vector<std::vector<int32_t>>& toks,
                            ops::Buf<float>* logits, bool all_logits, std::vector<int32_t>* routes = nullptr);
  // Binds cache's buffers to this backend and fixes its layout (an error when
  // it was filled under the other one).
  absl::Status PrepareCache(KVCache* cache);
  absl::Status InferToHost(const std::vector<KVCache*>& caches, const std::vector<std::vector<int32_t>>& toks,
                           std::vector<float>* logits, bool all_logits, std::vector<int32_t>* routes);

  ModelConfig config_;
  ops::Backend* ops_;
  MlaCache mla_cache_ = MlaCache::kLatent;
  int64_t num_params_ = 0;
  ops::Buf<float> params_, grads_;
  std::vector<TensorRef> refs_;
  std::vector<std::unique_ptr<internal::Layer>> layers_;
  float* embed_ = nullptr;   // [V, D]
  float* norm_ = nullptr;    // [D]
  float* lm_head_ = nullptr; // [V, D] (== embed_ when tied)
  std::unique_ptr<internal::TrainState> train_;   // activations of the last TrainForward
  std::unique_ptr<internal::LayerActs> scratch_;  // inference scratch, reused across calls
  std::vector<std::vector<int64_t>> expert_loads_;
};

uint64_t MixSeed(uint64_t seed, uint64_t i);  // splitmix64 of seed ^ i

}  // namespace zerorl::model
