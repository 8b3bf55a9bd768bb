// Who may call what, end to end: every service of every actor (buffer, reward,
// rollout, learner, orchestrator) behind one real gRPC server with an admin
// and an internal token, and every RPC declared in proto/zerorl/v1 called by
// name with raw bytes — no credential, a wrong one, the internal token, the
// admin token — against the access table (common/auth.h). And the reported
// reproduction: a bare `RolloutService/Drain` with payload 08 01 (what
// `curl --http2-prior-knowledge ... --data-binary @req.bin` sends) no longer
// drains a worker; the channels actors use (MakeChannel, in-process) present
// the internal token.
#include <filesystem>
#include <fstream>

#include <google/protobuf/descriptor.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include "buffer/actor.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/server.h"
#include "learner/learner_service.h"
#include "model/test_models.h"
#include "orchestrator/orchestrator_service.h"
#include "orchestrator/worker_registry.h"
#include "reward/actor.h"
#include "rollout/rollout_service.h"
#include "tests/testing/raw_grpc.h"
#include "tests/testing/subprocess.h"
#include "zerorl/v1/rollout.grpc.pb.h"

namespace zerorl {
namespace {

using zerorl::testing::RawCall;

constexpr char kAdmin[] = "access-admin-token";
constexpr char kInternal[] = "access-internal-token";

// Every actor's services on one server (as `zerorl run` serves them).
class Deployment {
 public:
  explicit Deployment(std::shared_ptr<const AdminAuth> auth) : auth_(std::move(auth)) {}
  ~Deployment() {
    server_.Shutdown();
    for (auto& a : actors_) a->Shutdown();
  }

  void Start() {
    dir_ = zerorl::testing::MakeTempDir("access");
    config_ = DefaultRunConfig();
    config_.set_run_id("access");
    config_.mutable_buffer()->set_path(dir_ + "/buffer");
    config_.mutable_reward()->set_spec_path(std::string(ZERORL_SOURCE_DIR) + "/examples/rewards/countdown.yaml");
    config_.mutable_learner()->mutable_checkpoint()->set_dir(dir_ + "/checkpoints");
    ActorOptions opts;
    opts.config = config_;
    opts.auth = auth_;
    for (auto factory : {NewBufferActor, NewRewardActor}) {
      auto actor = factory(opts);
      ASSERT_TRUE(actor.ok()) << actor.status();
      actors_.push_back(std::move(*actor));
    }
    engine_ = std::make_unique<rollout::GenerationEngine>(zerorl::testing::TinyMoe(1), zerorl::testing::CharTokenizer(),
                                                          rollout::GenerationEngine::Options{});
    rollout_ = std::make_unique<rollout::RolloutServiceImpl>(engine_.get(), "w0");
    auto trainer = learner::GrpoTrainer::Create(zerorl::testing::TinyMoe(1), zerorl::testing::CharTokenizer(),
                                                learner::TrainerOptionsFromConfig(config_));
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    learner_ = std::make_unique<learner::LearnerServiceImpl>(std::move(*trainer), config_, nullptr);
    registry_ = std::make_unique<WorkerRegistry>([this](const std::string& a) { return MakeChannel(a, config_.server()); });
    orchestrator_ = std::make_unique<OrchestratorServiceImpl>(auth_, registry_.get(), nullptr);

    std::vector<grpc::Service*> services{rollout_.get(), learner_.get(), orchestrator_.get()};
    for (auto& a : actors_)
      for (auto* s : a->Services()) services.push_back(s);
    auto h = StartServer("127.0.0.1:0", services, config_.server(), auth_);
    ASSERT_TRUE(h.ok()) << h.status();
    server_ = std::move(*h);
    address_ = "127.0.0.1:" + std::to_string(server_.port);
    channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    for (auto& a : actors_) ASSERT_TRUE(a->Start().ok());
  }

  const std::string& address() const { return address_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  grpc::Server* server() { return server_.server.get(); }
  zerorl::v1::RunConfig& config() { return config_; }

 private:
  std::shared_ptr<const AdminAuth> auth_;
  std::string dir_, address_;
  zerorl::v1::RunConfig config_;
  std::vector<std::unique_ptr<Actor>> actors_;
  std::unique_ptr<rollout::GenerationEngine> engine_;
  std::unique_ptr<rollout::RolloutServiceImpl> rollout_;
  std::unique_ptr<learner::LearnerServiceImpl> learner_;
  std::unique_ptr<WorkerRegistry> registry_;
  std::unique_ptr<OrchestratorServiceImpl> orchestrator_;
  ServerHandle server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// Every RPC of every zerorl service, "/zerorl.v1.Service/Method".
std::vector<std::string> AllZerorlMethods() {
  std::vector<std::string> out;
  const std::string dir = std::string(ZERORL_SOURCE_DIR) + "/proto/zerorl/v1";
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".proto") continue;
    const auto* file =
        google::protobuf::DescriptorPool::generated_pool()->FindFileByName("zerorl/v1/" + e.path().filename().string());
    EXPECT_NE(file, nullptr) << e.path();
    if (file == nullptr) continue;
    for (int s = 0; s < file->service_count(); ++s)
      for (int m = 0; m < file->service(s)->method_count(); ++m)
        out.push_back("/" + file->service(s)->full_name() + "/" + file->service(s)->method(m)->name());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool Refused(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAUTHENTICATED || s.error_code() == grpc::StatusCode::PERMISSION_DENIED;
}

// A Generate request the tiny model answers quickly.
std::string GenerateBytes() {
  zerorl::v1::GenerateRequest req;
  req.set_request_id("access");
  req.add_prompts()->set_text("hi");
  req.set_group_size(1);
  req.mutable_sampling()->set_max_new_tokens(2);
  return req.SerializeAsString();
}

TEST(AccessTest, EveryRpcWithoutWrongInternalAndAdminCredentials) {
  Deployment d(std::make_shared<AdminAuth>(kAdmin, kInternal));
  ASSERT_NO_FATAL_FAILURE(d.Start());
  const std::vector<std::string> methods = AllZerorlMethods();
  ASSERT_GE(methods.size(), 35u);
  // Drain last, so that the calls before it meet a serving worker.
  std::vector<std::string> ordered;
  for (const auto& m : methods)
    if (m != "/zerorl.v1.RolloutService/Drain") ordered.push_back(m);
  ordered.push_back("/zerorl.v1.RolloutService/Drain");
  int checked = 0;
  for (const std::string& m : ordered) {
    SCOPED_TRACE(m);
    const auto need = RequiredAccess(m);
    ASSERT_TRUE(need.has_value()) << "not in the access table";
    const auto call = [&](const std::string& token) {
      return RawCall(d.channel(), m, "", token, std::chrono::milliseconds(1500));
    };
    const grpc::Status none = call(""), wrong = call("not-the-token"), internal = call(kInternal),
                       admin = call(kAdmin);
    switch (*need) {
      case Access::kAnyone:
      case Access::kReader:
        EXPECT_FALSE(Refused(none)) << none.error_message();
        EXPECT_FALSE(Refused(wrong)) << wrong.error_message();
        EXPECT_FALSE(Refused(internal)) << internal.error_message();
        break;
      case Access::kActor:
        EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED) << none.error_message();
        EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED) << wrong.error_message();
        EXPECT_FALSE(Refused(internal)) << internal.error_message();
        break;
      case Access::kAdmin:
        EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED) << none.error_message();
        EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED) << wrong.error_message();
        EXPECT_EQ(internal.error_code(), grpc::StatusCode::PERMISSION_DENIED) << internal.error_message();
        break;
    }
    EXPECT_FALSE(Refused(admin)) << admin.error_message();
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(methods.size()));
  // Health stays open to probes.
  EXPECT_TRUE(RawCall(d.channel(), "/grpc.health.v1.Health/Check", "").ok());
}

// The finding as reported: `printf '\x00\x00\x00\x00\x02\x08\x01' > req.bin; curl
// --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers'
// --data-binary @req.bin http://HOST:PORT/zerorl.v1.RolloutService/Drain`
// answered OK and the run failed ("rollout worker is draining").
TEST(AccessTest, BareDrainIsRefusedAndTheWorkerKeepsServing) {
  Deployment d(std::make_shared<AdminAuth>(kAdmin, kInternal));
  ASSERT_NO_FATAL_FAILURE(d.Start());
  const std::string drain = "/zerorl.v1.RolloutService/Drain", generate = "/zerorl.v1.RolloutService/Generate";
  const std::string abort_in_flight("\x08\x01", 2);  // DrainRequest{abort_in_flight: true}
  const grpc::Status bare = RawCall(d.channel(), drain, abort_in_flight);
  EXPECT_EQ(bare.error_code(), grpc::StatusCode::UNAUTHENTICATED) << bare.error_message();
  EXPECT_NE(bare.error_message().find("internal_token_file"), std::string::npos) << bare.error_message();
  EXPECT_EQ(RawCall(d.channel(), drain, abort_in_flight, "guess").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status gen = RawCall(d.channel(), generate, GenerateBytes(), kInternal, std::chrono::seconds(30));
  EXPECT_TRUE(gen.ok()) << "the worker must still serve: " << gen.error_message();
  // The deployment's own credential drains it, as the orchestrator may.
  EXPECT_TRUE(RawCall(d.channel(), drain, abort_in_flight, kInternal).ok());
  const grpc::Status after = RawCall(d.channel(), generate, GenerateBytes(), kInternal, std::chrono::seconds(30));
  EXPECT_FALSE(after.ok()) << "a drained worker takes no new work";
  EXPECT_FALSE(Refused(after)) << after.error_message();
}

TEST(AccessTest, LearnerCheckpointNeedsTheCredential) {
  Deployment d(std::make_shared<AdminAuth>(kAdmin, kInternal));
  ASSERT_NO_FATAL_FAILURE(d.Start());
  const std::string save = "/zerorl.v1.LearnerService/SaveCheckpoint";
  EXPECT_EQ(RawCall(d.channel(), save, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(RawCall(d.channel(), save, "", kAdmin + std::string("x")).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status ok = RawCall(d.channel(), save, "", kInternal, std::chrono::seconds(30));
  EXPECT_TRUE(ok.ok()) << ok.error_message();
}

// The channels actors make present the internal token: MakeChannel from
// server.internal_token_file, and in-process channels with the token given.
TEST(AccessTest, ActorChannelsPresentTheInternalToken) {
  Deployment d(std::make_shared<AdminAuth>(kAdmin, kInternal));
  ASSERT_NO_FATAL_FAILURE(d.Start());
  const std::string dir = zerorl::testing::MakeTempDir("access-channels");
  std::ofstream(dir + "/internal") << kInternal << "\n";
  std::ofstream(dir + "/other") << "another-deployment\n";
  zerorl::v1::ServerConfig with;
  with.set_internal_token_file(dir + "/internal");
  zerorl::v1::RolloutService::Stub ok_stub(MakeChannel(d.address(), with));
  zerorl::v1::ServerConfig other;
  other.set_internal_token_file(dir + "/other");
  zerorl::v1::RolloutService::Stub other_stub(MakeChannel(d.address(), other));
  zerorl::v1::RolloutService::Stub none_stub(MakeChannel(d.address(), zerorl::v1::ServerConfig()));
  zerorl::v1::RolloutService::Stub in_process(InProcessChannel(d.server(), d.config().server(), kInternal));
  const auto drain = [](zerorl::v1::RolloutService::Stub& stub) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    zerorl::v1::DrainRequest req;  // finish in-flight work, abort nothing
    zerorl::v1::DrainResponse resp;
    return stub.Drain(&ctx, req, &resp);
  };
  EXPECT_EQ(drain(none_stub).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(drain(other_stub).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(drain(ok_stub).ok());
  EXPECT_TRUE(drain(in_process).ok());
}

// A server without an internal token (plain `zerorl serve`, as before this
// table) leaves actor calls open; admin calls still need the admin token.
TEST(AccessTest, UnconfiguredServerKeepsActorCallsOpen) {
  Deployment d(std::make_shared<AdminAuth>(kAdmin));
  ASSERT_NO_FATAL_FAILURE(d.Start());
  EXPECT_FALSE(Refused(RawCall(d.channel(), "/zerorl.v1.BufferService/Append", "")));
  EXPECT_EQ(RawCall(d.channel(), "/zerorl.v1.BufferService/Backup", "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace zerorl
