// metrics.jsonl writer and reader (see metrics_log.h).
#include "orchestrator/metrics_log.h"

#include <cmath>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "common/json.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace zerorl {

const char* const kRequiredMetrics[] = {"reward_mean",    "accuracy",      "completion_len_mean", "kl",
                                        "policy_version", "reward_spec_version", nullptr};

namespace {
using json = nlohmann::ordered_json;

absl::StatusOr<zerorl::v1::StepMetrics> ParseLine(const std::string& line, const std::string& where) {
  if (auto s = CheckJsonDepth(line); !s.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", s.message()));
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON (", e.what(), ")"));
  }
  if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object with an integer \"step\""));
  }
  zerorl::v1::StepMetrics m;
  m.set_step(j["step"].get<int64_t>());
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "step") continue;
    if (it.key() == "unix_ms" && it->is_number()) {
      m.set_unix_ms(it->get<int64_t>());
    } else if (it.key() == "run_id" && it->is_string()) {
      m.set_run_id(it->get<std::string>());
    } else if (it->is_number()) {
      (*m.mutable_values())[it.key()] = it->get<double>();
    }
  }
  return m;
}
}  // namespace

std::string MetricsToJson(const zerorl::v1::StepMetrics& m) {
  json j;
  j["step"] = m.step();
  if (!m.run_id().empty()) j["run_id"] = m.run_id();
  std::map<std::string, double> sorted(m.values().begin(), m.values().end());
  for (const auto& [k, v] : sorted) {
    if (std::isfinite(v)) {
      j[k] = v;
    } else {
      j[k] = nullptr;  // JSON has no NaN/Inf
    }
  }
  j["unix_ms"] = m.unix_ms();
  return j.dump();
}

absl::StatusOr<std::vector<zerorl::v1::StepMetrics>> ReadMetricsJsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("no metrics file at ", path));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::vector<zerorl::v1::StepMetrics> out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (absl::StripAsciiWhitespace(lines[i]).empty()) continue;
    auto m = ParseLine(lines[i], absl::StrCat(path, ":", i + 1));
    if (!m.ok()) {
      if (i + 1 == lines.size()) break;  // torn tail of a crash
      return m.status();
    }
    out.push_back(std::move(*m));
  }
  return out;
}

MetricsLog::~MetricsLog() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status MetricsLog::Open(const std::string& path, int64_t resume_step) {
  path_ = path;
  std::vector<zerorl::v1::StepMetrics> keep;
  if (std::ifstream(path).good()) {
    auto all = ReadMetricsJsonl(path);
    if (!all.ok()) return all.status();
    for (auto& m : *all) {
      if (m.step() < resume_step) keep.push_back(std::move(m));
    }
  }
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return absl::PermissionDeniedError(absl::StrCat("cannot write ", tmp));
  for (const auto& m : keep) std::fprintf(f, "%s\n", MetricsToJson(m).c_str());
  std::fclose(f);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  file_ = std::fopen(path.c_str(), "a");
  if (file_ == nullptr) return absl::PermissionDeniedError(absl::StrCat("cannot append to ", path));
  return absl::OkStatus();
}

absl::Status MetricsLog::Append(const zerorl::v1::StepMetrics& m) {
  if (file_ == nullptr) return absl::FailedPreconditionError("metrics log is not open");
  const std::string line = MetricsToJson(m) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    return absl::DataLossError(absl::StrCat("writing ", path_, " failed"));
  }
  return absl::OkStatus();
}

}  // namespace zerorl
