// Parsing JSON that comes from outside the process (files, requests, child
// processes) with a bound on nesting.
//
// nlohmann::json copies, compares and dumps values recursively, so a document
// nested 100k deep overflows the stack long after it parsed. ParseJson scans
// the text first (iteratively) and refuses one nested deeper than `max_depth`
// before anything is built. Every JSON from outside goes through here.
// Thread-safe (no state).
#pragma once

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zerorl {

// Arrays and objects nested deeper than this are refused. Real inputs (code
// tests, tokenizer.json, safetensors headers, metrics) stay under 10.
inline constexpr int kMaxJsonDepth = 256;

// OK when no array or object in `text` is nested deeper than `max_depth`
// (brackets inside strings do not count); INVALID_ARGUMENT naming the byte
// offset otherwise. Linear time, constant stack. Does not check the syntax.
absl::Status CheckJsonDepth(absl::string_view text, int max_depth = kMaxJsonDepth);

// The parsed document, or INVALID_ARGUMENT: "nested deeper than N levels (at
// byte B)" or "not valid JSON (parser message)". Never throws.
absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text, int max_depth = kMaxJsonDepth);

}  // namespace zerorl
