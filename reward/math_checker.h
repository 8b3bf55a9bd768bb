// Rule-based math answer checker: extraction, normalisation, equivalence.
//
// Extraction (MathCheckOptions.extractors, tried in order, first hit wins):
//   "boxed"         the last \boxed{...} / \fbox{...} (nested braces matched; "\boxed 5" too)
//   "answer_tag"    the last <answer>...</answer>
//   "gsm8k"         the text after the last "#### " up to the end of its line
//   "the_answer_is" the text after the last "the answer is" (any case) up to the line/sentence end
// Several boxed answers: "last" (default) grades the last one; "all_equal" also
// requires every boxed answer to be equivalent to the last (hedging scores 0).
//
// Normalisation (Normalize): drops $ \$ € £ % \% \left \right \displaystyle \! and
// degree marks (^\circ, °); \dfrac/\tfrac -> \frac; \text{..}/\mathrm{..}/\textbf{..}/\mbox{..}
// unwrapped; thousands separators removed ("7,425,000", "1 000", "1\,000", "1{,}000");
// "x = 5" -> "5" (a plain variable on the left); a leading \boxed{} unwrapped;
// trailing unit words dropped ("18 dollars", "5 cm^2") unless they hedge
// ("2 or 3" stays, and then fails to parse); a trailing period dropped.
//
// Equivalence (Equivalent): both sides parse with the exact evaluator (expr.h):
//   exact rationals compare exactly ("0.5" == "\frac12" == "1/2"; 5 != 500, 5 != 0.05);
//   when either side is inexact (\pi, \sqrt2, overflow) |a-b| <= rel_tol*max(1,|b|),
//   rel_tol = 1e-9 by default, so \pi != 3.14.
//   Tuples "(a,b)" and intervals "[a,b)" compare element-wise with identical
//   brackets; sets "\{a,b\}" and bare lists "a, b" compare as multisets.
//   Text that is not an expression compares as the normalised string (spaces removed).
// Budgets: completions are scanned linearly; an extracted answer longer than
// 1,000 chars, an expression over budget or a value that overflows gives the
// verdict kError (never a hang, never unbounded memory). Thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zerorl::reward {

struct MathCheckOptions {
  std::vector<std::string> extractors = {"boxed", "answer_tag", "gsm8k", "the_answer_is"};
  double rel_tolerance = 1e-9;
  bool all_boxed_equal = false;  // "all_equal" mode
};

enum class MathVerdict { kCorrect, kWrong, kNoAnswer, kError };
const char* MathVerdictName(MathVerdict v);  // "correct", "wrong", "no_answer", "error"

struct MathCheckResult {
  MathVerdict verdict = MathVerdict::kNoAnswer;
  std::string extracted;  // the predicted answer as extracted (before normalisation)
  std::string detail;     // why, for errors and mismatches
};

// Known extractor names; INVALID_ARGUMENT names an unknown one.
absl::Status ValidateExtractors(const std::vector<std::string>& extractors);

// All \boxed{...} contents of `text`, in order (at most `limit`, default all).
std::vector<std::string> ExtractAllBoxed(absl::string_view text);

// The answer picked by the extractors, or nullopt when none matched.
std::optional<std::string> ExtractAnswer(absl::string_view completion, const std::vector<std::string>& extractors);

// The canonical text of an answer (see the rules above).
std::string Normalize(absl::string_view answer);

// Whether `pred` and `gold` (raw or normalised) denote the same answer.
// Errors: RESOURCE_EXHAUSTED / OUT_OF_RANGE when an expression blows the budget.
absl::StatusOr<bool> Equivalent(absl::string_view pred, absl::string_view gold, double rel_tolerance = 1e-9);

// Extract + Equivalent. A gold written GSM8K-style ("... #### 18") is reduced to "18".
MathCheckResult CheckMath(absl::string_view completion, absl::string_view gold, const MathCheckOptions& options = {});

}  // namespace zerorl::reward
