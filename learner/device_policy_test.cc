// GrpoTrainer on a policy that does not live in host memory. Without a GPU in
// CI, the detached backend (model/ops/detached_backend.h) stands in for one:
// CPU ops behind pointers the host cannot dereference, so the model and the
// trainer must reach the weights through Download/Upload as on a GPU. The device
// trainer must train like the host one, publish its weights through the host
// staging copy, checkpoint/restore across the two, and reduce device-memory
// replicas through the host. With a real GPU
// (ZERORL_HAVE_CUDA and a device; skipped otherwise): a GRPO step on cuda:0
// against the CPU step, and two replicas on the GPU reduced through the host.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include "common/config.h"
#include "learner/data_parallel.h"
#include "learner/grpo_trainer.h"
#include "model/ops/detached_backend.h"
#include "model/policy_loader.h"
#include "learner/test_util.h"
#include "model/test_models.h"
#include "tests/testing/subprocess.h"
#ifdef ZERORL_HAVE_CUDA
#include "model/ops/cuda/cuda_backend.h"
#endif

// Built twice: against the CUDA runtime (GPU cases skip without a device) and,
// with ZERORL_CUDA_EMU, against the emulated runtime, where they run on the CPU.
#ifdef ZERORL_CUDA_EMU
#define DevicePolicyTest EmuCudaDevicePolicyTest
#endif

namespace zerorl::learner {
namespace {

// The CPU ops behind device-style memory the host cannot dereference (tagged
// pointers): any host access that bypasses Download/Upload crashes.
model::ops::Backend* DeviceBackend() {
  static std::unique_ptr<model::ops::DetachedBackendHandle> h = model::ops::NewDetachedBackend();
  return h->backend();
}

std::unique_ptr<model::Model> TinyMoeOn(uint64_t seed, model::ops::Backend* backend) {
  auto cfg = model::ParseModelConfig(zerorl::testing::TinyMoeConfigJson());
  if (!cfg.ok()) return nullptr;
  auto m = model::Model::Create(*cfg, seed, backend);
  return m.ok() ? std::move(*m) : nullptr;
}

TrainerOptions Options() {
  TrainerOptions o = zerorl::testing::BaseTrainerOptions();
  o.grpo.set_beta(0.05);
  o.grpo.set_epochs(2);
  o.grpo.set_micro_batch(4);
  o.grpo.set_router_bias_gamma(0.01);
  o.optimizer.set_lr(1e-3);
  o.max_new_tokens = 10;
  o.seed = 5;
  return o;
}

// Mean |a - b| over the elements.
double MeanDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d += std::fabs(double(a[i]) - b[i]);
  return a.empty() ? 0 : d / a.size();
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
  ASSERT_EQ(zerorl::testing::Weights((*host)->policy()), zerorl::testing::Weights((*dev)->policy()));
  const model::TensorRef* bias = nullptr;
  const auto params = (*dev)->policy().Parameters();
  for (const auto& t : params)
    if (t.name == "model.layers.1.mlp.gate.e_score_correction_bias") bias = &t;
  ASSERT_NE(bias, nullptr);
  for (int s = 0; s < 3; ++s) {
    const auto groups = zerorl::testing::RandomGroups(40 + s, 3, 4);
    auto mh = (*host)->Step(groups);
    auto md = (*dev)->Step(groups);
    ASSERT_TRUE(mh.ok()) << mh.status();
    ASSERT_TRUE(md.ok()) << md.status();
    for (const auto& [k, v] : *mh) {  // the detached backend runs the CPU ops: bit for bit
      if (k == "tokens_per_s" || k == "step_seconds") continue;
      EXPECT_EQ((*md)[k], v) << k << " step " << s;
    }
    // The publishable views: a host copy equal to the live device weights, refreshed every step.
    const auto wt = (*dev)->WeightTensors();
    ASSERT_EQ(wt.size(), params.size());
    for (size_t i = 0; i < wt.size(); ++i) {
      std::vector<float> live(params[i].size);
      (*dev)->policy().DownloadTensor(params[i], live.data());
      EXPECT_EQ(std::memcmp(wt[i].data, live.data(), live.size() * sizeof(float)), 0) << wt[i].name << " step " << s;
    }
  }
  EXPECT_EQ(zerorl::testing::Weights((*host)->policy()), zerorl::testing::Weights((*dev)->policy()));
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
  ASSERT_TRUE((*dev)->Step(zerorl::testing::RandomGroups(1, 3, 4)).ok());
  const std::string dir = zerorl::testing::MakeTempDir("dev_ckpt");
  ASSERT_TRUE((*dev)->Save(dir, "c").ok());
  auto host = GrpoTrainer::Create(TinyMoeOn(8, nullptr), zerorl::testing::CharTokenizer(), Options());
  ASSERT_TRUE(host.ok());
  ASSERT_TRUE((*host)->Restore(dir).ok());
  EXPECT_EQ(zerorl::testing::Weights((*host)->policy()), zerorl::testing::Weights((*dev)->policy()));
  // The same next step on both sides: the reference (written from device memory) and
  // the optimizer state came across too.
  const auto groups = zerorl::testing::RandomGroups(2, 3, 4);
  auto mh = (*host)->Step(groups);
  auto md = (*dev)->Step(groups);
  ASSERT_TRUE(mh.ok() && md.ok());
  EXPECT_EQ((*mh)["kl"], (*md)["kl"]);
  EXPECT_GT((*md)["kl"], 0);
  EXPECT_EQ((*mh)["loss"], (*md)["loss"]);
  EXPECT_EQ(zerorl::testing::Weights((*host)->policy()), zerorl::testing::Weights((*dev)->policy()));
  // And back into a device trainer: the restored weights are uploaded.
  auto dev2 = GrpoTrainer::Create(TinyMoeOn(9, DeviceBackend()), zerorl::testing::CharTokenizer(), Options());
  ASSERT_TRUE(dev2.ok());
  const std::string dir2 = zerorl::testing::MakeTempDir("dev_ckpt2");
  ASSERT_TRUE((*host)->Save(dir2, "c2").ok());
  ASSERT_TRUE((*dev2)->Restore(dir2).ok());
  EXPECT_EQ(zerorl::testing::Weights((*dev2)->policy()), zerorl::testing::Weights((*host)->policy()));
  const auto wt = (*dev2)->WeightTensors();  // staging refreshed by Restore
  const auto hp = (*host)->policy().Parameters();
  for (size_t i = 0; i < wt.size(); ++i)
    EXPECT_EQ(std::memcmp(wt[i].data, hp[i].data, hp[i].size * sizeof(float)), 0) << wt[i].name;
}

// Two device-memory replicas reduced through the host (download, sum, upload):
// the same numbers as two host replicas.
TEST(DevicePolicyTest, DeviceReplicasThroughTheStagedHostReducerMatchHostReplicas) {
  auto make = [](model::ops::Backend* b) {
    PolicyReplicas reps;
    reps.models.push_back(TinyMoeOn(3, b));
    reps.models.push_back(TinyMoeOn(4, b));
    reps.reducers = NewHostGradReducers({b, b});
    return GrpoTrainer::Create(std::move(reps), zerorl::testing::CharTokenizer(), Options());
  };
  auto host = make(nullptr);
  auto dev = make(DeviceBackend());
  ASSERT_TRUE(host.ok() && dev.ok());
  for (int s = 0; s < 2; ++s) {
    auto mh = (*host)->Step(zerorl::testing::RandomGroups(70 + s, 3, 4));
    auto md = (*dev)->Step(zerorl::testing::RandomGroups(70 + s, 3, 4));
    ASSERT_TRUE(mh.ok()) << mh.status();
    ASSERT_TRUE(md.ok()) << md.status();
    EXPECT_EQ((*md)["loss"], (*mh)["loss"]);
    EXPECT_EQ((*md)["grad_norm"], (*mh)["grad_norm"]);
  }
  EXPECT_EQ(zerorl::testing::Weights((*dev)->replica(0)), zerorl::testing::Weights((*host)->replica(0)));
  EXPECT_EQ(zerorl::testing::Weights((*dev)->replica(1)), zerorl::testing::Weights((*dev)->replica(0)));
}

// The CUDA backend of device 0, or nullptr (the test skips) without one.
model::ops::Backend* Gpu() {
#ifdef ZERORL_HAVE_CUDA
  if (!model::ops::CudaDeviceStatus(0).ok()) return nullptr;
  auto b = model::ops::CudaBackend(0);
  return b.ok() ? *b : nullptr;
#else
  return nullptr;
#endif
}

// model.device: cuda:0 puts the policy on the GPU; so does a one-entry replica list.
TEST(DevicePolicyTest, CudaDeviceStringLoadsThePolicyOnTheGpu) {
  if (!Gpu()) GTEST_SKIP() << "no CUDA device (or built without CUDA)";
  const std::string dir = zerorl::testing::MakeTempDir("dev_load");
  std::ofstream(dir + "/config.json") << zerorl::testing::TinyMoeConfigJson();
  zerorl::v1::RunConfig c = DefaultRunConfig();
  c.mutable_model()->set_init_config(dir + "/config.json");
  c.mutable_model()->set_device("cuda:0");
  auto m = model::LoadPolicyModel(c.model());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE((*m)->on_host());
  EXPECT_EQ((*m)->backend(), Gpu());
  c.mutable_model()->set_device("cpu");
  c.mutable_learner()->add_data_parallel_devices("cuda");
  auto r = LoadPolicyReplicas(c);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->models.size(), 1u);
  EXPECT_TRUE(r->reducers.empty());
  EXPECT_EQ(r->models[0]->backend(), Gpu());
}

// bf16 GEMMs on the GPU: losses agree to ~1e-2; each of the step's two AdamW
// updates (lr 1e-3, Adam moves a weight by ~lr) can differ by ~2 lr where a
// tiny gradient's sign flips, so max |dw| < 5e-3 while the mean stays ~1e-5.
TEST(DevicePolicyTest, GpuStepMatchesCpuStep) {
  model::ops::Backend* gpu = Gpu();
  if (!gpu) GTEST_SKIP() << "no CUDA device (or built without CUDA)";
  auto host = GrpoTrainer::Create(TinyMoeOn(3, nullptr), zerorl::testing::CharTokenizer(), Options());
  auto dev = GrpoTrainer::Create(TinyMoeOn(3, gpu), zerorl::testing::CharTokenizer(), Options());
  ASSERT_TRUE(host.ok() && dev.ok());
  ASSERT_FALSE((*dev)->policy().on_host());
  const auto groups = zerorl::testing::RandomGroups(40, 3, 4);
  auto mh = (*host)->Step(groups);
  auto md = (*dev)->Step(groups);
  ASSERT_TRUE(mh.ok()) << mh.status();
  ASSERT_TRUE(md.ok()) << md.status();
  for (const char* k : {"loss", "entropy", "grad_norm"})
    EXPECT_NEAR((*md)[k], (*mh)[k], 2e-2 * (1 + std::fabs((*mh)[k]))) << k;
  const auto wh = zerorl::testing::Weights((*host)->policy()), wd = zerorl::testing::Weights((*dev)->policy());
  std::printf("GPU vs CPU after one step: max |dw| %.3g, mean |dw| %.3g\n", MaxDiff(wh, wd), MeanDiff(wh, wd));
  EXPECT_LT(MaxDiff(wh, wd), 5e-3);
  EXPECT_LT(MeanDiff(wh, wd), 1e-4);
}

TEST(DevicePolicyTest, GpuReplicasThroughTheHostReducerStayEqual) {
  model::ops::Backend* gpu = Gpu();
  if (!gpu) GTEST_SKIP() << "no CUDA device (or built without CUDA)";
#ifdef ZERORL_CUDA_EMU
  GTEST_SKIP() << "the CUDA emulation runs kernels from one host thread at a time; ranks launch from two";
#endif
  PolicyReplicas reps;
  reps.models.push_back(TinyMoeOn(3, gpu));
  reps.models.push_back(TinyMoeOn(4, gpu));  // same GPU, own buffers: staged host all-reduce
  reps.reducers = NewHostGradReducers({gpu, gpu});
  auto dp = GrpoTrainer::Create(std::move(reps), zerorl::testing::CharTokenizer(), Options());
  ASSERT_TRUE(dp.ok()) << dp.status();
  auto one = GrpoTrainer::Create(TinyMoeOn(3, gpu), zerorl::testing::CharTokenizer(), Options());
  ASSERT_TRUE(one.ok());
  for (int s = 0; s < 2; ++s) {
    auto md = (*dp)->Step(zerorl::testing::RandomGroups(60 + s, 3, 4));
    auto m1 = (*one)->Step(zerorl::testing::RandomGroups(60 + s, 3, 4));
    ASSERT_TRUE(md.ok()) << md.status();
    ASSERT_TRUE(m1.ok()) << m1.status();
    EXPECT_NEAR((*md)["loss"], (*m1)["loss"], 1e-3 * (1 + std::fabs((*m1)["loss"])));
  }
  EXPECT_EQ(zerorl::testing::Weights((*dp)->replica(0)), zerorl::testing::Weights((*dp)->replica(1)));
  const auto wd = zerorl::testing::Weights((*dp)->replica(0)), w1 = zerorl::testing::Weights((*one)->policy());
  std::printf("2 GPU replicas vs 1 after two steps: max |dw| %.3g, mean |dw| %.3g\n", MaxDiff(wd, w1), MeanDiff(wd, w1));
  EXPECT_LT(MaxDiff(wd, w1), 5e-3);
  EXPECT_LT(MeanDiff(wd, w1), 1e-4);
}

}  // namespace
}  // namespace zerorl::learner
