// Model: parameter layout (HF names, one buffer), random init, load/save,
// weight copy, router-bias updates.
#include "model/model.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/transformer.h"

namespace zerorl::model {
uint64_t MixSeed(uint64_t seed, uint64_t i) {
  uint64_t z = seed ^ (i * 0x9E3779B97F4A7C15ull) ^ 0xD1B54A32D192ED03ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Model::Model(const ModelConfig& config, ops::Backend* backend)
    : config_(config),
      ops_(backend ? backend : ops::CpuBackend()),
      params_(ops_, "model weights"),
      grads_(ops_, "model gradients") {}
Model::~Model() = default;

namespace internal {
absl::Status OutOfMemoryError(const char* doing, const std::bad_alloc& e) {
  return absl::ResourceExhaustedError(absl::StrCat("out of memory ", doing, ": ", e.what()));
}

void LayerActs::Bind(ops::Backend* b) {
  for (F* f : {&x_in, &ln1, &rstd1, &qa, &qa_rstd, &qa_n, &kva, &ckv_rstd, &ckv, &kv, &qkv, &qn_rstd, &kn_rstd, &q, &k,
               &v, &probs, &attn, &x_mid, &ln2, &rstd2, &h, &a, &rlogits, &scores, &topk_w, &row_w, &ex_x, &ex_h,
               &ex_a, &ex_y, &sh_h, &sh_a, &lat, &qlat, &olat})
    f->bind(b, "activations");
  for (I* i : {&topk_idx, &row_token, &row_slot}) i->bind(b, "routing indices");
}
}  // namespace internal

internal::Net Model::net() { return internal::Net{&config_, ops_, params_.data(), grads_.data()}; }

// Registers every tensor in HF order. Pointers are offsets until the buffers
// exist; Layout() runs twice (count, then bind).
void Model::Layout() {
  const ModelConfig& c = config_;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, V = c.vocab_size;
  refs_.clear();
  layers_.clear();
  int64_t off = 0;
  float* base = params_.empty() ? nullptr : params_.data();
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool trainable = true) -> float* {
    int64_t size = 1;
    for (int64_t d : shape) size *= d;
    TensorRef r;
    r.name = name;
    r.shape = std::move(shape);
    r.size = size;
    r.trainable = trainable;
    r.ops = ops_;
    r.data = base ? base + off : nullptr;
    r.grad = base ? grads_.data() + off : nullptr;
    refs_.push_back(r);
    off += size;
    return r.data;
  };
  embed_ = add("model.embed_tokens.weight", {V, D});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    auto L = std::make_unique<internal::Layer>();
    const std::string p = absl::StrCat("model.layers.", l, ".");
    L->moe = c.IsMoeLayer(l);
    L->ln1 = add(p + "input_layernorm.weight", {D});
    if (c.is_mla()) {
      const int64_t dq = c.qk_head_dim(), qr = c.q_lora_rank, kvr = c.kv_lora_rank, rd = c.qk_rope_head_dim;
      if (qr > 0) {
        L->q_a_proj = add(p + "self_attn.q_a_proj.weight", {qr, D});
        L->q_a_ln = add(p + "self_attn.q_a_layernorm.weight", {qr});
        L->q_proj = add(p + "self_attn.q_b_proj.weight", {H * dq, qr});
      } else {
        L->q_proj = add(p + "self_attn.q_proj.weight", {H * dq, D});
      }
      L->kv_a_proj = add(p + "self_attn.kv_a_proj_with_mqa.weight", {kvr + rd, D});
      L->kv_a_ln = add(p + "self_attn.kv_a_layernorm.weight", {kvr});
      L->kv_b_proj = add(p + "self_attn.kv_b_proj.weight", {H * (c.qk_nope_head_dim + c.v_head_dim), kvr});
      L->o_proj = add(p + "self_attn.o_proj.weight", {D, H * c.v_head_dim});
    } else {
      const int64_t hd = c.head_dim, Hkv = c.num_key_value_heads;
      L->qkv_proj = add(p + "self_attn.q_proj.weight", {H * hd, D});
      add(p + "self_attn.k_proj.weight", {Hkv * hd, D});
      add(p + "self_attn.v_proj.weight", {Hkv * hd, D});
      L->o_proj = add(p + "self_attn.o_proj.weight", {D, H * hd});
      L->q_norm = add(p + "self_attn.q_norm.weight", {hd});
      L->k_norm = add(p + "self_attn.k_norm.weight", {hd});
    }
    L->ln2 = add(p + "post_attention_layernorm.weight", {D});
    auto swiglu = [&](const std::string& q, int64_t I, float** gu, float** d) {
      *gu = add(q + "gate_proj.weight", {I, D});
      add(q + "up_proj.weight", {I, D});  // directly after gate: one [2I, D] matrix
      *d = add(q + "down_proj.weight", {D, I});
    };
    if (!L->moe) {
      swiglu(p + "mlp.", c.intermediate_size, &L->gate_up, &L->down);
    } else {
      const int64_t E = c.n_routed_experts, Im = c.moe_intermediate_size;
      L->router = add(p + "mlp.gate.weight", {E, D});
      if (c.use_correction_bias) L->router_bias = add(p + "mlp.gate.e_score_correction_bias", {E}, false);
      L->ex_gate_up.resize(E);
      L->ex_down.resize(E);
      for (int64_t e = 0; e < E; ++e)
        swiglu(absl::StrCat(p, "mlp.experts.", e, "."), Im, &L->ex_gate_up[e], &L->ex_down[e]);
      if (c.n_shared_experts > 0)
        swiglu(p + "mlp.shared_experts.", c.n_shared_experts * Im, &L->sh_gate_up, &L->sh_down);
    }
    layers_.push_back(std::move(L));
  }
  norm_ = add("model.norm.weight", {D});
  lm_head_ = c.tie_word_embeddings ? embed_ : add("lm_head.weight", {V, D});
  num_params_ = off;
}

// Fills the weights on the host (in `host`, NumParams() floats) and uploads them.
void Model::InitRandom(uint64_t seed) {
  std::vector<float> staging(on_host() ? 0 : num_params_);
  float* host = on_host() ? params_.data() : staging.data();
  std::mt19937_64 rng(seed);
  auto uniform = [&] { return (static_cast<double>(rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0); };
  const float out_scale = 1.f / std::sqrt(2.f * static_cast<float>(config_.num_hidden_layers));
  for (auto& r : refs_) {
    float* data = host + (r.data - params_.data());
    if (r.shape.size() < 2) {
      const bool bias = r.name.find("e_score_correction_bias") != std::string::npos;
      std::fill(data, data + r.size, bias ? 0.f : 1.f);
      continue;
    }
    const bool out_proj = r.name.find("o_proj") != std::string::npos || r.name.find("down_proj") != std::string::npos;
    const double stddev = 0.02 * (out_proj ? out_scale : 1.f);
    for (int64_t i = 0; i < r.size; i += 2) {  // Box-Muller, two normals per draw
      double u1 = uniform(), u2 = uniform(), rad = std::sqrt(-2.0 * std::log(u1));
      data[i] = static_cast<float>(stddev * rad * std::cos(2 * M_PI * u2));
      if (i + 1 < r.size) data[i + 1] = static_cast<float>(stddev * rad * std::sin(2 * M_PI * u2));
    }
  }
  if (!on_host()) UploadParams(host);
}

absl::StatusOr<std::unique_ptr<Model>> Model::Create(const ModelConfig& config, uint64_t seed,
                                                     ops::Backend* backend) {
  ZRL_RETURN_IF_ERROR(config.Validate());
  std::unique_ptr<Model> m(new Model(config, backend));
  try {
    m->Layout();
    m->params_.assign(m->num_params_, 0.f);
    m->grads_.assign(m->num_params_, 0.f);
    m->Layout();
    m->InitRandom(seed);
  } catch (const std::bad_alloc& e) {
    return internal::OutOfMemoryError("creating the model", e);
  }
  m->expert_loads_.assign(config.num_hidden_layers, {});
  return m;
}

namespace {

// A model with a NaN or infinite weight generates garbage (all <pad>) without
// any error, so such a file is refused at load, naming the tensor.
absl::Status CheckFiniteWeights(const std::string& name, const float* data, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(data[i]))
      return absl::InvalidArgumentError(absl::StrCat("tensor ", name, " holds a non-finite value (", data[i],
                                                     ") at index ", i, "; refusing to load it"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Model::LoadWeights(const SafetensorsReader& reader) {
  std::vector<float> staging;
  for (auto& r : refs_) {
    if (on_host()) {
      ZRL_RETURN_IF_ERROR(reader.ReadF32(r.name, r.shape, r.data));
      ZRL_RETURN_IF_ERROR(CheckFiniteWeights(r.name, r.data, r.size));
      continue;
    }
    staging.resize(r.size);
    ZRL_RETURN_IF_ERROR(reader.ReadF32(r.name, r.shape, staging.data()));
    ZRL_RETURN_IF_ERROR(CheckFiniteWeights(r.name, staging.data(), r.size));
    UploadTensor(r, staging.data());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& dir, ops::Backend* backend) {
  ZRL_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(dir));
  ZRL_ASSIGN_OR_RETURN(std::unique_ptr<Model> m, Create(config, 0, backend));
  ZRL_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsReader> reader, SafetensorsReader::Open(dir));
  ZRL_RETURN_IF_ERROR(m->LoadWeights(*reader));
  return m;
}

absl::Status Model::Save(const std::string& dir, DType dtype) const {
  if (dtype == DType::kF16) return absl::InvalidArgumentError("Model::Save writes F32 or BF16");
  mkdir(dir.c_str(), 0755);
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return absl::InternalError(absl::StrCat("cannot create directory ", dir));
  {
    const std::string path = dir + "/config.json";
    std::ofstream out(path);
    out << config_.ToJson();
    if (!out.good()) return absl::InternalError(absl::StrCat("writing ", path, " failed"));
  }
  std::vector<float> staging(on_host() ? 0 : num_params_);
  if (!on_host()) DownloadParams(staging.data());
  std::vector<SafetensorsTensor> ts;
  for (const auto& r : refs_)
    ts.push_back({r.name, r.shape, on_host() ? r.data : staging.data() + (r.data - params_.data())});
  return WriteSafetensors(dir + "/model.safetensors", ts, dtype, {{"format", "pt"}});
}

void Model::DownloadTensor(const TensorRef& t, float* host) const {
  ops_->Download(host, t.data, t.size * static_cast<int64_t>(sizeof(float)));
}
void Model::UploadTensor(const TensorRef& t, const float* host) {
  ops_->Upload(t.data, host, t.size * static_cast<int64_t>(sizeof(float)));
}
void Model::DownloadParams(float* host) const {
  ops_->Download(host, params_.data(), num_params_ * static_cast<int64_t>(sizeof(float)));
}
void Model::UploadParams(const float* host) {
  ops_->Upload(params_.data(), host, num_params_ * static_cast<int64_t>(sizeof(float)));
}

std::vector<TensorRef> Model::Parameters() { return refs_; }

absl::Status Model::CopyWeightsFrom(const Model& other) {
  if (other.config_.ToJson() != config_.ToJson() || other.num_params_ != num_params_)
    return absl::FailedPreconditionError("CopyWeightsFrom: the models have different configs");
  if (other.ops_ == ops_) {
    ops_->Copy(params_.data(), other.params_.data(), num_params_ * static_cast<int64_t>(sizeof(float)));
  } else if (other.on_host()) {
    UploadParams(other.params_.data());
  } else {
    std::vector<float> staging(num_params_);
    other.DownloadParams(staging.data());
    UploadParams(staging.data());
  }
  return absl::OkStatus();
}

void Model::ZeroGrad() { ops_->Fill(grads_.data(), 0.f, num_params_); }

void Model::UpdateRouterBias(float gamma) {
  for (size_t l = 0; l < layers_.size(); ++l) {
    float* bias_dev = layers_[l]->router_bias;
    const auto& loads = expert_loads_[l];
    if (!bias_dev || loads.empty()) continue;
    const int64_t bytes = static_cast<int64_t>(loads.size() * sizeof(float));
    std::vector<float> bias(loads.size());
    ops_->Download(bias.data(), bias_dev, bytes);
    double mean = 0;
    for (int64_t v : loads) mean += static_cast<double>(v);
    mean /= static_cast<double>(loads.size());
    for (size_t e = 0; e < loads.size(); ++e) {
      double d = mean - static_cast<double>(loads[e]);
      bias[e] += gamma * static_cast<float>((d > 0) - (d < 0));
    }
    ops_->Upload(bias_dev, bias.data(), bytes);
  }
}

}  // namespace zerorl::model
