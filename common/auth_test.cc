#include "common/auth.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <google/protobuf/descriptor.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/server_builder.h>

#include "common/server.h"
#include "common/status.h"
#include "zerorl/v1/rollout.grpc.pb.h"

#include "zerorl/v1/buffer.pb.h"
#include "zerorl/v1/learner.pb.h"
#include "zerorl/v1/orchestrator.pb.h"
#include "zerorl/v1/reward.pb.h"
#include "zerorl/v1/rollout.pb.h"

namespace zerorl {
namespace {

TEST(AuthTest, TokenFileIsTrimmedAndEmptyRejected) {
  std::string p = ::testing::TempDir() + "/tok";
  std::ofstream(p) << "  s3cret\n";
  auto t = ReadTokenFile(p);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, "s3cret");
  std::ofstream(p) << "\n";
  EXPECT_FALSE(ReadTokenFile(p).ok());
  EXPECT_EQ(ReadTokenFile("/nonexistent/tok").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(ReadTokenFile("").ok());
}

TEST(AuthTest, NoTokenRefusesAdmin) {
  AdminAuth auth;
  EXPECT_FALSE(auth.has_token());
}

// Metadata as a server sees it: string_refs into `storage`.
class Md {
 public:
  Md() = default;
  explicit Md(const std::string& authorization) : value_(authorization) {
    map_.emplace(grpc::string_ref(key_), grpc::string_ref(value_));
  }
  const std::multimap<grpc::string_ref, grpc::string_ref>& map() const { return map_; }

 private:
  std::string key_ = "authorization", value_;
  std::multimap<grpc::string_ref, grpc::string_ref> map_;
};

absl::StatusCode Code(const AdminAuth& auth, const std::string& method, const Md& md) {
  return auth.Authorize(method, md.map()).code();
}

// Every RPC of every service declared in proto/zerorl/v1/*.proto has an entry,
// and every zerorl entry names a real RPC.
TEST(AccessTableTest, CoversEveryMethodOfEveryService) {
  // Link each file's messages in, so its descriptor is in the generated pool.
  for (const auto* d : {zerorl::v1::AppendRequest::descriptor(), zerorl::v1::TrainRequest::descriptor(),
                        zerorl::v1::RunRef::descriptor(), zerorl::v1::ScoreRequest::descriptor(),
                        zerorl::v1::DrainRequest::descriptor()})
    ASSERT_NE(d, nullptr);
  std::set<std::string> declared;
  const std::string dir = std::string(ZERORL_SOURCE_DIR) + "/proto/zerorl/v1";
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".proto") continue;
    ++files;
    const std::string name = "zerorl/v1/" + e.path().filename().string();
    const auto* file = google::protobuf::DescriptorPool::generated_pool()->FindFileByName(name);
    ASSERT_NE(file, nullptr) << name << " is not linked into this test: add one of its messages above";
    for (int s = 0; s < file->service_count(); ++s) {
      const auto* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        const std::string method = "/" + service->full_name() + "/" + service->method(m)->name();
        declared.insert(method);
        EXPECT_TRUE(RequiredAccess(method).has_value()) << method << " (" << name << ") has no entry in AccessTable()";
      }
    }
  }
  EXPECT_GE(files, 7);
  EXPECT_GE(declared.size(), 35u);  // buffer 10, learner 4, orchestrator 10, reward 5, rollout 6
  for (const auto& [method, access] : AccessTable()) {
    if (method.rfind("/zerorl.", 0) == 0) {
      EXPECT_EQ(declared.count(std::string(method)), 1u) << method << " is in the table but not in any .proto";
    }
  }
}

TEST(AccessTableTest, CallsThatStopOrChangeARunAreNeverOpen) {
  for (const char* m : {"/zerorl.v1.RolloutService/UpdateWeights", "/zerorl.v1.RolloutService/Drain",
                        "/zerorl.v1.RolloutService/Generate", "/zerorl.v1.RolloutService/ReceiveWeightsNccl",
                        "/zerorl.v1.RolloutService/JoinWeightGroup", "/zerorl.v1.LearnerService/Train",
                        "/zerorl.v1.LearnerService/SaveCheckpoint", "/zerorl.v1.BufferService/Append",
                        "/zerorl.v1.BufferService/Lease", "/zerorl.v1.BufferService/Ack",
                        "/zerorl.v1.RewardService/Score", "/zerorl.v1.OrchestratorService/RegisterWorker"})
    EXPECT_EQ(RequiredAccess(m), Access::kActor) << m;
  for (const char* m : {"/zerorl.v1.OrchestratorService/CreateRun", "/zerorl.v1.OrchestratorService/PauseRun",
                        "/zerorl.v1.OrchestratorService/ResumeRun", "/zerorl.v1.OrchestratorService/StopRun",
                        "/zerorl.v1.RewardService/SetRewardSpec", "/zerorl.v1.RewardService/Rollback",
                        "/zerorl.v1.BufferService/Backup", "/zerorl.v1.BufferService/Compact"})
    EXPECT_EQ(RequiredAccess(m), Access::kAdmin) << m;
  EXPECT_EQ(RequiredAccess("/grpc.health.v1.Health/Check"), Access::kAnyone);
  EXPECT_FALSE(RequiredAccess("/zerorl.v1.RolloutService/Unknown").has_value());
}

TEST(AccessTableTest, ConfiguredServerChecksEveryCredential) {
  const AdminAuth auth("admin-tok", "internal-tok");
  const Md none, wrong("Bearer nope"), internal("Bearer internal-tok"), admin("Bearer admin-tok"),
      basic("Basic YWRtaW4=");
  const std::string drain = "/zerorl.v1.RolloutService/Drain", stop = "/zerorl.v1.OrchestratorService/StopRun",
                    read = "/zerorl.v1.BufferService/ListTrajectories", health = "/grpc.health.v1.Health/Check";
  using C = absl::StatusCode;
  EXPECT_EQ(Code(auth, drain, none), C::kUnauthenticated);
  EXPECT_EQ(Code(auth, drain, wrong), C::kUnauthenticated);
  EXPECT_EQ(Code(auth, drain, basic), C::kUnauthenticated);
  EXPECT_EQ(Code(auth, drain, internal), C::kOk);
  EXPECT_EQ(Code(auth, drain, admin), C::kOk);
  EXPECT_EQ(Code(auth, stop, none), C::kUnauthenticated);
  EXPECT_EQ(Code(auth, stop, wrong), C::kUnauthenticated);
  EXPECT_EQ(Code(auth, stop, internal), C::kPermissionDenied);
  EXPECT_EQ(Code(auth, stop, admin), C::kOk);
  EXPECT_EQ(Code(auth, read, none), C::kOk);
  EXPECT_EQ(Code(auth, health, wrong), C::kOk);
  // Fail closed: a method the table does not know, whatever the credential.
  EXPECT_EQ(Code(auth, "/zerorl.v1.RolloutService/Shutdown", admin), C::kPermissionDenied);
  // A prefix of the token is not the token.
  EXPECT_EQ(Code(auth, drain, Md("Bearer internal-to")), C::kUnauthenticated);
  // The message names the method and what it needs.
  const absl::Status s = auth.Authorize(drain, none.map());
  EXPECT_NE(s.message().find("RolloutService/Drain"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("internal_token_file"), absl::string_view::npos) << s;
}

TEST(AccessTableTest, PrivateReadsAndUnconfiguredServers) {
  using C = absl::StatusCode;
  const std::string read = "/zerorl.v1.BufferService/GetTrajectory", drain = "/zerorl.v1.RolloutService/Drain",
                    stop = "/zerorl.v1.OrchestratorService/StopRun";
  const AdminAuth private_reads("admin-tok", "internal-tok", /*private_reads=*/true);
  EXPECT_EQ(Code(private_reads, read, Md()), C::kUnauthenticated);
  EXPECT_EQ(Code(private_reads, read, Md("Bearer nope")), C::kUnauthenticated);
  EXPECT_EQ(Code(private_reads, read, Md("Bearer internal-tok")), C::kOk);
  EXPECT_EQ(Code(private_reads, read, Md("Bearer admin-tok")), C::kOk);
  // No internal token (plain `zerorl serve`): actor calls open, as before; admin still needs its token.
  const AdminAuth admin_only("admin-tok");
  EXPECT_EQ(Code(admin_only, drain, Md()), C::kOk);
  EXPECT_EQ(Code(admin_only, stop, Md()), C::kUnauthenticated);
  EXPECT_EQ(Code(admin_only, stop, Md("Bearer admin-tok")), C::kOk);
  // No tokens at all: admin calls are disabled.
  EXPECT_EQ(Code(AdminAuth(), stop, Md("Bearer admin-tok")), C::kUnauthenticated);
}

TEST(AccessTableTest, FromConfigNamesTheKeyAndRefusesOneTokenForBoth) {
  const std::string dir = ::testing::TempDir();
  std::ofstream(dir + "/admin") << "a-token\n";
  std::ofstream(dir + "/internal") << "i-token\n";
  zerorl::v1::ServerConfig c;
  c.set_token_file(dir + "/admin");
  c.set_internal_token_file(dir + "/internal");
  auto auth = AdminAuth::FromConfig(c);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE(auth->has_internal_token());
  EXPECT_EQ(auth->internal_token(), "i-token");
  c.set_internal_token_file(dir + "/missing");
  auto missing = AdminAuth::FromConfig(c);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("server.internal_token_file"), absl::string_view::npos);
  c.set_internal_token_file(dir + "/admin");
  auto same = AdminAuth::FromConfig(c);
  ASSERT_FALSE(same.ok());
  EXPECT_EQ(same.status().code(), absl::StatusCode::kInvalidArgument);
}

// A RolloutService whose Drain, like every zerorl handler, returns
// CheckCallAccess(ctx) first; it counts the drains that got through.
class CountingRollout final : public zerorl::v1::RolloutService::Service {
 public:
  std::atomic<int> drains{0};
  grpc::Status Drain(grpc::ServerContext* ctx, const zerorl::v1::DrainRequest*, zerorl::v1::DrainResponse*) override {
    if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
    ++drains;
    return grpc::Status::OK;
  }
};

// One call by method name with raw request bytes, as curl --http2-prior-knowledge sends it.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& bytes, const std::string& token = "") {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::Status status;
  grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(&ctx, method, request, &cq);
  call->StartCall();
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

// The issue-16 reproduction against a real server: the bare Drain (payload
// 08 01, no metadata) and one with a guessed token are refused before the
// handler acts; the channels actors use (MakeChannel with
// server.internal_token_file, in-process channels) get through.
TEST(AccessServerTest, BareDrainIsRefusedAndActorChannelsGetThrough) {
  CountingRollout rollout;
  auto server = StartServer("127.0.0.1:0", {&rollout}, zerorl::v1::ServerConfig(),
                            std::make_shared<AdminAuth>("admin-tok", "internal-tok"));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = "127.0.0.1:" + std::to_string(server->port);
  auto bare = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  const std::string drain = "/zerorl.v1.RolloutService/Drain", abort_in_flight("\x08\x01", 2);
  EXPECT_EQ(RawCall(bare, drain, abort_in_flight).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(RawCall(bare, drain, abort_in_flight, "guess").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(rollout.drains.load(), 0);
  EXPECT_TRUE(RawCall(bare, drain, abort_in_flight, "internal-tok").ok());
  EXPECT_TRUE(RawCall(bare, drain, abort_in_flight, "admin-tok").ok());
  EXPECT_EQ(rollout.drains.load(), 2);
  // Health stays open to probes.
  EXPECT_TRUE(RawCall(bare, "/grpc.health.v1.Health/Check", "").ok());

  const std::string dir = ::testing::TempDir();
  std::ofstream(dir + "/internal-ok") << "internal-tok\n";
  zerorl::v1::ServerConfig with;
  with.set_internal_token_file(dir + "/internal-ok");
  const auto typed_drain = [](const std::shared_ptr<grpc::Channel>& channel) {
    auto stub = zerorl::v1::RolloutService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    zerorl::v1::DrainResponse resp;
    return stub->Drain(&ctx, zerorl::v1::DrainRequest(), &resp);
  };
  EXPECT_TRUE(typed_drain(MakeChannel(address, with)).ok());
  EXPECT_EQ(typed_drain(MakeChannel(address, zerorl::v1::ServerConfig())).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(typed_drain(InProcessChannel(server->server.get(), zerorl::v1::ServerConfig(), "internal-tok")).ok());
  EXPECT_EQ(typed_drain(InProcessChannel(server->server.get(), zerorl::v1::ServerConfig(), "")).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(rollout.drains.load(), 4);
  server->Shutdown();
}

// Fail closed: a handler on a server built without StartServer's interceptor
// has no verdict and refuses.
TEST(AccessServerTest, NoVerdictWithoutTheInterceptorRefuses) {
  CountingRollout rollout;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&rollout);
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  const grpc::Status s = RawCall(channel, "/zerorl.v1.RolloutService/Drain", "", "internal-tok");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_EQ(rollout.drains.load(), 0);
  server->Shutdown();
}

TEST(AccessTableTest, RandomTokensDiffer) {
  auto a = NewRandomToken(), b = NewRandomToken();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 64u);
  EXPECT_NE(*a, *b);
}

}  // namespace
}  // namespace zerorl
