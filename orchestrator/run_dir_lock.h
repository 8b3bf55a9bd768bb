// RunDirLock: an exclusive lock on a run directory, so two runs (two `zerorl
// run` processes, or two orchestrators) never share one — whatever their
// buffer.path or checkpoint dir.
//
// flock(2) on RUN_DIR/LOCK, which also holds the holder's pid for the error
// message. The kernel drops the lock when the holder exits or is killed
// (kill -9 included), so a crash never leaves a stale lock behind.
// Thread-compatible.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace zerorl {

class RunDirLock {
 public:
  // Takes the lock on `dir` (which must exist). FAILED_PRECONDITION naming the
  // directory and the holder's pid when another process (or another run in
  // this one) holds it.
  static absl::StatusOr<std::unique_ptr<RunDirLock>> Acquire(const std::string& dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  explicit RunDirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace zerorl
