// The run's per-step metrics on disk: RUN_DIR/metrics.jsonl, one JSON object per
// step ({"step": 3, "reward_mean": 0.41, ..., "unix_ms": ...}). Required keys are
// listed in kRequiredMetrics; eval steps add eval_accuracy (and eval_pass_at_k).
//
// Appends are flushed line by line, so a crash loses at most the line being
// written; a torn last line is ignored by ReadMetricsJsonl. Opening for a
// resumed run drops lines for steps >= the resume step, so a step that is
// re-run after a crash is recorded once. Not thread-safe.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "zerorl/v1/common.pb.h"

namespace zerorl {

extern const char* const kRequiredMetrics[];  // null-terminated

class MetricsLog {
 public:
  MetricsLog() = default;
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Opens `path`, keeping only the records of steps < `resume_step` (atomic rewrite).
  absl::Status Open(const std::string& path, int64_t resume_step);
  // Appends one step's record (values sorted by name after "step").
  absl::Status Append(const zerorl::v1::StepMetrics& m);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  FILE* file_ = nullptr;
};

// Reads a metrics.jsonl; a torn or malformed final line is skipped, a malformed
// line elsewhere is an error naming the line.
absl::StatusOr<std::vector<zerorl::v1::StepMetrics>> ReadMetricsJsonl(const std::string& path);

// One JSON line for a record (no trailing newline).
std::string MetricsToJson(const zerorl::v1::StepMetrics& m);

}  // namespace zerorl
