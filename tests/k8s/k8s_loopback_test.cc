// The manifests of examples/k8s/countdown-cpu.yaml, run on loopback: each pod
// a `zerorl` process started with exactly its container's args and ports
// (loopback_pods.h says what stands in for the cluster). The pods serve their
// roles and health; a run goes a few steps, survives a SIGKILL and restart of
// rollout-0, and finishes.
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/k8s/loopback_pods.h"
#include "tests/testing/subprocess.h"
#include "zerorl/v1/orchestrator.grpc.pb.h"
#include "zerorl/v1/reward.grpc.pb.h"

namespace zerorl {
namespace {

using testing::LoopbackDeployment;
using testing::LoopbackPod;
using namespace std::chrono_literals;

constexpr int kTestSteps = 4;                // the run, sized down for a test
constexpr auto kStartTimeout = 180s;         // loading the model on a busy 2-core box
constexpr auto kRunTimeout = std::chrono::minutes(6);

std::string Render() {
  std::string out;
  const int rc = testing::RunCommand(
      {testing::ZerorlBin(), "k8s", "render", "--config", testing::SourceDir() + "/examples/k8s/countdown-cpu.yaml"},
      &out);
  EXPECT_EQ(rc, 0) << "zerorl k8s render failed";
  return out;
}

class K8sLoopbackTest : public ::testing::Test {
 protected:
  // ctest may run the tests of this file at once: each takes its own loopback addresses.
  virtual int FirstIp() const = 0;

  void SetUp() override {
    // The image's working directory holds examples/: relative paths in run configs resolve there.
    ASSERT_EQ(chdir(testing::SourceDir().c_str()), 0);
    // The pods load the committed countdown base checkpoint (issue 7's `zerorl pretrain` output).
    if (!std::filesystem::exists("examples/countdown/base/config.json")) {
      GTEST_SKIP() << "examples/countdown/base/config.json is not in the tree yet: the pods have no model to load";
    }
    const std::string yaml = Render();
    ASSERT_FALSE(yaml.empty());
    auto d = LoopbackDeployment::Create(yaml, testing::MakeTempDir("k8s-loopback"), FirstIp(), [](YAML::Node& run) {
      run["orchestrator"]["total_steps"] = kTestSteps;
      run["orchestrator"]["eval"]["every_steps"] = 0;
      run["learner"]["checkpoint"]["every_steps"] = 2;
    });
    ASSERT_TRUE(d.ok()) << d.status();
    deployment_ = std::move(*d);
  }

  void TearDown() override {
    if (deployment_) deployment_->StopAll();
  }

  // Starts every pod: stateful singletons first, the orchestrator last (as readiness would order them).
  void StartAll() {
    for (const char* role : {"buffer", "learner", "reward", "rollout", "orchestrator"}) {
      for (LoopbackPod& pod : deployment_->pods()) {
        if (pod.role != role) continue;
        auto s = deployment_->Start(pod, kStartTimeout);
        ASSERT_TRUE(s.ok()) << s.message();
      }
    }
  }

  std::unique_ptr<LoopbackDeployment> deployment_;
};

grpc::health::v1::HealthCheckResponse::ServingStatus Health(const std::string& address) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  auto st = grpc::health::v1::Health::NewStub(channel)->Check(&ctx, req, &resp);
  return st.ok() ? resp.status() : grpc::health::v1::HealthCheckResponse::UNKNOWN;
}

// The active reward spec version of a reward pod, -1 when it cannot say.
int64_t RewardSpecVersion(const std::string& address) {
  auto stub = zerorl::v1::RewardService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  zerorl::v1::RewardSpecVersion v;
  return stub->GetRewardSpec(&ctx, zerorl::v1::GetRewardSpecRequest(), &v).ok() ? v.version() : -1;
}

class K8sLoopbackPods : public K8sLoopbackTest {
  int FirstIp() const override { return 11; }
};
class K8sLoopbackRun : public K8sLoopbackTest {
  int FirstIp() const override { return 41; }
};

TEST_F(K8sLoopbackPods, EveryPodServesItsRoleAndHealthOnTheManifestPorts) {
  std::set<std::string> roles;
  for (const LoopbackPod& pod : deployment_->pods()) {
    roles.insert(pod.role);
    EXPECT_GT(pod.grpc_port, 0) << pod.name;
    EXPECT_GT(pod.health_port, 0) << pod.name;
  }
  EXPECT_EQ(roles, (std::set<std::string>{"orchestrator", "buffer", "learner", "rollout", "reward"}));
  ASSERT_NO_FATAL_FAILURE(StartAll());
  for (const LoopbackPod& pod : deployment_->pods()) {
    // The probes' port (plaintext, health only) and the actor's own port.
    EXPECT_EQ(Health(pod.ip + ":" + std::to_string(pod.health_port)), grpc::health::v1::HealthCheckResponse::SERVING)
        << pod.name << " health port; log:\n" << deployment_->LogTail(pod);
    EXPECT_EQ(Health(deployment_->Address(pod)), grpc::health::v1::HealthCheckResponse::SERVING) << pod.name;
  }
  // Editing the reward-spec ConfigMap (kubelet-style symlink swap in the mounted directory) hot-swaps the spec.
  LoopbackPod* reward = deployment_->Find("reward-0");
  ASSERT_NE(reward, nullptr);
  const int64_t before = RewardSpecVersion(deployment_->Address(*reward));
  ASSERT_GT(before, 0) << deployment_->LogTail(*reward);
  ASSERT_TRUE(deployment_->UpdateConfigMapFile(*reward, "/etc/zerorl/reward", "spec.yaml",
                                               "name: edited\nterms:\n  - kind: countdown\n    weight: 2.0\n").ok());
  int64_t after = before;
  for (int i = 0; i < 100 && after == before; ++i) {
    std::this_thread::sleep_for(100ms);
    after = RewardSpecVersion(deployment_->Address(*reward));
  }
  EXPECT_GT(after, before) << "the reward pod did not reload its spec; log:\n" << deployment_->LogTail(*reward);
  EXPECT_TRUE(deployment_->StopAll().empty());
}

class Orchestrator {
 public:
  explicit Orchestrator(const std::string& address)
      : stub_(zerorl::v1::OrchestratorService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}

  grpc::Status GetRun(const std::string& run_id, zerorl::v1::RunInfo* info) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    zerorl::v1::RunRef ref;
    ref.set_run_id(run_id);
    return stub_->GetRun(&ctx, ref, info);
  }

  grpc::Status Metrics(const std::string& run_id, zerorl::v1::MetricsList* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    zerorl::v1::GetMetricsRequest req;
    req.set_run_id(run_id);
    return stub_->GetMetrics(&ctx, req, out);
  }

  grpc::Status Workers(zerorl::v1::WorkerList* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    return stub_->ListWorkers(&ctx, zerorl::v1::ListWorkersRequest(), out);
  }

 private:
  std::unique_ptr<zerorl::v1::OrchestratorService::Stub> stub_;
};

bool Terminal(zerorl::v1::RunState s) {
  return s == zerorl::v1::RUN_STATE_FINISHED || s == zerorl::v1::RUN_STATE_FAILED || s == zerorl::v1::RUN_STATE_STOPPED;
}

TEST_F(K8sLoopbackRun, SurvivesARolloutRestartAndFinishes) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  LoopbackPod* orchestrator_pod = deployment_->Find("orchestrator");
  LoopbackPod* rollout0 = deployment_->Find("rollout-0");
  ASSERT_NE(orchestrator_pod, nullptr);
  ASSERT_NE(rollout0, nullptr);
  const std::string config_path = orchestrator_pod->argv[orchestrator_pod->argv.size() - 3];
  std::string config_yaml;
  {
    std::ifstream in(config_path);
    std::stringstream ss;
    ss << in.rdbuf();
    config_yaml = ss.str();
  }
  ASSERT_FALSE(config_yaml.empty()) << "no run config at " << config_path;
  const std::string run_id = YAML::Load(config_yaml)["run_id"].as<std::string>();

  Orchestrator orch(deployment_->Address(*orchestrator_pod));
  zerorl::v1::RunInfo info;
  // The orchestrator starts the run its config names once the learner is up.
  grpc::Status st;
  for (auto deadline = std::chrono::steady_clock::now() + kStartTimeout; std::chrono::steady_clock::now() < deadline;) {
    st = orch.GetRun(run_id, &info);
    if (st.ok()) break;
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(st.ok()) << "run " << run_id << ": " << st.error_message() << "\n"
                       << deployment_->LogTail(*orchestrator_pod);

  auto wait_for = [&](auto done, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (orch.GetRun(run_id, &info).ok() && (done(info) || Terminal(info.state()))) return done(info);
      std::this_thread::sleep_for(200ms);
    }
    return false;
  };
  ASSERT_TRUE(wait_for([](const auto& i) { return i.step() >= 2; }, kRunTimeout))
      << "run at step " << info.step() << " state " << zerorl::v1::RunState_Name(info.state()) << " error "
      << info.error() << "\norchestrator log:\n" << deployment_->LogTail(*orchestrator_pod);

  // SIGKILL rollout-0 mid-run, then start it again with the same args, as its StatefulSet would.
  deployment_->Kill(*rollout0);
  auto restarted = deployment_->Start(*rollout0, kStartTimeout);
  ASSERT_TRUE(restarted.ok()) << restarted.message();

  ASSERT_TRUE(wait_for([](const auto& i) { return i.state() == zerorl::v1::RUN_STATE_FINISHED; }, kRunTimeout))
      << "run ended " << zerorl::v1::RunState_Name(info.state()) << " at step " << info.step() << ": " << info.error()
      << "\norchestrator log:\n" << deployment_->LogTail(*orchestrator_pod);
  EXPECT_EQ(info.step(), kTestSteps);

  zerorl::v1::MetricsList metrics;
  ASSERT_TRUE(orch.Metrics(run_id, &metrics).ok());
  ASSERT_EQ(metrics.steps_size(), kTestSteps) << "one metrics record per step, none repeated";
  for (int i = 1; i < metrics.steps_size(); ++i) EXPECT_GT(metrics.steps(i).step(), metrics.steps(i - 1).step());

  // Both rollout pods are known to the orchestrator under their manifest addresses, rollout-0 healthy again.
  zerorl::v1::WorkerList workers;
  ASSERT_TRUE(orch.Workers(&workers).ok());
  std::set<std::string> rollouts;
  for (const auto& w : workers.workers()) {
    if (w.role() == zerorl::v1::WORKER_ROLE_ROLLOUT) rollouts.insert(w.address());
  }
  EXPECT_TRUE(rollouts.count(deployment_->Address(*rollout0))) << "rollout-0 missing from ListWorkers";
  EXPECT_TRUE(deployment_->StopAll().empty());
}

}  // namespace
}  // namespace zerorl
