// CheckpointDir: the learner's checkpoint directory.
//
//   ROOT/step-00000010/   one complete checkpoint (files written by the caller)
//        COMPLETE         marker, written last, before the rename
//   ROOT/.tmp-step-...    a checkpoint being written; ignored and removed later
//
// Write() fills a fresh temporary directory, writes the marker, fsyncs, and
// renames it into place, so after a crash a step directory is either absent
// or complete. It then deletes all but the newest keep_last complete
// checkpoints. Latest() is the newest directory holding the marker.
// Thread-compatible (one writer).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zerorl::learner {

struct CheckpointEntry {
  std::string path;
  int64_t step = 0;
};

class CheckpointDir {
 public:
  CheckpointDir(std::string root, int keep_last) : root_(std::move(root)), keep_last_(keep_last) {}

  // Runs fill(tmp_dir), then publishes it as ROOT/step-NNNNNNNN (replacing an
  // older one of the same step). On error nothing is published.
  absl::StatusOr<std::string> Write(int64_t step, const std::function<absl::Status(const std::string&)>& fill);
  // Complete checkpoints, oldest first.
  std::vector<CheckpointEntry> List() const;
  std::optional<CheckpointEntry> Latest() const;
  const std::string& root() const { return root_; }

 private:
  void Prune();
  std::string root_;
  int keep_last_;  // <= 0 keeps all
};

}  // namespace zerorl::learner
