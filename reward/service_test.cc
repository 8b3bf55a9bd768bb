// RewardService over gRPC: scoring, admin auth, hot swap under load (every
// score's version was active during its call; an invalid spec changes
// nothing), history and rollback, and the spec file watcher.
#include "reward/service.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "common/server.h"
#include "reward/actor.h"
#include "reward/spec_watcher.h"

namespace zerorl::reward {
namespace {

using zerorl::v1::RewardSpec;

RewardSpec MathSpec(double weight) {
  RewardSpec s;
  s.set_name("w" + std::to_string(weight));
  auto* t = s.add_terms();
  t->set_kind(zerorl::v1::TERM_KIND_MATH);
  t->set_weight(weight);
  return s;
}

class RewardServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SpecEnvironment env;
    env.sandbox = MakeSandboxProvider(zerorl::v1::SandboxConfig());
    registry_ = std::make_shared<SpecRegistry>(env);
    ASSERT_TRUE(registry_->Set(MathSpec(1.0), "config", "initial").ok());
    scorer_ = std::make_shared<RewardScorer>(registry_, 2);
    auto auth = std::make_shared<AdminAuth>("s3cret");
    service_ = std::make_unique<RewardServiceImpl>(scorer_, auth);
    auto h = StartServer("127.0.0.1:0", {service_.get()}, zerorl::v1::ServerConfig(), auth);
    ASSERT_TRUE(h.ok()) << h.status();
    server_ = std::move(*h);
    stub_ = zerorl::v1::RewardService::NewStub(
        MakeChannel("127.0.0.1:" + std::to_string(server_.port), zerorl::v1::ServerConfig()));
  }
  void TearDown() override { server_.Shutdown(); }

  std::unique_ptr<grpc::ClientContext> Ctx(bool admin) {
    auto ctx = ContextWithDeadline(std::chrono::seconds(10));
    if (admin) AttachBearerToken(ctx.get(), "s3cret");
    return ctx;
  }

  zerorl::v1::ScoreRequest Items(int n) {
    zerorl::v1::ScoreRequest req;
    for (int i = 0; i < n; ++i) {
      auto* it = req.add_items();
      it->set_id(std::to_string(i));
      it->set_completion("so \\boxed{" + std::to_string(i % 2 == 0 ? 18 : 17) + "}");
      it->mutable_answer()->set_math("18");
    }
    return req;
  }

  std::shared_ptr<SpecRegistry> registry_;
  std::shared_ptr<RewardScorer> scorer_;
  std::unique_ptr<RewardServiceImpl> service_;
  ServerHandle server_;
  std::unique_ptr<zerorl::v1::RewardService::Stub> stub_;
};

TEST_F(RewardServiceTest, ScoresBatch) {
  zerorl::v1::ScoreResponse resp;
  auto req = Items(6);
  ASSERT_TRUE(stub_->Score(Ctx(false).get(), req, &resp).ok());
  ASSERT_EQ(resp.results_size(), 6);
  for (int i = 0; i < 6; ++i) {
    EXPECT_DOUBLE_EQ(resp.results(i).reward(), i % 2 == 0 ? 1.0 : 0.0);
    EXPECT_EQ(resp.results(i).spec_version(), 1);
  }
  // A candidate spec is a dry run: version 0, active spec untouched.
  *req.mutable_candidate_spec() = MathSpec(3.0);
  zerorl::v1::ScoreResponse dry;
  ASSERT_TRUE(stub_->Score(Ctx(false).get(), req, &dry).ok());
  ASSERT_EQ(dry.results_size(), 6);
  EXPECT_DOUBLE_EQ(dry.results(0).reward(), 3.0);
  EXPECT_EQ(dry.results(0).spec_version(), 0);
  EXPECT_EQ(registry_->Current().version, 1);
}

TEST_F(RewardServiceTest, AdminCallsNeedTheToken) {
  zerorl::v1::SetRewardSpecRequest set;
  *set.mutable_spec() = MathSpec(2.0);
  zerorl::v1::RewardSpecVersion v;
  EXPECT_EQ(stub_->SetRewardSpec(Ctx(false).get(), set, &v).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  zerorl::v1::RollbackRequest rb;
  rb.set_version(1);
  EXPECT_EQ(stub_->Rollback(Ctx(false).get(), rb, &v).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(registry_->Current().version, 1);
  ASSERT_TRUE(stub_->SetRewardSpec(Ctx(true).get(), set, &v).ok());
  EXPECT_EQ(v.version(), 2);
  EXPECT_EQ(v.source(), "rpc");
}

TEST_F(RewardServiceTest, YamlHistoryRollbackAndInvalidSpecs) {
  zerorl::v1::SetRewardSpecRequest set;
  set.set_yaml("name: double\nterms:\n  - {kind: math, weight: 2}\n");
  set.set_reason("try double");
  zerorl::v1::RewardSpecVersion v;
  ASSERT_TRUE(stub_->SetRewardSpec(Ctx(true).get(), set, &v).ok());
  EXPECT_EQ(v.version(), 2);
  zerorl::v1::SetRewardSpecRequest bad;
  bad.set_yaml("terms:\n  - {kind: math, math: {extractors: [nope]}}\n");
  auto s = stub_->SetRewardSpec(Ctx(true).get(), bad, &v);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("nope"), std::string::npos);
  zerorl::v1::GetRewardSpecRequest get;
  ASSERT_TRUE(stub_->GetRewardSpec(Ctx(false).get(), get, &v).ok());
  EXPECT_EQ(v.version(), 2);
  EXPECT_EQ(v.spec().name(), "double");
  zerorl::v1::RollbackRequest rb;
  rb.set_version(1);
  ASSERT_TRUE(stub_->Rollback(Ctx(true).get(), rb, &v).ok());
  EXPECT_EQ(v.version(), 3);
  EXPECT_EQ(v.source(), "rollback");
  EXPECT_DOUBLE_EQ(v.spec().terms(0).weight(), 1.0);
  rb.set_version(42);
  EXPECT_EQ(stub_->Rollback(Ctx(true).get(), rb, &v).error_code(), grpc::StatusCode::NOT_FOUND);
  zerorl::v1::ListSpecVersionsResponse list;
  ASSERT_TRUE(stub_->ListSpecVersions(Ctx(false).get(), {}, &list).ok());
  EXPECT_EQ(list.versions_size(), 3);
  EXPECT_EQ(list.active_version(), 3);
  EXPECT_EQ(list.versions(1).reason(), "try double");
}

TEST_F(RewardServiceTest, HotSwapUnderLoad) {
  // Version v has weight v (v >= 2) so each score proves which spec produced it.
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, failures{0};
  std::map<int64_t, double> weight_of = {{1, 1.0}};
  std::mutex weight_mu;
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      auto stub = zerorl::v1::RewardService::NewStub(
          MakeChannel("127.0.0.1:" + std::to_string(server_.port), zerorl::v1::ServerConfig()));
      while (!stop.load()) {
        int64_t lo = registry_->Current().version;
        zerorl::v1::ScoreResponse resp;
        auto ctx = ContextWithDeadline(std::chrono::seconds(10));
        auto s = stub->Score(ctx.get(), Items(8), &resp);
        int64_t hi = registry_->Current().version;
        if (!s.ok() || resp.results_size() != 8) {
          ++failures;
          continue;
        }
        int64_t v = resp.results(0).spec_version();
        std::lock_guard<std::mutex> lock(weight_mu);
        for (const auto& r : resp.results()) {
          if (r.spec_version() != v) ++failures;  // one version per call
        }
        if (v < lo || v > hi) ++failures;          // active when the call ran
        if (resp.results(0).reward() != weight_of[v]) ++failures;
        ++calls;
      }
    });
  }
  for (int k = 2; k <= 20; ++k) {
    {
      std::lock_guard<std::mutex> lock(weight_mu);
      weight_of[k] = k;
    }
    auto v = registry_->Set(MathSpec(k), "rpc", "swap");
    ASSERT_TRUE(v.ok());
    ASSERT_EQ(v->version(), k);
    RewardSpec bad;  // an invalid spec between swaps changes nothing
    EXPECT_FALSE(registry_->Set(bad, "rpc", "bad").ok());
    EXPECT_EQ(registry_->Current().version, k);
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
  }
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(calls.load(), 20);
  EXPECT_EQ(registry_->History().size(), 20u);
}

TEST(SpecFileWatcher, ReloadsValidAndRefusesInvalid) {
  SpecEnvironment env;
  env.sandbox = MakeSandboxProvider(zerorl::v1::SandboxConfig());
  SpecRegistry registry(env);
  std::string path = ::testing::TempDir() + "/watched_spec." + std::to_string(getpid()) + ".yaml";
  std::string v1 = "name: one\nterms:\n  - {kind: math}\n";
  std::ofstream(path) << v1;
  ASSERT_TRUE(registry.Set(*ParseRewardSpecYaml(v1, path), "file", "initial").ok());
  SpecFileWatcher watcher(&registry, path, v1, 20);
  auto wait_for = [&](auto pred) {
    for (int i = 0; i < 200 && !pred(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return pred();
  };
  std::ofstream(path) << "name: two\nterms:\n  - {kind: math, weight: 2}\n";
  ASSERT_TRUE(wait_for([&] { return registry.Current().version == 2; }));
  EXPECT_EQ(registry.CurrentInfo()->source(), "file");
  std::ofstream(path) << "name: broken\nterms:\n  - {kind: nonsense}\n";
  ASSERT_TRUE(wait_for([&] { return watcher.refusals() == 1; }));
  EXPECT_EQ(registry.Current().version, 2);
  EXPECT_EQ(registry.Current().spec->spec().name(), "two");
  // ConfigMap style: a new file renamed over the old one.
  std::string tmp = path + ".new";
  std::ofstream(tmp) << "name: three\nterms:\n  - {kind: format}\n";
  std::rename(tmp.c_str(), path.c_str());
  ASSERT_TRUE(wait_for([&] { return registry.Current().version == 3; }));
  // The watcher counts a reload after the registry has made it current.
  EXPECT_TRUE(wait_for([&] { return watcher.reloads() == 2; })) << watcher.reloads();
  EXPECT_EQ(watcher.refusals(), 1);
}

}  // namespace
}  // namespace zerorl::reward

namespace zerorl {
namespace {

TEST(RewardActor, LoadsSpecFromConfigAndRefusesBadOnes) {
  ActorOptions o;
  o.auth = std::make_shared<AdminAuth>();
  o.config.mutable_reward()->set_spec_path(std::string(ZERORL_SOURCE_DIR) + "/examples/rewards/countdown.yaml");
  o.config.mutable_reward()->set_watch_spec(true);
  auto actor = NewRewardActor(o);
  ASSERT_TRUE(actor.ok()) << actor.status();
  EXPECT_EQ((*actor)->Services().size(), 1u);
  EXPECT_EQ((*actor)->Describe(), "reward spec v1 (countdown)");
  (*actor)->Shutdown();
  ActorOptions d;
  d.auth = o.auth;
  d.config.mutable_dataset()->set_kind(zerorl::v1::DATASET_KIND_GSM8K);
  auto builtin = NewRewardActor(d);
  ASSERT_TRUE(builtin.ok()) << builtin.status();
  EXPECT_EQ((*builtin)->Describe(), "reward spec v1 (r1zero-math)");
  o.config.mutable_reward()->set_spec_path("/nonexistent/spec.yaml");
  EXPECT_EQ(NewRewardActor(o).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace zerorl
