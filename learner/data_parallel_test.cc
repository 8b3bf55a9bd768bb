// Device selection and the data-parallel learner: device strings rejected by
// key, a clear error for a GPU the build or machine does not have, the host
// gradient reducer, and R CPU replicas training like one (up to the order of
// the gradient sums) while staying equal to each other.
#include "learner/data_parallel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include "common/config.h"
#include "learner/grad_reducer.h"
#include "learner/grpo_trainer.h"
#include "model/policy_loader.h"
#include "learner/test_util.h"
#include "model/test_models.h"
#include "tests/testing/subprocess.h"
#ifdef ZERORL_HAVE_CUDA
#include "model/ops/cuda/cuda_backend.h"
#endif

namespace zerorl::learner {
namespace {

using ::testing::HasSubstr;

// ---- device strings ----

TEST(DeviceConfigTest, ParsesCpuAndCudaStrings) {
  EXPECT_EQ(*ParseDevice("cpu", "k"), -1);
  EXPECT_EQ(*ParseDevice("", "k"), -1);
  EXPECT_EQ(*ParseDevice("cuda", "k"), 0);
  EXPECT_EQ(*ParseDevice("cuda:0", "k"), 0);
  EXPECT_EQ(*ParseDevice("cuda:12", "k"), 12);
}

TEST(DeviceConfigTest, MalformedDevicesAreRejectedByKey) {
  for (const char* bad : {"gpu", "cuda:x", "cuda:-1", "cuda:", "CUDA", "cuda:1,2", "cpu:0"}) {
    auto c = ParseRunConfig(absl::StrCat("model:\n  device: \"", bad, "\"\n"), "t.yaml");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(c.status().message(), HasSubstr(absl::StrCat("model.device: \"", bad, "\" is not a device")));
  }
  auto ok = ParseRunConfig("model:\n  device: cuda:3\n", "t.yaml");
  EXPECT_TRUE(ok.ok()) << ok.status();  // well-formed: whether GPU 3 exists is checked when the model loads
}

TEST(DeviceConfigTest, DataParallelDevicesAreCheckedByIndex) {
  auto c = ParseRunConfig("learner:\n  data_parallel_devices: [cuda:0, cuda:y]\n", "t.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("learner.data_parallel_devices[1]: \"cuda:y\" is not a device"));
  auto mixed = ParseRunConfig("learner:\n  data_parallel_devices: [cuda:0, cpu]\n", "t.yaml");
  ASSERT_FALSE(mixed.ok());
  EXPECT_THAT(mixed.status().message(), HasSubstr("learner.data_parallel_devices[1]: \"cpu\" mixes cpu and cuda"));
  auto twice = ParseRunConfig("learner:\n  data_parallel_devices: [cuda:1, cuda:0, cuda:1]\n", "t.yaml");
  ASSERT_FALSE(twice.ok());
  EXPECT_THAT(twice.status().message(), HasSubstr("learner.data_parallel_devices[2]: cuda:1 is listed twice"));
  auto good = ParseRunConfig("learner:\n  data_parallel_devices: [cuda:0, cuda:1]\n", "t.yaml");
  ASSERT_TRUE(good.ok()) << good.status();
  const LearnerDevices d = LearnerDevicesFromConfig(*good);
  EXPECT_EQ(d.devices, (std::vector<std::string>{"cuda:0", "cuda:1"}));
  EXPECT_EQ(d.keys[1], "learner.data_parallel_devices[1]");
  const LearnerDevices one = LearnerDevicesFromConfig(DefaultRunConfig());
  EXPECT_EQ(one.devices, (std::vector<std::string>{"cpu"}));
  EXPECT_EQ(one.keys[0], "model.device");
}

TEST(DeviceConfigTest, UnknownWeightTransportIsRejectedByKey) {
  auto c = ParseRunConfig("learner:\n  weight_transport: rdma\n", "t.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("learner.weight_transport: must be \"grpc\" or \"nccl\", got \"rdma\""));
  for (const char* ok : {"grpc", "nccl"}) {
    auto good = ParseRunConfig(absl::StrCat("learner:\n  weight_transport: ", ok, "\n"), "t.yaml");
    EXPECT_TRUE(good.ok()) << ok << ": " << good.status();
  }
}

// A RunConfig whose model is a fresh TinyMoe (init_config in a temp dir).
zerorl::v1::RunConfig TinyMoeRunConfig(const std::string& name) {
  const std::string dir = zerorl::testing::MakeTempDir(name);
  std::ofstream(dir + "/config.json") << zerorl::testing::TinyMoeConfigJson();
  zerorl::v1::RunConfig c = DefaultRunConfig();
  c.mutable_model()->set_init_config(dir + "/config.json");
  c.mutable_model()->set_init_seed(4);
  return c;
}

bool HaveGpu(int device) {
#ifdef ZERORL_HAVE_CUDA
  return model::ops::CudaDeviceStatus(device).ok();
#else
  (void)device;
  return false;
#endif
}

TEST(DeviceConfigTest, CudaWithoutAGpuIsAClearError) {
  if (HaveGpu(0)) GTEST_SKIP() << "a CUDA device is present: the error path does not apply";
  zerorl::v1::RunConfig c = TinyMoeRunConfig("dev_err");
  c.mutable_model()->set_device("cuda:0");
  auto m = model::LoadPolicyModel(c.model());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition);
#ifdef ZERORL_HAVE_CUDA
  EXPECT_THAT(m.status().message(), HasSubstr("model.device is cuda:0: no CUDA device"));
#else
  EXPECT_THAT(m.status().message(), HasSubstr("model.device is cuda:0 but zerorl was built without CUDA"));
#endif
  // The learner's replicas name their own key.
  c.mutable_model()->set_device("cpu");
  c.mutable_learner()->add_data_parallel_devices("cuda:0");
  c.mutable_learner()->add_data_parallel_devices("cuda:1");
  auto r = LoadPolicyReplicas(c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("learner.data_parallel_devices[0] is cuda:0"));
  // A malformed string reaching the loader (a config not built by ParseRunConfig) is still named.
  c.mutable_model()->set_device("gpu");
  auto g = model::LoadPolicyModel(c.model());
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr("model.device: \"gpu\" is not a device"));
}

TEST(DeviceConfigTest, CpuDeviceLoadsOnTheHost) {
  zerorl::v1::RunConfig c = TinyMoeRunConfig("dev_cpu");
  auto m = model::LoadPolicyModel(c.model());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE((*m)->on_host());
  c.mutable_learner()->add_data_parallel_devices("cpu");
  c.mutable_learner()->add_data_parallel_devices("cpu");
  auto r = LoadPolicyReplicas(c);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->models.size(), 2u);
  ASSERT_EQ(r->reducers.size(), 2u);
  EXPECT_STREQ(r->reducers[1]->kind(), "host");
  EXPECT_EQ(r->reducers[1]->rank(), 1);
  EXPECT_EQ(r->reducers[1]->nranks(), 2);
}

// ---- host reducer ----

TEST(HostGradReducerTest, SumsInRankOrderOnEveryRank) {
  const int R = 3;
  const int64_t n = 1001;  // not divisible by R: uneven slices
  auto reducers = NewHostGradReducers(std::vector<model::ops::Backend*>(R, nullptr));
  std::vector<std::vector<float>> bufs(R, std::vector<float>(n));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& b : bufs)
    for (float& x : b) x = u(rng);
  std::vector<float> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = (bufs[0][i] + bufs[1][i]) + bufs[2][i];
  for (int round = 0; round < 3; ++round) {  // the barrier is reusable
    auto copy = bufs;
    ASSERT_TRUE(RunOnRanks(R, [&](int r) { return reducers[r]->AllReduceSum(copy[r].data(), n); }).ok());
    for (int r = 0; r < R; ++r)
      EXPECT_EQ(std::memcmp(copy[r].data(), want.data(), n * sizeof(float)), 0) << "rank " << r;
  }
}

TEST(HostGradReducerTest, MismatchedSizesFailOnEveryRankWithoutHanging) {
  auto reducers = NewHostGradReducers({nullptr, nullptr});
  std::vector<float> a(10, 1.f), b(12, 2.f);
  std::vector<absl::Status> st(2);
  ASSERT_FALSE(RunOnRanks(2, [&](int r) {
                 st[r] = reducers[r]->AllReduceSum(r == 0 ? a.data() : b.data(), r == 0 ? 10 : 12);
                 return st[r];
               }).ok());
  for (const absl::Status& s : st) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("different sizes (10, 12)"));
  }
  EXPECT_EQ(a[0], 1.f);  // untouched
}

// ---- data-parallel GRPO ----

TrainerOptions Options() {
  TrainerOptions o = zerorl::testing::BaseTrainerOptions();
  auto& g = o.grpo;
  g.set_beta(0.05);  // a reference per rank
  g.set_epochs(2);
  g.set_micro_batch(3);  // 12 sequences: 4 micro-batches per epoch
  g.set_router_bias_gamma(0.01);
  auto& op = o.optimizer;
  op.set_lr(1e-3);
  op.set_weight_decay(0.01);
  o.max_new_tokens = 10;
  o.total_steps = 10;
  o.seed = 3;
  return o;
}

TEST(DataParallelTest, CpuReplicasMatchOneReplicaAndStayEqual) {
  std::vector<std::vector<zerorl::v1::Group>> data;
  for (int s = 0; s < 3; ++s) data.push_back(zerorl::testing::RandomGroups(200 + s, 3, 4));
  auto single = GrpoTrainer::Create(zerorl::testing::TinyMoe(11), zerorl::testing::CharTokenizer(), Options());
  ASSERT_TRUE(single.ok()) << single.status();
  std::vector<Metrics> want;
  for (const auto& groups : data) {
    auto m = (*single)->Step(groups);
    ASSERT_TRUE(m.ok()) << m.status();
    want.push_back(*m);
  }
  const std::vector<float> w1 = zerorl::testing::Weights((*single)->policy());

  for (int R : {2, 3}) {  // 3 ranks: rank 0 gets two micro-batches, the others one
    PolicyReplicas reps;
    reps.models.push_back(zerorl::testing::TinyMoe(11));
    for (int r = 1; r < R; ++r) reps.models.push_back(zerorl::testing::TinyMoe(50 + r));  // overwritten by rank 0's
    reps.reducers = NewHostGradReducers(std::vector<model::ops::Backend*>(R, nullptr));
    auto dp = GrpoTrainer::Create(std::move(reps), zerorl::testing::CharTokenizer(), Options());
    ASSERT_TRUE(dp.ok()) << dp.status();
    ASSERT_EQ((*dp)->ranks(), R);
    for (size_t s = 0; s < data.size(); ++s) {
      auto m = (*dp)->Step(data[s]);
      ASSERT_TRUE(m.ok()) << m.status();
      for (const char* k : {"loss", "pg_loss", "kl", "entropy", "grad_norm", "balance_loss",
                            "train_rollout_logprob_gap", "clip_frac", "ratio_max"})
        EXPECT_NEAR((*m)[k], want[s][k], 1e-5 * (1 + std::fabs(want[s][k]))) << k << " step " << s << " R " << R;
      EXPECT_EQ((*m)["completion_tokens"], want[s]["completion_tokens"]);
      EXPECT_EQ((*m)["expert_load_max_over_mean"], want[s]["expert_load_max_over_mean"]);
      EXPECT_EQ((*m)["policy_version"], want[s]["policy_version"]);
    }
    const std::vector<float> w0 = zerorl::testing::Weights((*dp)->replica(0));
    double max_diff = 0;
    for (size_t i = 0; i < w0.size(); ++i) max_diff = std::max(max_diff, std::fabs(double(w0[i]) - w1[i]));
    std::printf("R=%d: max |w_dp - w_1| after %zu steps = %.3g\n", R, data.size(), max_diff);
    EXPECT_LT(max_diff, 1e-4) << "R " << R << ": data-parallel weights drift from the single replica's";
    for (int r = 1; r < R; ++r)
      EXPECT_EQ(zerorl::testing::Weights((*dp)->replica(r)), w0) << "replica " << r << " differs from rank 0";
    // WeightTensors publish rank 0's weights.
    const auto wt = (*dp)->WeightTensors();
    const auto params = (*dp)->replica(0).Parameters();
    ASSERT_EQ(wt.size(), params.size());
    for (size_t i = 0; i < wt.size(); ++i) {
      std::vector<float> t(params[i].size);
      (*dp)->replica(0).DownloadTensor(params[i], t.data());
      ASSERT_EQ(wt[i].numel, params[i].size);
      EXPECT_EQ(std::memcmp(wt[i].data, t.data(), t.size() * sizeof(float)), 0) << wt[i].name;
    }
  }
}

TEST(DataParallelTest, CheckpointOfReplicasRestoresIntoOneReplica) {
  const auto groups = zerorl::testing::RandomGroups(7, 3, 4);
  PolicyReplicas reps;
  reps.models.push_back(zerorl::testing::TinyMoe(11));
  reps.models.push_back(zerorl::testing::TinyMoe(12));
  reps.reducers = NewHostGradReducers({nullptr, nullptr});
  auto dp = GrpoTrainer::Create(std::move(reps), zerorl::testing::CharTokenizer(), Options());
  ASSERT_TRUE(dp.ok()) << dp.status();
  ASSERT_TRUE((*dp)->Step(groups).ok());
  const std::string dir = zerorl::testing::MakeTempDir("dp_ckpt");
  ASSERT_TRUE((*dp)->Save(dir, "c1").ok());
  auto one = GrpoTrainer::Create(zerorl::testing::TinyMoe(99), zerorl::testing::CharTokenizer(), Options());
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE((*one)->Restore(dir).ok());
  EXPECT_EQ(zerorl::testing::Weights((*one)->policy()), zerorl::testing::Weights((*dp)->replica(1)));
  EXPECT_EQ((*one)->step(), 1);
  // And back: a checkpoint restores into every replica.
  ASSERT_TRUE((*one)->Step(groups).ok());
  const std::string dir2 = zerorl::testing::MakeTempDir("dp_ckpt2");
  ASSERT_TRUE((*one)->Save(dir2, "c2").ok());
  ASSERT_TRUE((*dp)->Restore(dir2).ok());
  EXPECT_EQ(zerorl::testing::Weights((*dp)->replica(0)), zerorl::testing::Weights((*one)->policy()));
  EXPECT_EQ(zerorl::testing::Weights((*dp)->replica(1)), zerorl::testing::Weights((*one)->policy()));
}

TEST(DataParallelTest, ReplicasWithoutReducersAreRefused) {
  PolicyReplicas reps;
  reps.models.push_back(zerorl::testing::TinyMoe(1));
  reps.models.push_back(zerorl::testing::TinyMoe(2));
  auto t = GrpoTrainer::Create(std::move(reps), zerorl::testing::CharTokenizer(), Options());
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("2 policy replicas need 2 gradient reducers"));
}

}  // namespace
}  // namespace zerorl::learner
