// zerorlctl without a server: usage errors (exit 2), unreachable servers
// (exit 3), help, and the generated bash/zsh completion scripts.

#include <gtest/gtest.h>

#include <climits>
#include <fstream>
#include <sstream>

#include "cli/ctl_app.h"
#include "common/net.h"
#include "tests/testing/subprocess.h"

namespace zerorl::ctl {
namespace {

struct Result {
  int code;
  std::string out, err;
};

Result Ctl(std::vector<std::string> args) {
  args.insert(args.begin(), "zerorlctl");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  Runtime rt;
  int code = RunZerorlctl(static_cast<int>(argv.size()), argv.data(), out, err, &rt);
  return {code, out.str(), err.str()};
}

// A loopback port nobody listens on.
std::string ClosedAddress() {
  auto port = FreeLoopbackPort();
  EXPECT_TRUE(port.ok()) << port.status();
  return "127.0.0.1:" + std::to_string(port.ok() ? *port : 1);
}

std::string WriteFile(const std::string& name, const std::string& text) {
  std::string path = testing::MakeTempDir("ctl-local") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

bool Contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

// Issue 16 #10, #13: a port gRPC would wrap (99999 reached 34463), and --out
// paths that a rename would replace (a symlink) or cannot be written.
TEST(CtlUsageTest, BadAddressesAndExportTargetsAreUsageErrors) {
  for (const char* flag : {"--addr", "--buffer-addr", "--reward-addr"}) {
    Result r = Ctl({flag, "127.0.0.1:99999", "runs", "list"});
    EXPECT_EQ(r.code, 2) << flag << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, std::string(flag) + ": \"127.0.0.1:99999\" has a port out of range")) << r.err;
  }
  Result noport = Ctl({"--addr", "localhost", "runs", "list"});
  EXPECT_EQ(noport.code, 2);
  EXPECT_TRUE(Contains(noport.err, "has no port")) << noport.err;

  const std::string dir = testing::MakeTempDir("ctl-export");
  const std::string target = dir + "/target.jsonl", link = dir + "/link.jsonl";
  std::ofstream(target) << "keep me\n";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  const std::string addr = ClosedAddress();
  Result r = Ctl({"--addr", addr, "traj", "export", "--run", "r", "--out", link});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(Contains(r.err, "is a symbolic link")) << r.err;
  char buf[PATH_MAX] = {};
  EXPECT_GT(readlink(link.c_str(), buf, sizeof(buf) - 1), 0) << "the link itself must survive";
  std::ifstream in(target);
  std::string kept;
  std::getline(in, kept);
  EXPECT_EQ(kept, "keep me");
  Result d = Ctl({"--addr", addr, "traj", "export", "--run", "r", "--out", dir});
  EXPECT_EQ(d.code, 2) << d.err;
  EXPECT_TRUE(Contains(d.err, "is a directory")) << d.err;
}

TEST(CtlUsageTest, HelpExitsZero) {
  Result r = Ctl({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(Contains(r.out, "traj")) << r.out;
  EXPECT_TRUE(Contains(r.out, "Exit codes"));
}

TEST(CtlUsageTest, UsageErrorsExitTwoWithOneMessage) {
  const std::string addr = ClosedAddress();  // none of these may reach the network
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{}, "subcommand is required"},
      {{"frobnicate"}, "frobnicate"},
      {{"traj"}, "subcommand is required"},
      {{"-o", "yaml", "runs", "list"}, "yaml"},
      {{"--timeout", "soon", "runs", "list"}, "--timeout: \"soon\" is not a duration"},
      {{"traj", "show", "run/1/2"}, "expected RUN/STEP/GROUP/SAMPLE"},
      {{"traj", "list", "--run", "r", "--step", "5:2"}, "the end 2 is before the start 5"},
      {{"traj", "list", "--run", "r", "--step", "a:b"}, "--step: \"a:b\""},
      {{"traj", "list", "--run", "r", "--min-reward", "2", "--max-reward", "1"}, "is above --max-reward"},
      {{"traj", "list", "--run", "r", "--finish", "eos"}, "eos"},
      {{"traj", "list", "--run", "r", "--limit", "-1"}, "--limit"},
      {{"traj", "export", "--run", "r"}, "--out is required"},
      {{"reward", "set", "/nonexistent/spec.yaml"}, "/nonexistent/spec.yaml"},
      {{"reward", "rollback", "0"}, "positive spec version"},
      {{"reward", "test", "/nonexistent/spec.yaml"}, "--traj"},
      {{"--token-file", "/nonexistent/token", "runs", "pause", "r"}, "--token-file"},
      {{"completion", "fish"}, "fish"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"--addr", addr};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Result r = Ctl(args);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_EQ(r.code, 2) << joined << "\n" << r.err;
    EXPECT_TRUE(Contains(r.err, c.message)) << joined << "\nstderr: " << r.err;
    EXPECT_TRUE(r.out.empty()) << joined;
  }
}

TEST(CtlUsageTest, SpecWithUnknownKeyNamesFileLineAndKey) {
  std::string spec = WriteFile("bad.yaml", "name: x\nterms:\n  - kind: math\n    wieght: 2\n");
  Result r = Ctl({"--addr", ClosedAddress(), "reward", "set", spec});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(Contains(r.err, "bad.yaml")) << r.err;
  EXPECT_TRUE(Contains(r.err, "wieght")) << r.err;
}

TEST(CtlUnreachableTest, EveryServiceDownExitsThreeNamingIt) {
  const std::string addr = ClosedAddress();
  struct Case {
    std::vector<std::string> args;
    std::string service;
  };
  std::vector<Case> cases = {
      {{"runs", "list"}, "orchestrator"},
      {{"runs", "show", "r"}, "orchestrator"},
      {{"workers", "list"}, "orchestrator"},
      {{"metrics", "--run", "r"}, "orchestrator"},
      {{"traj", "list", "--run", "r"}, "orchestrator"},  // looks the buffer up first
      {{"--buffer-addr", addr, "traj", "list", "--run", "r"}, "buffer"},
      {{"--buffer-addr", addr, "traj", "show", "r/0/0/0"}, "buffer"},
      {{"--reward-addr", addr, "reward", "get"}, "reward"},
      {{"--reward-addr", addr, "reward", "history"}, "reward"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"--addr", addr, "--timeout", "3s"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Result r = Ctl(args);
    EXPECT_EQ(r.code, 3) << c.args[0] << " " << r.err;
    EXPECT_TRUE(Contains(r.err, "zerorlctl: cannot reach " + c.service + " at " + addr)) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one message: " << r.err;
  }
}

TEST(CtlUnreachableTest, AddrComesFromTheEnvironment) {
  const std::string addr = ClosedAddress();
  setenv("ZERORL_ADDR", addr.c_str(), 1);
  Result r = Ctl({"runs", "list"});
  unsetenv("ZERORL_ADDR");
  EXPECT_EQ(r.code, 3);
  EXPECT_TRUE(Contains(r.err, addr)) << r.err;
}

// Runs the generated bash completion for the words typed so far (the last one
// is being completed) and returns the candidates.
std::string BashComplete(const std::string& script, const std::vector<std::string>& words) {
  std::string array;
  for (const auto& w : words) array += "'" + w + "' ";
  std::string cmd = "source " + script + "; COMP_WORDS=(zerorlctl " + array + "); COMP_CWORD=" +
                    std::to_string(words.size()) + "; _zerorlctl; printf '%s\\n' \"${COMPREPLY[@]}\"";
  std::string out;
  EXPECT_EQ(testing::RunCommand({"bash", "-c", cmd}, &out), 0) << cmd;
  return out;
}

TEST(CtlCompletionTest, BashCompletesTheCommandTree) {
  Result r = Ctl({"completion", "bash"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string script = WriteFile("zerorlctl.bash", r.out);
  std::string top = BashComplete(script, {""});
  for (const char* w : {"runs\n", "traj\n", "reward\n", "metrics\n", "workers\n", "completion\n"})
    EXPECT_TRUE(Contains(top, w)) << top;
  std::string traj = BashComplete(script, {"traj", ""});
  EXPECT_EQ(traj, "list\nshow\ntail\nexport\n");
  EXPECT_EQ(BashComplete(script, {"reward", "r"}), "rollback\n");
  EXPECT_EQ(BashComplete(script, {"traj", "list", "--fi"}), "--finish\n");
  EXPECT_EQ(BashComplete(script, {"traj", "list", "--finish", ""}), "stop\nlength\nabort\n");
  EXPECT_EQ(BashComplete(script, {"-o", "j"}), "json\njsonl\n");
  // Option values are skipped while walking: --addr's value is not a command.
  EXPECT_EQ(BashComplete(script, {"--addr", "runs", "runs", "s"}), "show\nstop\n");
  // ...but a flag takes no value: the word after it is the command.
  EXPECT_EQ(BashComplete(script, {"--tls", "runs", "s"}), "show\nstop\n");
  EXPECT_EQ(BashComplete(script, {"traj", "tail", "--from-start", "--fi"}), "--finish\n");
  // Flags of the command and the global ones after "-".
  std::string flags = BashComplete(script, {"traj", "tail", "--"});
  for (const char* f : {"--run\n", "--from-start\n", "--addr\n", "--output\n", "--token-file\n"})
    EXPECT_TRUE(Contains(flags, f)) << flags;
  EXPECT_FALSE(Contains(flags, "--out\n")) << "export's --out belongs to export only";
  EXPECT_EQ(BashComplete(script, {"completion", ""}), "bash\nzsh\n");
}

TEST(CtlCompletionTest, ZshScriptCoversTheTree) {
  Result r = Ctl({"completion", "zsh"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("#compdef zerorlctl\n", 0), 0u);
  EXPECT_TRUE(Contains(r.out, "compdef _zerorlctl zerorlctl"));
  EXPECT_TRUE(Contains(r.out, "\"traj/list\") path_=\"traj list\""));
  EXPECT_TRUE(Contains(r.out, "'list:matching trajectories\\: id, step, reward, length, finish'")) << r.out;
  EXPECT_TRUE(Contains(r.out, "\"traj list:--finish\") compadd -- stop length abort"));
  if (access("/usr/bin/zsh", X_OK) == 0) {
    std::string script = WriteFile("_zerorlctl", r.out);
    std::string out;
    EXPECT_EQ(testing::RunCommand({"/usr/bin/zsh", "-n", script}, &out), 0) << out;
  }
}

}  // namespace
}  // namespace zerorl::ctl
