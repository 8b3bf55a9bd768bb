// `zerorl serve ROLE` as a real process: it listens, answers grpc.health.v1
// and lists its services through server reflection, and exits cleanly on SIGTERM.
#include <signal.h>

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <set>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/testing/subprocess.h"

namespace zerorl {
namespace {

using testing::Subprocess;
using testing::ZerorlBin;

class ServeTest : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(ServeTest, AnswersHealthAndReflection) {
  const auto& [role, service] = GetParam();
  std::string dir = testing::MakeTempDir("serve-" + role);
  std::string cfg = dir + "/run.yaml";
  FILE* f = fopen(cfg.c_str(), "w");
  fprintf(f, "run_id: servetest\nrun_dir: %s\n", dir.c_str());
  fclose(f);

  Subprocess p;
  ASSERT_TRUE(p.Start({ZerorlBin(), "serve", role, "--config", cfg, "--port", "0", "--host", "127.0.0.1"}));
  auto addr = p.WaitForLine("listening ", std::chrono::seconds(60));
  ASSERT_TRUE(addr.has_value()) << "zerorl serve " << role << " did not start";

  auto channel = grpc::CreateChannel(*addr, grpc::InsecureChannelCredentials());
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    auto st = grpc::health::v1::Health::NewStub(channel)->Check(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
    auto stream = stub->ServerReflectionInfo(&ctx);
    grpc::reflection::v1alpha::ServerReflectionRequest req;
    req.set_list_services("*");
    ASSERT_TRUE(stream->Write(req));
    grpc::reflection::v1alpha::ServerReflectionResponse resp;
    ASSERT_TRUE(stream->Read(&resp));
    stream->WritesDone();
    std::set<std::string> names;
    for (const auto& s : resp.list_services_response().service()) names.insert(s.name());
    EXPECT_TRUE(names.count("zerorl.v1." + service)) << "missing " << service;
    EXPECT_TRUE(names.count("grpc.health.v1.Health"));
    EXPECT_TRUE(names.count("grpc.reflection.v1alpha.ServerReflection"));

    // The service's descriptor is served too, so grpcurl can call it.
    grpc::reflection::v1alpha::ServerReflectionRequest sym;
    sym.set_file_containing_symbol("zerorl.v1." + service);
    grpc::ClientContext ctx2;
    auto stream2 = stub->ServerReflectionInfo(&ctx2);
    ASSERT_TRUE(stream2->Write(sym));
    ASSERT_TRUE(stream2->Read(&resp));
    EXPECT_GT(resp.file_descriptor_response().file_descriptor_proto_size(), 0);
    stream2->WritesDone();
  }
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 0);
}

INSTANTIATE_TEST_SUITE_P(Roles, ServeTest,
                         ::testing::Values(std::make_pair(std::string("reward"), std::string("RewardService")),
                                           std::make_pair(std::string("buffer"), std::string("BufferService"))),
                         [](const auto& info) { return info.param.first; });

TEST(ServeCheckTest, CheckParsesConfigAndRejectsBadOnes) {
  std::string out;
  EXPECT_EQ(testing::RunCommand({ZerorlBin(), "serve", "rollout", "--check"}, &out), 0);
  EXPECT_NE(out.find("config ok"), std::string::npos);
  std::string dir = testing::MakeTempDir("serve-check");
  FILE* f = fopen((dir + "/bad.yaml").c_str(), "w");
  fprintf(f, "rollout:\n  group_sz: 3\n");
  fclose(f);
  EXPECT_EQ(testing::RunCommand({ZerorlBin(), "serve", "rollout", "--config", dir + "/bad.yaml", "--check"}, &out), 2);
  EXPECT_EQ(testing::RunCommand({ZerorlBin(), "serve", "nosuchrole", "--check"}, &out), 2);
}

TEST(ZerorlBinaryTest, HelpListsEverySubcommand) {
  std::string out;
  ASSERT_EQ(testing::RunCommand({ZerorlBin(), "--help"}, &out), 0);
  for (const char* c : {"run", "serve", "score", "generate", "pretrain", "bench", "plot", "k8s", "version"})
    EXPECT_NE(out.find(std::string("  ") + c), std::string::npos) << c;
  EXPECT_EQ(testing::RunCommand({ZerorlBin(), "no-such-command"}, &out), 2);
}

}  // namespace
}  // namespace zerorl
