// Python reward terms: a user file defining
//   def reward(prompt: str, completion: str, answer, **meta) -> float
// runs in persistent sandboxed worker processes speaking line-delimited JSON.
//
// Protocol (one line each way): request {"prompt","completion","answer","meta"};
// reply {"ok": true, "value": float} or {"ok": false, "error": "..."}. The user
// module's own prints go to stderr, never into the protocol. A worker that
// crashes, exceeds the per-call timeout or replies garbage is killed and
// replaced by a fresh one on the next call. Up to `max_workers` calls run in
// parallel (one per worker); more wait. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "reward/sandbox.h"

namespace zerorl::reward {

class PythonTerm {
 public:
  // Reads `file` (NOT_FOUND when missing) and starts one worker to check that it
  // imports and defines a callable `reward` (INVALID_ARGUMENT otherwise).
  static absl::StatusOr<std::unique_ptr<PythonTerm>> Create(std::shared_ptr<Sandbox> sandbox, const std::string& file,
                                                            double timeout_s, int max_workers,
                                                            const SandboxLimits& limits);
  ~PythonTerm();

  // `answer_json` and `meta_json` are JSON texts. DEADLINE_EXCEEDED on timeout,
  // INTERNAL when the worker died, INVALID_ARGUMENT when reward() raised or
  // returned something that is not a finite number.
  absl::StatusOr<double> Call(const std::string& prompt, const std::string& completion, const std::string& answer_json,
                              const std::string& meta_json);

  int restarts() const;  // workers replaced so far (crash or timeout)

 private:
  struct Worker;
  PythonTerm() = default;
  absl::StatusOr<std::unique_ptr<Worker>> StartWorker();
  absl::StatusOr<std::string> Exchange(Worker* w, const std::string& line);

  std::shared_ptr<Sandbox> sandbox_;
  std::string source_;
  double timeout_s_ = 2;
  SandboxLimits limits_;
  int max_workers_ = 1;

  mutable absl::Mutex mu_;
  absl::CondVar idle_cv_;
  std::vector<std::unique_ptr<Worker>> idle_ ABSL_GUARDED_BY(mu_);
  int live_ ABSL_GUARDED_BY(mu_) = 0;  // idle + busy workers
  int restarts_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace zerorl::reward
