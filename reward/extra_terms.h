// Shaping terms that need no ground truth: language consistency, DAPO soft
// overlong penalty, length penalty. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace zerorl::reward {

// Known script names: "latin", "cjk", "cyrillic", "greek", "arabic", "hebrew",
// "devanagari", "hangul". INVALID_ARGUMENT otherwise.
absl::Status ValidateScript(absl::string_view script);

// Share in [0,1] of the letters of `text` (UTF-8) that belong to `script`;
// digits, punctuation, spaces and math symbols are ignored. Text without
// letters scores 0 (an empty chain of thought earns nothing).
double LanguageConsistency(absl::string_view text, absl::string_view script);

// DAPO soft overlong punishment, in [-1, 0]: 0 up to max_tokens - buffer_tokens,
// then linear down to -1 at max_tokens, -1 beyond.
double OverlongPenalty(int64_t tokens, int64_t max_tokens, int64_t buffer_tokens);

// -per_token * max(0, tokens - target_tokens), <= 0.
double LengthPenalty(int64_t tokens, int64_t target_tokens, double per_token);

// Token count when the caller gave none: ceil(bytes / 4), a BPE-like estimate.
int64_t EstimateTokens(absl::string_view text);

}  // namespace zerorl::reward
