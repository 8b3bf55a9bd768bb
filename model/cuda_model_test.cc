// The whole Model on the CUDA backend against the same model on the CPU
// backend (the fp32 reference): tiny MoE configs of both families — a
// DeepSeek-V3-style MLA model with group-limited sigmoid routing, correction
// bias and scaled weights, and a Qwen3-MoE GQA model with softmax routing —
// are created on the CPU and their weights copied to a CUDA model
// (UploadParams). Checked: prefill logits, training logp / entropy / grads /
// expert loads, greedy and sampled generation (same tokens), and a GRPO-like
// step (forward, backward, ClipGradNorm, AdamW) giving the same weights; the
// latent MLA cache on the device against the expanded cache on the CPU.
// fp32 GEMMs (GemmPrecision::kFp32) get tight tolerances; the bf16 tensor-core
// path loose ones. Without a CUDA device every test SKIPS with the reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/ops/cuda/cuda_backend.h"
#include "model/optimizer.h"
#include "model/test_util.h"

// Built twice: against the real CUDA backend (runs on a GPU, skips without
// one) and, with ZERORL_CUDA_EMU, against the same backend over the emulated
// runtime (model/ops/cuda/emu/), where the suites get an Emu prefix.
#ifdef ZERORL_CUDA_EMU
#define CudaModel EmuCudaModel
#define CudaModelMemory EmuCudaModelMemory
#endif

namespace zerorl::model {
namespace {

using Vec = std::vector<float>;

// max |got - want| / max |want|: one relative number per tensor.
double RelErr(const Vec& got, const Vec& want) {
  double mx = 1e-12, err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    mx = std::max(mx, std::abs(static_cast<double>(want[i])));
    err = std::max(err, std::abs(static_cast<double>(got[i]) - want[i]));
  }
  return err / mx;
}

std::string Family(const ::testing::TestParamInfo<std::string>& info) {
  return info.param.find("deepseek") != std::string::npos ? "DeepseekMlaGroupLimited" : "Qwen3MoeGqa";
}

// Larger than test_util's defaults where it matters for the device path: a
// vocabulary big enough for the sampling kernels to see many blocks' worth,
// 16 experts with 4 per token (DeepSeek: 4 groups, 2 kept, bias, scale 2.5).
std::vector<std::string> Configs() {
  return {testing::TinyDeepseekJson(R"({"vocab_size":3000,"q_lora_rank":10,"n_routed_experts":16,
            "num_experts_per_tok":4,"n_group":4,"topk_group":2,"routed_scaling_factor":2.5})"),
          testing::TinyQwenJson(R"({"vocab_size":3000,"num_experts":16,"num_experts_per_tok":4})")};
}

Vec Params(Model& m) {
  Vec w(static_cast<size_t>(m.NumParams()));
  m.DownloadParams(w.data());
  return w;
}
Vec Grads(Model& m) {
  Vec g(static_cast<size_t>(m.NumParams()));
  m.backend()->Download(g.data(), m.grad_data(), m.NumParams() * 4);
  return g;
}

class CudaModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    absl::Status st = ops::CudaDeviceStatus(0);
    if (!st.ok()) GTEST_SKIP() << st.message();
    auto f = ops::NewCudaBackend({0, ops::GemmPrecision::kFp32});
    auto b = ops::NewCudaBackend({0, ops::GemmPrecision::kBf16});
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_TRUE(b.ok()) << b.status();
    fp32_ = std::move(*f);
    bf16_ = std::move(*b);
    config_ = testing::MustParse(GetParam());
    auto cpu = Model::Create(config_, 11);
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    cpu_ = std::move(*cpu);
    // Non-zero correction bias (DeepSeek), so selection != weights is exercised.
    for (auto& t : cpu_->Parameters())
      if (t.name.find("e_score_correction_bias") != std::string::npos) {
        Vec b(static_cast<size_t>(t.size));
        std::mt19937 rng(2);
        std::normal_distribution<float> d(0.f, 0.05f);
        for (auto& x : b) x = d(rng);
        cpu_->UploadTensor(t, b.data());
      }
  }
  // A CUDA copy of the CPU model on `backend`.
  std::unique_ptr<Model> OnDevice(ops::Backend* backend) {
    auto m = Model::Create(config_, 99, backend);
    EXPECT_TRUE(m.ok()) << m.status();
    if (!m.ok()) return nullptr;
    Vec w = Params(*cpu_);
    (*m)->UploadParams(w.data());
    EXPECT_EQ(Params(**m), w) << "UploadParams / DownloadParams round trip";
    return std::move(*m);
  }
  TrainBatch Batch() const {
    TrainBatch b;
    b.B = 3;
    b.T = 11;
    b.lengths = {11, 7, 3};
    std::mt19937 rng(4);
    for (int64_t i = 0; i < b.B * b.T; ++i) b.tokens.push_back(static_cast<int32_t>(rng() % config_.vocab_size));
    return b;
  }

  std::unique_ptr<ops::Backend> fp32_, bf16_;  // declared first: outlive the models
  ModelConfig config_;
  std::unique_ptr<Model> cpu_;
};

TEST_P(CudaModel, PrefillLogitsMatchCpu) {
  std::vector<int32_t> prompt;
  for (int i = 0; i < 13; ++i) prompt.push_back((i * 37 + 5) % static_cast<int32_t>(config_.vocab_size));
  KVCache cc;
  Vec want;
  ASSERT_TRUE(cpu_->Prefill(prompt, &cc, &want, /*all_logits=*/true).ok());
  ASSERT_EQ(want.size(), prompt.size() * config_.vocab_size);
  for (ops::Backend* b : {fp32_.get(), bf16_.get()}) {
    SCOPED_TRACE(b->name());
    auto m = OnDevice(b);
    ASSERT_TRUE(m);
    // In two chunks: a prefix, then the rest appended to the same device cache.
    KVCache gc;
    Vec a, rest;
    ASSERT_TRUE(m->Prefill({prompt.begin(), prompt.begin() + 5}, &gc, &a, true).ok());
    ASSERT_TRUE(m->Prefill({prompt.begin() + 5, prompt.end()}, &gc, &rest, true).ok());
    EXPECT_EQ(gc.length(), static_cast<int64_t>(prompt.size()));
    a.insert(a.end(), rest.begin(), rest.end());
    ASSERT_EQ(a.size(), want.size());
    EXPECT_LT(RelErr(a, want), b == fp32_.get() ? 1e-4 : 5e-2);
    // One decode step over the cache.
    Vec dc, dg;
    KVCache cc2 = cc.Fork();
    ASSERT_TRUE(cpu_->DecodeStep({&cc2}, {7}, &dc).ok());
    ASSERT_TRUE(m->DecodeStep({&gc}, {7}, &dg).ok());
    EXPECT_LT(RelErr(dg, dc), b == fp32_.get() ? 1e-4 : 5e-2);
  }
}

TEST_P(CudaModel, TrainForwardBackwardMatchCpu) {
  const TrainBatch batch = Batch();
  TrainOptions o;
  o.entropy = true;
  o.balance_alpha = 0.01f;
  const int64_t n = batch.B * (batch.T - 1);
  Vec dlogp(n), dent(n);
  std::mt19937 rng(8);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& x : dlogp) x = nd(rng);
  for (auto& x : dent) x = 0.1f * nd(rng);
  cpu_->ZeroGrad();
  TrainOutput want;
  ASSERT_TRUE(cpu_->TrainForward(batch, o, &want).ok());
  ASSERT_TRUE(cpu_->TrainBackward(dlogp.data(), dent.data()).ok());
  const Vec want_g = Grads(*cpu_);
  const auto want_loads = cpu_->ExpertLoads();
  for (ops::Backend* b : {fp32_.get(), bf16_.get()}) {
    SCOPED_TRACE(b->name());
    const bool tight = b == fp32_.get();
    auto m = OnDevice(b);
    ASSERT_TRUE(m);
    m->ZeroGrad();
    TrainOutput got;
    ASSERT_TRUE(m->TrainForward(batch, o, &got).ok());
    ASSERT_TRUE(m->TrainBackward(dlogp.data(), dent.data()).ok());
    EXPECT_LT(RelErr(got.logp, want.logp), tight ? 1e-4 : 3e-2);
    EXPECT_LT(RelErr(got.entropy, want.entropy), tight ? 1e-4 : 3e-2);
    EXPECT_NEAR(got.balance_loss, want.balance_loss, (tight ? 1e-4 : 3e-2) * std::abs(want.balance_loss) + 1e-7);
    if (tight) {
      EXPECT_EQ(m->ExpertLoads(), want_loads);
    }
    const Vec g = Grads(*m);
    int compared = 0;
    for (const TensorRef& t : cpu_->Parameters()) {
      if (!t.trainable) continue;
      const int64_t off = t.data - cpu_->param_data();
      Vec gw(want_g.begin() + off, want_g.begin() + off + t.size), gg(g.begin() + off, g.begin() + off + t.size);
      double mx = 0;
      for (float v : gw) mx = std::max(mx, static_cast<double>(std::abs(v)));
      if (mx < 1e-7) continue;  // e.g. experts no token was routed to
      // bf16: router near-ties may route a token differently, so per-tensor
      // errors are looser than the GEMM rounding alone.
      EXPECT_LT(RelErr(gg, gw), tight ? 2e-3 : 0.25) << t.name;
      ++compared;
    }
    EXPECT_GT(compared, 10);
  }
}

TEST_P(CudaModel, GenerateMatchesCpuTokens) {
  const std::vector<std::vector<int32_t>> prompts = {{1, 5, 9, 14, 3}, {1, 22, 7}};
  std::vector<SamplerParams> params(3);
  params[0].greedy = true;
  params[1].temperature = 0.8f, params[1].top_k = 20, params[1].top_p = 0.9f;
  params[2].temperature = 1.0f;  // untruncated
  auto m = OnDevice(fp32_.get());
  ASSERT_TRUE(m);
  for (const SamplerParams& sp : params) {
    SCOPED_TRACE(sp.greedy ? "greedy" : "sampled");
    auto want = cpu_->Generate(prompts, 3, sp, 17, {}, 8);
    auto got = m->Generate(prompts, 3, sp, 17, {}, 8);
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), want->size());
    for (size_t i = 0; i < want->size(); ++i) {
      EXPECT_EQ((*got)[i].tokens, (*want)[i].tokens) << "sample " << i;
      if ((*got)[i].tokens != (*want)[i].tokens) continue;
      EXPECT_LT(RelErr((*got)[i].logprobs, (*want)[i].logprobs), 1e-4) << "sample " << i;
      EXPECT_LT(RelErr((*got)[i].sampling_logprobs, (*want)[i].sampling_logprobs), 1e-4) << "sample " << i;
    }
  }
  // bf16: runs and gives valid tokens with logprobs <= 0.
  auto mb = OnDevice(bf16_.get());
  ASSERT_TRUE(mb);
  auto r = mb->Generate(prompts, 2, params[1], 3, {}, 6);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const auto& s : *r) {
    ASSERT_EQ(s.tokens.size(), 6u);
    for (size_t i = 0; i < s.tokens.size(); ++i) {
      EXPECT_GE(s.tokens[i], 0);
      EXPECT_LT(s.tokens[i], config_.vocab_size);
      EXPECT_LE(s.logprobs[i], 1e-6f);
    }
  }
}

// The latent MLA cache on the device (weight-absorbed decode through the
// backend's GEMMs and its attention kernel as MQA over [c_kv | k_pe] rows)
// against the expanded cache on the CPU: same tokens, same logprobs. For GQA
// both settings are the K/V cache.
TEST_P(CudaModel, LatentCacheOnDeviceMatchesExpandedOnCpu) {
  const std::vector<std::vector<int32_t>> prompts = {{1, 5, 9, 14, 3, 8, 2, 19}, {1, 22, 7}};
  SamplerParams sp;
  sp.temperature = 1.0f;
  auto m = OnDevice(fp32_.get());
  ASSERT_TRUE(m);
  m->set_mla_cache(MlaCache::kLatent);
  cpu_->set_mla_cache(MlaCache::kExpanded);
  auto want = cpu_->Generate(prompts, 2, sp, 5, {}, 12);
  cpu_->set_mla_cache(MlaCache::kLatent);
  auto got = m->Generate(prompts, 2, sp, 5, {}, 12);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), want->size());
  for (size_t i = 0; i < want->size(); ++i) {
    ASSERT_EQ((*got)[i].tokens, (*want)[i].tokens) << "sample " << i;
    EXPECT_LT(RelErr((*got)[i].logprobs, (*want)[i].logprobs), 1e-4) << "sample " << i;
  }
  KVCache c;
  ASSERT_TRUE(m->ReserveCache(&c, 20).ok());
  EXPECT_EQ(c.bytes(), 20 * KvCacheBytesPerToken(config_, /*latent=*/true));
}

// Forward, backward with advantage-like dlogp, grad clipping and two AdamW
// steps, on both backends from the same weights: the same new weights.
TEST_P(CudaModel, GrpoStepMatchesCpu) {
  const TrainBatch batch = Batch();
  const int64_t n = batch.B * (batch.T - 1);
  Vec dlogp(n);
  for (int64_t i = 0; i < n; ++i) dlogp[i] = (i % 3 == 0 ? 0.7f : -0.4f) / static_cast<float>(n);
  // eps 1e-3 keeps the update a smooth function of the gradient (with 1e-8 a
  // gradient that is ~0 on both backends may differ in sign and flip the step).
  const AdamWConfig ac{0.9f, 0.95f, 1e-3f, 0.01f};
  const float lr = 1e-2f;
  auto step = [&](Model& m, AdamW& opt, float* norm) {
    m.ZeroGrad();
    TrainOutput out;
    ASSERT_TRUE(m.TrainForward(batch, {}, &out).ok());
    ASSERT_TRUE(m.TrainBackward(dlogp.data()).ok());
    *norm = ClipGradNorm(m.Parameters(), 0.05f);
    ASSERT_TRUE(opt.Step(m.Parameters(), lr).ok());
  };
  const Vec w0 = Params(*cpu_);
  AdamW copt(ac);
  float cn[2];
  for (float& x : cn) step(*cpu_, copt, &x);
  const Vec want = Params(*cpu_);
  for (ops::Backend* b : {fp32_.get(), bf16_.get()}) {
    SCOPED_TRACE(b->name());
    const bool tight = b == fp32_.get();
    auto m = Model::Create(config_, 99, b);
    ASSERT_TRUE(m.ok()) << m.status();
    (*m)->UploadParams(w0.data());
    AdamW gopt(ac);
    float gn[2];
    for (float& x : gn) step(**m, gopt, &x);
    for (int i = 0; i < 2; ++i) EXPECT_NEAR(gn[i], cn[i], (tight ? 1e-4 : 3e-2) * cn[i]) << "grad norm, step " << i;
    const Vec got = Params(**m);
    // Compare the updates (w - w0) in units of the learning rate.
    double worst = 0;
    int64_t far = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      const double d = std::abs(static_cast<double>(got[i]) - want[i]) / lr;
      worst = std::max(worst, d);
      far += d > 0.2;
    }
    if (tight) {
      EXPECT_LT(worst, 1e-3) << "largest update difference, in learning rates";
    } else {
      EXPECT_LT(static_cast<double>(far) / static_cast<double>(want.size()), 0.02)
          << far << " of " << want.size() << " weights moved differently by > 0.2 lr (worst " << worst << " lr)";
    }
    // The optimizer state round-trips through the host.
    const std::string blob = gopt.SerializeState();
    AdamW restored(ac);
    EXPECT_TRUE(restored.RestoreState(blob).ok());
    EXPECT_EQ(restored.step(), 2);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, CudaModel, ::testing::ValuesIn(Configs()), Family);

// Running out of device memory is RESOURCE_EXHAUSTED naming the buffer and the bytes.
TEST(CudaModelMemory, HugeModelIsResourceExhausted) {
  // ~2^41 bytes of parameters: far beyond any single GPU (a valid config, so
  // the failure below is the allocation's).
  const ModelConfig c = testing::MustParse(testing::TinyQwenJson(R"({"vocab_size":1048576,"hidden_size":131072,
      "num_hidden_layers":1,"num_attention_heads":1024,"num_key_value_heads":1024,"head_dim":128})"));
  ASSERT_TRUE(c.Validate().ok()) << c.Validate();
  absl::Status st = ops::CudaDeviceStatus(0);
  if (!st.ok()) GTEST_SKIP() << st.message();
  auto b = ops::NewCudaBackend({0, ops::GemmPrecision::kBf16});
  ASSERT_TRUE(b.ok()) << b.status();
  auto m = Model::Create(c, 1, b->get());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kResourceExhausted) << m.status();
  const std::string msg(m.status().message());
  EXPECT_NE(msg.find("asked for"), std::string::npos) << msg;
  EXPECT_NE(msg.find("free "), std::string::npos) << msg;
  EXPECT_NE(msg.find("allocating \""), std::string::npos) << msg;
}

}  // namespace
}  // namespace zerorl::model
