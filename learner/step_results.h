// StepResults: the recorded answer of every Train step, so that Train is
// idempotent across a learner crash.
//
//   ROOT/step-00000007.pb   the TrainResponse of step 7 (binary proto)
//
// Put() writes a temporary file, fsyncs it and renames it into place, so after
// a crash a step's file is either absent or whole; then it deletes all but the
// newest keep_last files. A learner that checkpointed step k and died before
// answering finds step k's answer here after its restart. Thread-compatible
// (the learner calls it under its own mutex).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "zerorl/v1/learner.pb.h"

namespace zerorl::learner {

class StepResults {
 public:
  StepResults(std::string root, int keep_last) : root_(std::move(root)), keep_last_(keep_last) {}

  // Durably records the answer of `step` (replacing an earlier one).
  absl::Status Put(int64_t step, const zerorl::v1::TrainResponse& response);
  // The recorded answer of `step`, or nullopt when there is none (or it is unreadable).
  std::optional<zerorl::v1::TrainResponse> Get(int64_t step) const;
  const std::string& root() const { return root_; }

 private:
  std::string PathOf(int64_t step) const;
  void Prune() const;
  std::string root_;
  int keep_last_;
};

}  // namespace zerorl::learner
