// Countdown checker (rules in countdown_checker.h).
#include "reward/countdown_checker.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "reward/expr.h"

namespace zerorl::reward {

CountdownResult CheckCountdown(absl::string_view c, const std::vector<int64_t>& nums, int64_t target,
                               const CountdownScores& scores) {
  CountdownResult r;
  r.score = scores.no_answer;
  size_t open = c.rfind("<answer>");
  size_t close = open == absl::string_view::npos ? open : c.find("</answer>", open);
  if (open == absl::string_view::npos || close == absl::string_view::npos) {
    r.verdict = "no_answer";
    r.detail = "no <answer>...</answer>";
    return r;
  }
  absl::string_view eq = absl::StripAsciiWhitespace(c.substr(open + 8, close - open - 8));
  size_t equals = eq.find('=');
  if (equals != absl::string_view::npos) eq = absl::StripAsciiWhitespace(eq.substr(0, equals));
  for (char ch : eq) {
    if (!(absl::ascii_isdigit(ch) || ch == '+' || ch == '-' || ch == '*' || ch == '/' || ch == '(' || ch == ')' ||
          ch == ' ')) {
      r.verdict = "invalid";
      r.detail = absl::StrCat("character '", std::string(1, ch), "' not allowed in the equation");
      return r;
    }
  }
  ExprOptions opts;
  opts.latex = false;
  opts.decimals = false;
  opts.power = false;
  opts.implicit_multiply = false;
  opts.max_input_chars = 512;
  auto v = Evaluate(eq, opts);
  if (!v.ok()) {
    r.verdict = "invalid";
    r.detail = std::string(v.status().message());
    return r;
  }
  std::vector<int64_t> used = v->integer_literals, want = nums;
  std::sort(used.begin(), used.end());
  std::sort(want.begin(), want.end());
  const bool numbers_ok = scores.at_most_once ? std::includes(want.begin(), want.end(), used.begin(), used.end())
                                             : used == want;
  if (v->had_non_integer_literal || !numbers_ok) {
    r.verdict = "invalid";
    r.detail = absl::StrCat("numbers used [", absl::StrJoin(used, ","), "] ",
                            scores.at_most_once ? "are not a subset of" : "!=", " given [", absl::StrJoin(want, ","),
                            "]");
    return r;
  }
  if (v->value.exact && v->value.q == Rational{target, 1}) {
    r.verdict = "correct";
    r.score = scores.correct;
    return r;
  }
  r.verdict = "wrong";
  r.score = scores.well_formed;
  r.detail = absl::StrCat("evaluates to ", v->value.exact ? v->value.q.ToString() : std::to_string(v->value.approx),
                          ", target ", target);
  return r;
}

}  // namespace zerorl::reward
