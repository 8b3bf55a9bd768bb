// zerorlctl's output helpers (see ctl_output.h).
#include "cli/ctl_output.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "cli/ctl_session.h"
#include "google/protobuf/util/json_util.h"

namespace zerorl::ctl {
namespace {

// Display width: code points, not bytes (the ⏎ and … glyphs are one each).
size_t Width(absl::string_view s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::string OneLine(absl::string_view s) {
  return absl::StrReplaceAll(s, {{"\r\n", "⏎"}, {"\n", "⏎"}, {"\r", "⏎"}, {"\t", " "}});
}

}  // namespace

void Table::AddRow(std::vector<std::string> row) {
  row.resize(header_.size());
  for (auto& cell : row) cell = OneLine(cell);
  rows_.push_back(std::move(row));
}

std::string Table::FormatRow(const std::vector<std::string>& cells, const std::vector<size_t>& widths) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    line += cells[i];
    if (i + 1 < cells.size()) {
      size_t w = i < widths.size() ? widths[i] : 0;
      size_t have = Width(cells[i]);
      line.append(w > have ? w - have : 0, ' ');
      line += "  ";
    }
  }
  return line;
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths(header_.size(), 0);
  for (size_t i = 0; i < header_.size(); ++i) widths[i] = Width(header_[i]);
  for (const auto& row : rows_)
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], Width(row[i]));
  out << FormatRow(header_, widths) << "\n";
  for (const auto& row : rows_) out << FormatRow(row, widths) << "\n";
}

std::string ToJson(const google::protobuf::Message& msg, bool pretty) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = pretty;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  std::string json;
  auto st = google::protobuf::util::MessageToJsonString(msg, &json, opts);
  if (!st.ok()) return absl::StrCat("{\"error\": \"cannot render ", msg.GetTypeName(), " as JSON\"}");
  // add_whitespace already ends the document with a newline; callers add their own.
  while (!json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

std::string FormatId(const zerorl::v1::TrajectoryId& id) {
  return absl::StrCat(id.run_id(), "/", id.step(), "/", id.group(), "/", id.sample());
}

absl::StatusOr<zerorl::v1::TrajectoryId> ParseId(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  auto bad = [&](absl::string_view why) {
    return UsageError(absl::StrCat("trajectory id \"", text, "\": ", why, " (expected RUN/STEP/GROUP/SAMPLE)"));
  };
  if (parts.size() < 4) return bad("too few parts");
  zerorl::v1::TrajectoryId id;
  int64_t step = 0;
  int32_t group = 0, sample = 0;
  const size_t n = parts.size();
  if (!absl::SimpleAtoi(parts[n - 3], &step) || step < 0) return bad("STEP is not a non-negative integer");
  if (!absl::SimpleAtoi(parts[n - 2], &group) || group < 0) return bad("GROUP is not a non-negative integer");
  if (!absl::SimpleAtoi(parts[n - 1], &sample) || sample < 0) return bad("SAMPLE is not a non-negative integer");
  std::string run = parts[0];
  for (size_t i = 1; i + 3 < n; ++i) absl::StrAppend(&run, "/", parts[i]);
  if (run.empty()) return bad("RUN is empty");
  id.set_run_id(run);
  id.set_step(step);
  id.set_group(group);
  id.set_sample(sample);
  return id;
}

std::string FormatTime(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
}

std::string FormatAge(int64_t unix_ms, int64_t now_ms) {
  if (unix_ms <= 0) return "-";
  int64_t s = std::max<int64_t>(0, (now_ms - unix_ms) / 1000);
  if (s < 120) return absl::StrCat(s, "s ago");
  if (s < 7200) return absl::StrCat(s / 60, "m ago");
  if (s < 172800) return absl::StrCat(s / 3600, "h ago");
  return absl::StrCat(s / 86400, "d ago");
}

std::string FormatNumber(double v) {
  if (std::isnan(v)) return "-";
  return absl::StrFormat("%.4g", v);
}

std::string FinishName(zerorl::v1::FinishReason r) {
  switch (r) {
    case zerorl::v1::FINISH_REASON_STOP: return "stop";
    case zerorl::v1::FINISH_REASON_LENGTH: return "length";
    case zerorl::v1::FINISH_REASON_ABORT: return "abort";
    default: return "-";
  }
}

std::string Preview(absl::string_view text, size_t max_chars) {
  std::string line = OneLine(text);
  size_t chars = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    if ((static_cast<unsigned char>(line[i]) & 0xC0) != 0x80) {
      if (chars == max_chars) return line.substr(0, i) + "…";
      ++chars;
    }
  }
  return line;
}

std::vector<std::string> MetricColumns(const std::set<std::string>& present, const std::string& keys, bool all) {
  if (!keys.empty()) {
    std::vector<std::string> cols;
    for (absl::string_view k : absl::StrSplit(keys, ',', absl::SkipWhitespace()))
      cols.emplace_back(absl::StripAsciiWhitespace(k));
    return cols;
  }
  static const char* const kKey[] = {"reward_mean", "accuracy", "eval_accuracy", "completion_len_mean",
                                     "kl",          "entropy",  "tokens_per_s"};
  std::set<std::string> rest = present;
  std::vector<std::string> cols;
  for (const char* k : kKey)
    if (rest.erase(k)) cols.push_back(k);
  if (all || cols.empty()) cols.insert(cols.end(), rest.begin(), rest.end());  // none of the key ones: show what there is
  return cols;
}

}  // namespace zerorl::ctl
