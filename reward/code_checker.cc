// Code checker (contract in code_checker.h).
#include "reward/code_checker.h"

#include <nlohmann/json.hpp>

#include "common/json.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace zerorl::reward {
namespace {

// Imports the solution and calls fn_name with the JSON arguments read from stdin.
constexpr const char* kCallHarness = R"PY(import json, sys
sys.setrecursionlimit(10000)
sys.path.insert(0, ".")  # -I leaves the work dir off sys.path
args = json.loads(sys.stdin.read())
import solution
fn_name = open("fn_name.txt").read()
target = getattr(solution, "Solution", None)
fn = getattr(target(), fn_name) if target is not None and hasattr(target, fn_name) else getattr(solution, fn_name)
result = fn(*args) if isinstance(args, list) else fn(args)
if isinstance(result, tuple):
    result = list(result)
sys.stdout.write("\n@@ZERORL_RESULT@@" + json.dumps(result))
)PY";

std::string JoinIfList(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const auto& e : v) {
      if (!out.empty()) out += "\n";
      out += e.is_string() ? e.get<std::string>() : e.dump();
    }
    return out;
  }
  return v.dump();
}

std::vector<absl::string_view> Lines(absl::string_view s) {
  std::vector<absl::string_view> lines = absl::StrSplit(s, '\n');
  for (auto& l : lines) l = absl::StripTrailingAsciiWhitespace(l);
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

bool JsonResultMatches(absl::string_view stdout_data, const std::string& want_json) {
  size_t p = stdout_data.rfind("@@ZERORL_RESULT@@");
  if (p == absl::string_view::npos) return false;
  const absl::string_view got_text = stdout_data.substr(p + 17);
  if (!CheckJsonDepth(got_text).ok() || !CheckJsonDepth(want_json).ok()) return false;
  auto got = nlohmann::json::parse(got_text, nullptr, /*allow_exceptions=*/false);
  auto want = nlohmann::json::parse(want_json, nullptr, false);
  if (got.is_discarded() || want.is_discarded()) return false;
  if (got == want) return true;
  return want.is_array() && want.size() == 1 && got == want[0];
}

}  // namespace

absl::StatusOr<CodeTests> ParseCodeTests(absl::string_view json) {
  if (auto s = CheckJsonDepth(json); !s.ok()) return absl::InvalidArgumentError(absl::StrCat("code tests: ", s.message()));
  auto j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("code tests: not a JSON object");
  if (!j.contains("inputs") || !j["inputs"].is_array()) {
    return absl::InvalidArgumentError("code tests: \"inputs\" must be an array");
  }
  if (!j.contains("outputs") || !j["outputs"].is_array()) {
    return absl::InvalidArgumentError("code tests: \"outputs\" must be an array");
  }
  if (j["inputs"].size() != j["outputs"].size()) {
    return absl::InvalidArgumentError(absl::StrCat("code tests: ", j["inputs"].size(), " inputs but ",
                                                   j["outputs"].size(), " outputs"));
  }
  CodeTests t;
  if (j.contains("fn_name")) {
    if (!j["fn_name"].is_string()) return absl::InvalidArgumentError("code tests: \"fn_name\" must be a string");
    t.fn_name = j["fn_name"].get<std::string>();
  }
  for (size_t i = 0; i < j["inputs"].size(); ++i) {
    if (t.fn_name.empty()) {
      t.inputs.push_back(JoinIfList(j["inputs"][i]));
      t.outputs.push_back(JoinIfList(j["outputs"][i]));
    } else {
      t.inputs.push_back(j["inputs"][i].dump());
      t.outputs.push_back(j["outputs"][i].dump());
    }
  }
  return t;
}

std::string ExtractPythonCode(absl::string_view c) {
  for (absl::string_view fence : {"```python", "```py\n", "```"}) {
    size_t open = c.rfind(fence);
    // For the bare fence, rfind finds a closing fence; step back to its opener.
    if (fence == "```" && open != absl::string_view::npos) {
      size_t prev = open == 0 ? absl::string_view::npos : c.rfind("```", open - 1);
      if (prev == absl::string_view::npos) break;
      size_t body = c.find('\n', prev);
      if (body == absl::string_view::npos || body > open) break;
      return std::string(c.substr(body + 1, open - body - 1));
    }
    if (open == absl::string_view::npos) continue;
    size_t body = c.find('\n', open);
    if (body == absl::string_view::npos) continue;
    size_t close = c.find("```", body);
    return std::string(c.substr(body + 1, (close == absl::string_view::npos ? c.size() : close) - body - 1));
  }
  return std::string(c);
}

bool OutputsMatch(absl::string_view got, absl::string_view want) { return Lines(got) == Lines(want); }

CodeCheckResult CheckCode(Sandbox& sandbox, absl::string_view completion, const CodeTests& tests,
                          const CodeCheckOptions& options, const SandboxLimits& limits) {
  CodeCheckResult r;
  std::string code = ExtractPythonCode(completion);
  size_t n = tests.inputs.size();
  if (options.max_tests > 0) n = std::min(n, static_cast<size_t>(options.max_tests));
  r.total = static_cast<int>(n);
  std::vector<SandboxFile> files = {{"solution.py", code}};
  std::vector<std::string> argv = {sandbox.python(), "-I", "solution.py"};
  if (!tests.fn_name.empty()) {
    files.push_back({"harness.py", kCallHarness});
    files.push_back({"fn_name.txt", tests.fn_name});
    argv = {sandbox.python(), "-I", "harness.py"};
  }
  bool failed = false;
  for (size_t i = 0; i < n; ++i) {
    if (failed && options.all_or_nothing) {
      r.verdicts.push_back("skipped");
      continue;
    }
    auto run = sandbox.Run(argv, tests.inputs[i], limits, files);
    std::string verdict;
    if (!run.ok()) {
      verdict = "runtime_error";
      if (r.detail.empty()) r.detail = absl::StrCat("test ", i, ": ", run.status().message());
    } else if (run->verdict == SandboxVerdict::kOk) {
      bool ok = tests.fn_name.empty() ? OutputsMatch(run->stdout_data, tests.outputs[i])
                                      : JsonResultMatches(run->stdout_data, tests.outputs[i]);
      verdict = ok ? "passed" : "wrong";
    } else if (run->verdict == SandboxVerdict::kTimeout) {
      verdict = "timeout";
    } else if (run->verdict == SandboxVerdict::kRuntimeError) {
      verdict = "runtime_error";
    } else {
      verdict = "killed_by_limit";
    }
    if (verdict == "passed") {
      ++r.passed;
    } else {
      failed = true;
      if (r.detail.empty()) {
        std::string err = run.ok() ? run->stderr_data : "";
        if (err.size() > 200) err = "..." + err.substr(err.size() - 200);
        r.detail = absl::StrCat("test ", i, ": ", verdict, err.empty() ? "" : ": ", err);
      }
    }
    r.verdicts.push_back(verdict);
  }
  if (options.all_or_nothing) {
    r.score = (n > 0 && r.passed == static_cast<int>(n)) ? 1.0 : 0.0;
  } else {
    r.score = n > 0 ? static_cast<double>(r.passed) / static_cast<double>(n) : 0.0;
  }
  return r;
}

}  // namespace zerorl::reward
