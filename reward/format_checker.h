// R1-Zero template checker: "<think> … </think> <answer> … </answer>".
//
// R1-Zero prompts usually end with "<think>", so the opening <think> is optional
// in the completion. Lenient (default): each of </think>, <answer>, </answer>
// appears exactly once (and <think> at most once), in template order, with a
// non-empty answer. Strict: additionally nothing but whitespace before <think>
// (when present), between </think> and <answer>, and after </answer>.
// Score 1.0 when it matches, else 0.0. Thread-safe, linear time.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace zerorl::reward {

struct FormatCheckResult {
  bool ok = false;
  std::string detail;  // which rule failed
};

FormatCheckResult CheckFormat(absl::string_view completion, bool strict);

// The chain of thought: text before </think> (after <think> when present), or
// the whole completion before <answer> when there is no </think>.
absl::string_view ThinkText(absl::string_view completion);

}  // namespace zerorl::reward
