// GrpoTrainer on a policy that does not live in host memory. Without a GPU in
// CI, a test backend stands in for one: it runs every op on the CPU backend
// but reports host_memory() == false, so the model and the trainer must reach
// the weights through Download/Upload exactly as they do on a GPU. The device
// trainer must train like the host one, publish its weights through the host
// staging copy, and checkpoint/restore across the two.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "learner/grpo_trainer.h"
#include "rollout/test_models.h"
#include "tests/testing/subprocess.h"

namespace zerorl::learner {
namespace {

using model::ops::AttnSeq;
using model::ops::AttnSeqGrad;
using model::ops::AttnShape;
using model::ops::RouteShape;
using model::ops::SampleParams;

// Every op forwarded to the CPU backend; memory claims not to be the host's.
class HostAsDeviceBackend final : public model::ops::Backend {
 public:
  const char* name() const override { return "host-as-device"; }
  void Gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
            const float* B, int64_t ldb, float beta, float* C, int64_t ldc) override {
    inner_->Gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  void RmsNormForward(float* out, float* rstd, const float* x, const float* w, int64_t N, int64_t C, int64_t x_stride,
                      int64_t out_stride, float eps) override {
    inner_->RmsNormForward(out, rstd, x, w, N, C, x_stride, out_stride, eps);
  }
  void RmsNormBackward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                       int64_t N, int64_t C, int64_t x_stride, int64_t dout_stride) override {
    inner_->RmsNormBackward(dx, dw, dout, x, w, rstd, N, C, x_stride, dout_stride);
  }
  void Rope(float* x, const int32_t* pos, int64_t N, int64_t nh, int64_t stride, int64_t head_stride, int64_t off,
            int64_t rd, float theta, bool interleaved, bool inverse) override {
    inner_->Rope(x, pos, N, nh, stride, head_stride, off, rd, theta, interleaved, inverse);
  }
  void SwiGluForward(float* out, const float* h, int64_t N, int64_t I) override { inner_->SwiGluForward(out, h, N, I); }
  void SwiGluBackward(float* dh, const float* dout, const float* h, int64_t N, int64_t I) override {
    inner_->SwiGluBackward(dh, dout, h, N, I);
  }
  void AttentionForward(const AttnSeq* seqs, int64_t n, const AttnShape& s) override {
    inner_->AttentionForward(seqs, n, s);
  }
  void AttentionBackward(const AttnSeq* seqs, const AttnSeqGrad* grads, int64_t n, const AttnShape& s) override {
    inner_->AttentionBackward(seqs, grads, n, s);
  }
  void EmbeddingForward(float* out, const float* table, const int32_t* ids, int64_t N, int64_t C) override {
    inner_->EmbeddingForward(out, table, ids, N, C);
  }
  void EmbeddingBackward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C) override {
    inner_->EmbeddingBackward(dtable, dout, ids, N, C);
  }
  void LogProbForward(float* logp, float* entropy, const float* logits, const int32_t* target, int64_t N,
                      int64_t V) override {
    inner_->LogProbForward(logp, entropy, logits, target, N, V);
  }
  void LogProbBackward(float* dlogits, const float* dlogp, const float* dentropy, const float* logits,
                       const int32_t* target, int64_t N, int64_t V) override {
    inner_->LogProbBackward(dlogits, dlogp, dentropy, logits, target, N, V);
  }
  void Axpy(float* y, const float* x, float a, int64_t n) override { inner_->Axpy(y, x, a, n); }
  void GatherRows(float* out, const float* in, const int32_t* idx, int64_t M, int64_t C) override {
    inner_->GatherRows(out, in, idx, M, C);
  }
  void ScatterAddRows(float* out, const float* in, const int32_t* idx, const float* scale, int64_t M,
                      int64_t C) override {
    inner_->ScatterAddRows(out, in, idx, scale, M, C);
  }
  bool host_memory() const override { return false; }
  void* Alloc(int64_t bytes, const char* what) override { return inner_->Alloc(bytes, what); }
  void Free(void* p) override { inner_->Free(p); }
  void Copy(void* dst, const void* src, int64_t bytes) override { inner_->Copy(dst, src, bytes); }
  void Upload(void* dst, const void* host, int64_t bytes) override { inner_->Upload(dst, host, bytes); }
  void Download(void* host, const void* src, int64_t bytes) override { inner_->Download(host, src, bytes); }
  void Fill(float* x, float value, int64_t n) override { inner_->Fill(x, value, n); }
  void FillI32(int32_t* x, int32_t value, int64_t n) override { inner_->FillI32(x, value, n); }
  void Copy2D(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
              bool accumulate) override {
    inner_->Copy2D(dst, ld_dst, src, ld_src, rows, cols, accumulate);
  }
  void Synchronize() override { inner_->Synchronize(); }
  void RouterScores(float* scores, const float* logits, int64_t N, int64_t E, bool sigmoid) override {
    inner_->RouterScores(scores, logits, N, E, sigmoid);
  }
  void RouterScoresBackward(float* dlogits, const float* dscores, const float* scores, int64_t N, int64_t E,
                            bool sigmoid) override {
    inner_->RouterScoresBackward(dlogits, dscores, scores, N, E, sigmoid);
  }
  void RouterTopK(int32_t* idx, float* w, const float* scores, const float* bias, int64_t N,
                  const RouteShape& r) override {
    inner_->RouterTopK(idx, w, scores, bias, N, r);
  }
  void RouterTopKBackward(float* dscores, const float* dw, const float* scores, const int32_t* idx, int64_t N,
                          const RouteShape& r) override {
    inner_->RouterTopKBackward(dscores, dw, scores, idx, N, r);
  }
  void MoePermute(int64_t* offsets, int32_t* row_token, int32_t* row_slot, const int32_t* idx, int64_t N, int64_t K,
                  int64_t E) override {
    inner_->MoePermute(offsets, row_token, row_slot, idx, N, K, E);
  }
  void MoeCombineBackward(float* dy, float* dw_slot, const float* dout, const float* y, const float* row_w,
                          const int32_t* row_token, const int32_t* row_slot, int64_t R, int64_t D) override {
    inner_->MoeCombineBackward(dy, dw_slot, dout, y, row_w, row_token, row_slot, R, D);
  }
  void SampleRows(int32_t* token, float* logprob, float* sampling_logprob, const float* logits, const double* u,
                  int64_t n, int64_t V, const SampleParams& p) override {
    inner_->SampleRows(token, logprob, sampling_logprob, logits, u, n, V, p);
  }
  void AdamW(float* w, float* m, float* v, const float* g, int64_t n, float lr, float b1, float b2, float eps, float wd,
             float bc1, float bc2) override {
    inner_->AdamW(w, m, v, g, n, lr, b1, b2, eps, wd, bc1, bc2);
  }
  double SumSquares(const float* x, int64_t n) override { return inner_->SumSquares(x, n); }
  void Scale(float* x, float s, int64_t n) override { inner_->Scale(x, s, n); }
  void ParallelFor(int64_t n, void (*fn)(void* ctx, int64_t i), void* ctx) override { inner_->ParallelFor(n, fn, ctx); }
  int num_threads() const override { return inner_->num_threads(); }

 private:
  model::ops::Backend* inner_ = model::ops::CpuBackend();
};

HostAsDeviceBackend* DeviceBackend() {
  static HostAsDeviceBackend b;
  return &b;
}

std::unique_ptr<model::Model> TinyMoeOn(uint64_t seed, model::ops::Backend* backend) {
  auto cfg = model::ParseModelConfig(zerorl::testing::TinyMoeConfigJson());
  if (!cfg.ok()) return nullptr;
  auto m = model::Model::Create(*cfg, seed, backend);
  return m.ok() ? std::move(*m) : nullptr;
}

std::vector<zerorl::v1::Group> Groups(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto tok = [&] { return static_cast<int32_t>(4 + rng() % 95); };
  std::vector<zerorl::v1::Group> groups(3);
  for (auto& g : groups) {
    g.mutable_prompt()->add_token_ids(1);
    for (int i = 0, n = 2 + rng() % 5; i < n; ++i) g.mutable_prompt()->add_token_ids(tok());
    for (int s = 0; s < 4; ++s) {
      auto* t = g.add_trajectories();
      for (int i = 0, n = 1 + rng() % 10; i < n; ++i) {
        t->mutable_sample()->add_token_ids(tok());
        t->mutable_sample()->add_logprobs(-0.1f - static_cast<float>(rng() % 300) / 100.f);
      }
      t->mutable_reward()->set_reward(static_cast<double>(rng() % 3) / 2.0);
    }
  }
  return groups;
}

TrainerOptions Options() {
  TrainerOptions o;
  o.grpo.set_clip_low(0.2);
  o.grpo.set_clip_high(0.28);
  o.grpo.set_beta(0.05);
  o.grpo.set_loss_aggregation(zerorl::v1::LOSS_AGGREGATION_DAPO);
  o.grpo.set_std_normalize(true);
  o.grpo.set_epochs(2);
  o.grpo.set_micro_batch(4);
  o.grpo.set_router_bias_gamma(0.01);
  o.grpo.set_adv_eps(1e-6);
  o.optimizer.set_lr(1e-3);
  o.optimizer.set_beta1(0.9);
  o.optimizer.set_beta2(0.99);
  o.optimizer.set_eps(1e-8);
  o.optimizer.set_grad_clip(1.0);
  o.max_new_tokens = 10;
  o.seed = 5;
  return o;
}

std::vector<float> Weights(model::Model& m) {
  std::vector<float> w(m.NumParams());
  m.DownloadParams(w.data());
  return w;
}

double MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = a.size() == b.size() ? 0 : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
  return d;
}

TEST(DevicePolicyTest, TrainsLikeTheHostPolicyAndPublishesThroughStaging) {
  auto host = GrpoTrainer::Create(TinyMoeOn(3, nullptr), zerorl::testing::CharTokenizer(), Options());
  auto dev = GrpoTrainer::Create(TinyMoeOn(3, DeviceBackend()), zerorl::testing::CharTokenizer(), Options());
  ASSERT_TRUE(host.ok()) << host.status();
  ASSERT_TRUE(dev.ok()) << dev.status();
  ASSERT_FALSE((*dev)->policy().on_host());
  ASSERT_EQ(Weights((*host)->policy()), Weights((*dev)->policy()));
  const model::TensorRef* bias = nullptr;
  const auto params = (*dev)->policy().Parameters();
  for (const auto& t : params)
    if (t.name == "model.layers.1.mlp.gate.e_score_correction_bias") bias = &t;
  ASSERT_NE(bias, nullptr);
  for (int s = 0; s < 3; ++s) {
    const auto groups = Groups(40 + s);
    auto mh = (*host)->Step(groups);
    auto md = (*dev)->Step(groups);
    ASSERT_TRUE(mh.ok()) << mh.status();
    ASSERT_TRUE(md.ok()) << md.status();
    for (const char* k : {"loss", "kl", "entropy", "grad_norm", "clip_frac"})
      EXPECT_NEAR((*md)[k], (*mh)[k], 1e-5 * (1 + std::fabs((*mh)[k]))) << k << " step " << s;
    // The publishable views: a host copy equal to the live device weights, refreshed every step.
    const auto wt = (*dev)->WeightTensors();
    ASSERT_EQ(wt.size(), params.size());
    for (size_t i = 0; i < wt.size(); ++i) {
      std::vector<float> live(params[i].size);
      (*dev)->policy().DownloadTensor(params[i], live.data());
      EXPECT_EQ(std::memcmp(wt[i].data, live.data(), live.size() * sizeof(float)), 0) << wt[i].name << " step " << s;
    }
  }
  EXPECT_LT(MaxDiff(Weights((*host)->policy()), Weights((*dev)->policy())), 1e-5);
  // The router bias moved (through Download/UploadTensor) as on the host.
  std::vector<float> bh(bias->size), bd(bias->size);
  (*dev)->policy().DownloadTensor(*bias, bd.data());
  for (const auto& t : (*host)->policy().Parameters())
    if (t.name == bias->name) (*host)->policy().DownloadTensor(t, bh.data());
  EXPECT_EQ(bh, bd);
  EXPECT_NE(bd, std::vector<float>(bias->size, 0.f)) << "router bias never moved";
}

TEST(DevicePolicyTest, CheckpointsRoundTripBetweenDeviceAndHost) {
  auto dev = GrpoTrainer::Create(TinyMoeOn(3, DeviceBackend()), zerorl::testing::CharTokenizer(), Options());
  ASSERT_TRUE(dev.ok()) << dev.status();
  ASSERT_TRUE((*dev)->Step(Groups(1)).ok());
  const std::string dir = zerorl::testing::MakeTempDir("dev_ckpt");
  ASSERT_TRUE((*dev)->Save(dir, "c").ok());
  auto host = GrpoTrainer::Create(TinyMoeOn(8, nullptr), zerorl::testing::CharTokenizer(), Options());
  ASSERT_TRUE(host.ok());
  ASSERT_TRUE((*host)->Restore(dir).ok());
  EXPECT_EQ(Weights((*host)->policy()), Weights((*dev)->policy()));
  // The same next step on both sides: the reference (written from device memory) and
  // the optimizer state came across too.
  const auto groups = Groups(2);
  auto mh = (*host)->Step(groups);
  auto md = (*dev)->Step(groups);
  ASSERT_TRUE(mh.ok() && md.ok());
  EXPECT_NEAR((*mh)["kl"], (*md)["kl"], 1e-6 * (1 + std::fabs((*md)["kl"])));
  EXPECT_GT((*md)["kl"], 0);
  EXPECT_LT(MaxDiff(Weights((*host)->policy()), Weights((*dev)->policy())), 1e-5);
  // And back into a device trainer: the restored weights are uploaded.
  auto dev2 = GrpoTrainer::Create(TinyMoeOn(9, DeviceBackend()), zerorl::testing::CharTokenizer(), Options());
  ASSERT_TRUE(dev2.ok());
  const std::string dir2 = zerorl::testing::MakeTempDir("dev_ckpt2");
  ASSERT_TRUE((*host)->Save(dir2, "c2").ok());
  ASSERT_TRUE((*dev2)->Restore(dir2).ok());
  EXPECT_EQ(Weights((*dev2)->policy()), Weights((*host)->policy()));
  const auto wt = (*dev2)->WeightTensors();  // staging refreshed by Restore
  const auto hp = (*host)->policy().Parameters();
  for (size_t i = 0; i < wt.size(); ++i)
    EXPECT_EQ(std::memcmp(wt[i].data, hp[i].data, hp[i].size * sizeof(float)), 0) << wt[i].name;
}

}  // namespace
}  // namespace zerorl::learner
