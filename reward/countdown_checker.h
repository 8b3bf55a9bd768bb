// Countdown checker: the equation in the last <answer>…</answer> must use each
// given number exactly once (as a multiset), or at most once with
// `at_most_once` (a sub-multiset, as TinyZero's task statement puts it), and
// evaluate to the target.
//
// The equation is evaluated by the project's own exact parser (expr.h, no eval):
// integers, + - * / and parentheses only (no powers, decimals or implicit
// multiplication); an optional trailing "= N" is ignored. Division is exact
// rational arithmetic, so (3/2)*4 = 6 counts. Scores: `correct` when the value
// equals the target, `well_formed` when the numbers are used correctly but the
// value misses, `no_answer` otherwise (no tag, bad characters, wrong numbers).
// Thread-safe, bounded (the evaluator's budget).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace zerorl::reward {

struct CountdownScores {
  double correct = 1.0;
  double well_formed = 0.1;
  double no_answer = 0.0;
  bool at_most_once = false;  // a subset of the numbers is enough
};

struct CountdownResult {
  double score = 0;
  std::string verdict;  // "correct", "wrong", "no_answer", "invalid"
  std::string detail;
};

CountdownResult CheckCountdown(absl::string_view completion, const std::vector<int64_t>& nums, int64_t target,
                               const CountdownScores& scores = {});

}  // namespace zerorl::reward
