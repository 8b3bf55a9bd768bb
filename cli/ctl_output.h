// zerorlctl's output: aligned tables for people, JSON for scripts.
//
// --output table  aligned columns (Table), or key/value blocks for one object
// --output json   one pretty-printed JSON document (protobuf JSON mapping with
//                 the proto field names and every field present; 64-bit
//                 integers are strings, as the mapping requires)
// --output jsonl  one compact JSON object per line (one per listed item)
#pragma once

#include <cstdint>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "zerorl/v1/common.pb.h"

namespace zerorl::ctl {

// Columns separated by two spaces, each as wide as its widest cell; the last
// column is not padded. Cells are single-line (newlines shown as "⏎").
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row);
  void Print(std::ostream& out) const;
  // The header line alone and one row alone, padded to fixed widths (streams).
  static std::string FormatRow(const std::vector<std::string>& cells, const std::vector<size_t>& widths);
  size_t rows() const { return rows_.size(); }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// JSON text of `msg`: pretty (json) or compact (jsonl).
std::string ToJson(const google::protobuf::Message& msg, bool pretty);

// "RUN/STEP/GROUP/SAMPLE".
std::string FormatId(const zerorl::v1::TrajectoryId& id);
// Parses "RUN/STEP/GROUP/SAMPLE" (RUN may itself contain '/'); usage error if malformed.
absl::StatusOr<zerorl::v1::TrajectoryId> ParseId(const std::string& text);

// "2026-11-28 23:10:05" (UTC); "-" for 0.
std::string FormatTime(int64_t unix_ms);
// "4s ago", "3m ago", "2h ago"; "-" for 0.
std::string FormatAge(int64_t unix_ms, int64_t now_ms);
// %.4g, with "-" for NaN.
std::string FormatNumber(double v);
// "stop", "length", "abort", "-".
std::string FinishName(zerorl::v1::FinishReason r);
// One line, at most `max_chars` code points, newlines as "⏎", "…" when cut.
std::string Preview(absl::string_view text, size_t max_chars);

// The columns of `zerorlctl metrics` (after STEP), given the metric names the
// steps carry: `keys` (comma-separated) when given, as given; else the key
// ones present (reward, accuracy, eval accuracy, length, KL, entropy,
// tokens/s); with `all` (or when none of those is present), those followed by
// every other name, sorted.
std::vector<std::string> MetricColumns(const std::set<std::string>& present, const std::string& keys, bool all);

}  // namespace zerorl::ctl
