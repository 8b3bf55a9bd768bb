// `zerorl bench reward`: math checks per second on GSM8K-style completions
// (one thread = one core) against a minimal Python rule checker (last \boxed{}
// by regex, fractions.Fraction equality; a lower bound on what Math-Verify does)
// measured in the same run; and sandboxed Python executions per second against
// bare `python3 -c pass` spawns in the same run (overhead = bare rate / sandbox
// rate; target <= 1.5). Prints a table, then machine-readable lines
// "math_checks_per_s N", "sandbox_execs_per_s N", "bare_spawns_per_s N".
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "bench/bench.h"
#include "reward/math_checker.h"
#include "reward/sandbox.h"

namespace zerorl::bench {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

struct MathCase {
  std::string completion, gold;
};

// GSM8K reference solutions rewritten as model-style completions ending in \boxed{N}.
std::vector<MathCase> LoadCases(const std::string& path) {
  std::vector<MathCase> cases;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    std::string a = j.value("answer", "");
    size_t p = a.rfind("####");
    if (p == std::string::npos) continue;
    std::string gold = a.substr(p + 5);
    std::string work = absl::StrReplaceAll(a.substr(0, p), {{"<<", "("}, {">>", ")"}});
    cases.push_back({"<think>" + work + "</think> <answer>The answer is \\boxed{" + gold + "}.</answer>", gold});
  }
  if (cases.empty()) {  // synthetic fallback of the same shape
    for (int i = 0; i < 1000; ++i) {
      std::string g = std::to_string(i * 37 % 9973);
      cases.push_back({"<think>She buys " + std::to_string(i) + " apples at $2 each, so 2 * " + std::to_string(i) +
                           " = " + std::to_string(2 * i) + ". Then she sells them.</think> <answer>\\boxed{" + g +
                           "}</answer>",
                       g});
    }
  }
  return cases;
}

double MathChecksPerSecond(const std::vector<MathCase>& cases, double seconds, int* correct) {
  auto t0 = Clock::now();
  int64_t n = 0;
  *correct = 0;
  while (Seconds(t0) < seconds) {
    for (const auto& c : cases) {
      if (reward::CheckMath(c.completion, c.gold).verdict == reward::MathVerdict::kCorrect && n < (int64_t)cases.size()) {
        ++*correct;
      }
      ++n;
    }
  }
  return static_cast<double>(n) / Seconds(t0);
}

constexpr const char* kPythonPeer = R"PY(
import json, re, sys, time
from fractions import Fraction
BOX = re.compile(r"\\boxed\{([^{}]*)\}")
def norm(s):
    s = s.replace(",", "").replace("$", "").replace("\\%", "").strip().rstrip(".")
    try:
        return Fraction(s)
    except Exception:
        return s
cases = []
for line in open(sys.argv[1]):
    a = json.loads(line)["answer"]
    work, gold = a.rsplit("####", 1)
    cases.append(("<think>" + work + "</think> <answer>The answer is \\boxed{" + gold.strip() + "}.</answer>", gold.strip()))
n, t0 = 0, time.time()
while time.time() - t0 < float(sys.argv[2]):
    for c, g in cases:
        m = BOX.findall(c)
        ok = bool(m) and norm(m[-1]) == norm(g)
        n += 1
print(n / (time.time() - t0))
)PY";

double PythonPeerPerSecond(const std::string& python, const std::string& data, double seconds) {
  std::string script = "/tmp/zerorl_bench_math_peer.py";
  std::ofstream(script) << kPythonPeer;
  std::string cmd = absl::StrCat(python, " ", script, " ", data, " ", seconds, " 2>/dev/null");
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return 0;
  char buf[128] = {0};
  double rate = 0;
  if (fgets(buf, sizeof buf, f) != nullptr) rate = std::atof(buf);
  pclose(f);
  return rate;
}

// fork/exec python3 -c pass with stdout/stderr piped and read to EOF, as the sandbox does.
bool BareSpawn(const std::string& python) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) < 0) return false;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  std::vector<std::string> args = {python, "-c", "pass"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The same scrubbed environment the sandbox gives its children, so both start the same interpreter work.
  std::vector<std::string> env_s = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp",
                                    "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8"};
  std::vector<char*> env;
  for (auto& e : env_s) env.push_back(e.data());
  env.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawn(&pid, python.c_str(), &fa, nullptr, argv.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    return false;
  }
  char buf[4096];
  while (read(out[0], buf, sizeof buf) > 0) {
  }
  close(out[0]);
  int status;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

int BenchReward(int argc, char** argv) {
  CLI::App app{"Reward benchmarks: math checks/s and sandbox overhead.", "zerorl bench reward"};
  std::string data = "../shared/data/gsm8k/test.jsonl", python = "/usr/bin/python3", isolation = "auto";
  double seconds = 2.0;
  int spawns = 40;
  app.add_option("--data", data, "GSM8K-style JSONL (default: ../shared/data/gsm8k/test.jsonl)");
  app.add_option("--seconds", seconds, "time per math measurement");
  app.add_option("--spawns", spawns, "executions per spawn measurement");
  app.add_option("--python", python, "interpreter");
  app.add_option("--isolation", isolation, "sandbox isolation: auto | namespaces | bwrap | rlimits");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  auto cases = LoadCases(data);
  int correct = 0;
  double ours = MathChecksPerSecond(cases, seconds, &correct);
  double peer = std::ifstream(data) ? PythonPeerPerSecond(python, data, seconds) : 0;

  reward::Sandbox::Options so;
  so.isolation = isolation;
  so.python = python;
  auto sandbox = reward::Sandbox::Create(so);
  if (!sandbox.ok()) {
    std::fprintf(stderr, "zerorl bench reward: %s\n", std::string(sandbox.status().message()).c_str());
    return 1;
  }
  reward::SandboxLimits limits;
  // Warm the page cache for both paths, then interleave measurements in rounds.
  BareSpawn(python);
  (void)(*sandbox)->Run({python, "-c", "pass"}, "", limits);
  double bare_s = 0, sandbox_s = 0;
  int bare_ok = 0, sandbox_ok = 0;
  for (int round = 0; round < 4; ++round) {
    auto t0 = Clock::now();
    for (int i = 0; i < spawns / 4; ++i) bare_ok += BareSpawn(python) ? 1 : 0;
    bare_s += Seconds(t0);
    t0 = Clock::now();
    for (int i = 0; i < spawns / 4; ++i) {
      auto r = (*sandbox)->Run({python, "-c", "pass"}, "", limits);
      sandbox_ok += (r.ok() && r->verdict == reward::SandboxVerdict::kOk) ? 1 : 0;
    }
    sandbox_s += Seconds(t0);
  }
  int n = (spawns / 4) * 4;
  double bare_rate = n / bare_s, sandbox_rate = n / sandbox_s;

  std::printf("reward benchmark — %zu GSM8K-style completions, 1 thread; sandbox: %s\n", cases.size(),
              (*sandbox)->Describe().c_str());
  std::printf("%-34s %14s %14s %10s\n", "measure", "zerorl", "peer", "ratio");
  std::printf("%-34s %14.0f %14.0f %9.1fx   (peer: Python regex + Fraction checker, same run)\n",
              "math checks/s (1 core)", ours, peer, peer > 0 ? ours / peer : 0.0);
  std::printf("%-34s %14s %14.0f %9.1fx   (Math-Verify, as quoted in issue 4, not measured here)\n", "", "", 1200.0,
              ours / 1200.0);
  std::printf("%-34s %14.1f %14.1f %9.2fx   (overhead = bare/sandbox; target <= 1.5)\n",
              "python3 -c pass executions/s", sandbox_rate, bare_rate, bare_rate / sandbox_rate);
  std::printf("gold answers accepted: %d/%zu; executions ok: sandbox %d/%d, bare %d/%d\n", correct, cases.size(),
              sandbox_ok, n, bare_ok, n);
  std::printf("math_checks_per_s %.0f\n", ours);
  std::printf("sandbox_execs_per_s %.1f\n", sandbox_rate);
  std::printf("bare_spawns_per_s %.1f\n", bare_rate);
  return 0;
}

}  // namespace zerorl::bench
