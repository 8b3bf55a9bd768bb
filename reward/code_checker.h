// Code checker: runs a Python 3 solution against APPS/TACO `input_output`
// tests inside the Sandbox, one fresh sandboxed process per test.
//
// Tests: {"inputs": [...], "outputs": [...], "fn_name": optional}. Without
// fn_name each input is fed as stdin and stdout is compared with the output
// line by line: trailing whitespace on each line and trailing empty lines are
// ignored; a missing or extra line fails. (An input or output given as a list
// of lines is joined with "\n".) With fn_name the solution is imported and
// fn_name(*input) is called (on Solution() when the module defines that class,
// LeetCode style); the JSON result must equal the output, or the output's only
// element (APPS wraps return values in a list).
// The solution is the last ```python fenced block, else the last ``` block,
// else the whole completion. Expected outputs never enter the sandbox.
// Per-test verdicts: "passed", "wrong", "timeout", "runtime_error",
// "killed_by_limit" (memory/file/output limits), "skipped" (after a failure in
// all-or-nothing mode). Thread-safe when the Sandbox is.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "reward/sandbox.h"

namespace zerorl::reward {

struct CodeTests {
  std::vector<std::string> inputs;   // stdin text, or a JSON array of arguments (fn_name)
  std::vector<std::string> outputs;  // expected stdout, or the JSON of the return value (fn_name)
  std::string fn_name;
};

// INVALID_ARGUMENT names what is wrong (not JSON, missing "inputs", length mismatch).
absl::StatusOr<CodeTests> ParseCodeTests(absl::string_view json);

std::string ExtractPythonCode(absl::string_view completion);

// Line-by-line comparison with trailing-whitespace tolerance.
bool OutputsMatch(absl::string_view got, absl::string_view want);

struct CodeCheckOptions {
  bool all_or_nothing = false;
  int max_tests = 0;  // 0 = all
};

struct CodeCheckResult {
  double score = 0;  // fraction passed (or 0/1 in all-or-nothing mode)
  int passed = 0;
  int total = 0;
  std::vector<std::string> verdicts;
  std::string detail;  // the first failure, briefly
};

CodeCheckResult CheckCode(Sandbox& sandbox, absl::string_view completion, const CodeTests& tests,
                          const CodeCheckOptions& options, const SandboxLimits& limits);

}  // namespace zerorl::reward
