// The zerorlctl binary against `zerorl serve buffer` and `zerorl serve reward`
// processes on separate ports (--buffer-addr / --reward-addr): listing, a live
// tail ended by Ctrl-C (exit 0), the admin token, and exit 3 with one clear
// message once the server is gone.
#include <signal.h>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <grpcpp/create_channel.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/cli/ctl_fixture.h"
#include "tests/testing/subprocess.h"

namespace zerorl::ctl::testing {
namespace {

namespace v1 = zerorl::v1;
using zerorl::testing::Subprocess;

std::string CtlBin() { return std::string(ZERORL_BINARY_DIR) + "/zerorlctl"; }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct Ran {
  int code = -1;
  std::string out, err;
};

// Runs the zerorlctl binary to completion, capturing stdout and stderr.
Ran RunCtl(const std::string& dir, const std::vector<std::string>& args, std::vector<std::string> env = {}) {
  static int n = 0;
  std::string err_path = absl::StrCat(dir, "/ctl-stderr-", n++);
  std::vector<std::string> argv = {CtlBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess p;
  Ran r;
  if (!p.Start(argv, err_path, env)) return r;
  while (auto line = p.ReadLine(std::chrono::seconds(60))) r.out += *line + "\n";
  r.code = p.Wait(std::chrono::seconds(30));
  r.err = ReadAll(err_path);
  return r;
}

class CtlServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = zerorl::testing::MakeTempDir("ctl-serve");
    std::ofstream(dir_ + "/token") << "serve-token\n";
    std::ofstream(dir_ + "/run.yaml") << "run_id: s\nrun_dir: " << dir_ << "/run\nserver:\n  token_file: " << dir_
                                      << "/token\n";
    buffer_addr_ = Serve("buffer", &buffer_);
    reward_addr_ = Serve("reward", &reward_);
  }

  std::string Serve(const std::string& role, Subprocess* p) {
    EXPECT_TRUE(p->Start({zerorl::testing::ZerorlBin(), "serve", role, "--config", dir_ + "/run.yaml", "--port", "0",
                          "--host", "127.0.0.1"}));
    auto addr = p->WaitForLine("listening ", std::chrono::seconds(60));
    EXPECT_TRUE(addr.has_value()) << "zerorl serve " << role << " did not start";
    return addr.value_or("");
  }

  bool Append(int64_t step_begin, int64_t step_end) {
    auto stub = v1::BufferService::NewStub(grpc::CreateChannel(buffer_addr_, grpc::InsecureChannelCredentials()));
    v1::AppendRequest req;
    for (auto& g : CraftedGroups("s", step_begin, step_end, 1, 4)) *req.add_groups() = std::move(g);
    v1::AppendResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub->Append(&ctx, req, &resp).ok();
  }

  // Split deployment: the orchestrator address leads nowhere; the overrides are used.
  std::vector<std::string> Addrs() {
    return {"--addr", "127.0.0.1:1", "--buffer-addr", buffer_addr_, "--reward-addr", reward_addr_};
  }
  std::vector<std::string> With(std::vector<std::string> tail) {
    std::vector<std::string> a = Addrs();
    a.insert(a.end(), tail.begin(), tail.end());
    return a;
  }

  std::string dir_, buffer_addr_, reward_addr_;
  Subprocess buffer_, reward_;
};

TEST_F(CtlServeTest, ListsTailsAndStopsOnCtrlC) {
  ASSERT_TRUE(Append(0, 2));
  Ran list = RunCtl(dir_, With({"-o", "jsonl", "traj", "list", "--run", "s", "--step", "1"}));
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_EQ(JsonlIds(list.out), (std::vector<std::string>{"s/1/0/0", "s/1/0/1", "s/1/0/2", "s/1/0/3"}));
  // The run is found without --run when it is the buffer's only one; the buffer address from the environment.
  Ran env = RunCtl(dir_, {"--addr", "127.0.0.1:1", "-o", "jsonl", "traj", "list", "--step", "0"},
                   {"ZERORL_BUFFER_ADDR=" + buffer_addr_});
  ASSERT_EQ(env.code, 0) << env.err;
  EXPECT_EQ(JsonlIds(env.out).size(), 4u);

  Subprocess tail;
  std::string err_path = dir_ + "/tail-stderr";
  std::vector<std::string> argv = {CtlBin()};
  for (const auto& a : With({"traj", "tail", "--run", "s"})) argv.push_back(a);
  ASSERT_TRUE(tail.Start(argv, err_path));
  auto header = tail.ReadLine(std::chrono::seconds(30));
  ASSERT_TRUE(header.has_value());
  EXPECT_EQ(header->rfind("ID", 0), 0u) << *header;
  std::optional<std::string> row;
  for (int64_t step = 100; step < 150 && !row; ++step) {
    ASSERT_TRUE(Append(step, step + 1));
    row = tail.ReadLine(std::chrono::milliseconds(300));
  }
  ASSERT_TRUE(row.has_value()) << "tail printed nothing for new trajectories";
  EXPECT_EQ(row->rfind("s/1", 0), 0u) << *row;  // a new step (100+), not a stored one
  tail.Signal(SIGINT);
  EXPECT_EQ(tail.Wait(std::chrono::seconds(10)), 0) << ReadAll(err_path);
  EXPECT_EQ(ReadAll(err_path), "");
}

TEST_F(CtlServeTest, AdminTokenAndRewardCommands) {
  Ran get = RunCtl(dir_, With({"reward", "get"}));
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_NE(get.out.find("version  "), std::string::npos) << get.out;

  std::ofstream(dir_ + "/spec.yaml") << "name: s2\nterms:\n  - kind: countdown\n    weight: 2\n";
  Ran refused = RunCtl(dir_, With({"reward", "set", dir_ + "/spec.yaml"}));
  EXPECT_EQ(refused.code, 4);
  EXPECT_EQ(refused.err.rfind("zerorlctl: unauthenticated: reward at " + reward_addr_, 0), 0u) << refused.err;
  EXPECT_NE(refused.err.find("--token-file"), std::string::npos) << refused.err;

  Ran set = RunCtl(dir_, With({"--token-file", dir_ + "/token", "reward", "set", dir_ + "/spec.yaml"}));
  ASSERT_EQ(set.code, 0) << set.err;
  EXPECT_NE(set.out.find("is active"), std::string::npos) << set.out;
  // The token may also come from the environment.
  Ran rb = RunCtl(dir_, With({"reward", "rollback", "1"}), {"ZERORL_TOKEN_FILE=" + dir_ + "/token"});
  EXPECT_EQ(rb.code, 0) << rb.err;
}

TEST_F(CtlServeTest, ServerGoneExitsThreeWithOneClearMessage) {
  ASSERT_TRUE(Append(0, 1));
  buffer_.Signal(SIGTERM);
  ASSERT_EQ(buffer_.Wait(std::chrono::seconds(20)), 0);
  Ran r = RunCtl(dir_, With({"--timeout", "3s", "traj", "list", "--run", "s"}));
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err.rfind("zerorlctl: cannot reach buffer at " + buffer_addr_, 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.out, "");
  // A tail against a dead server fails the same way instead of hanging.
  Ran tail = RunCtl(dir_, With({"traj", "tail", "--run", "s"}));
  EXPECT_EQ(tail.code, 3) << tail.err;
}

}  // namespace
}  // namespace zerorl::ctl::testing
