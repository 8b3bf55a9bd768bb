// CallPolicy: the orchestrator's one retry policy for its calls to the other
// actors (rollout and reward pools, the buffer, the learner). Nothing else
// retries: the orchestrator's channels carry no retry service config.
//
//   deadline     every call: orchestrator.call_deadline_ms.
//   outage       UNAVAILABLE, DEADLINE_EXCEEDED or CANCELLED (a server shutting
//                down with the call in flight) (and, from a rollout/reward
//                pool, FAILED_PRECONDITION: a worker without the needed policy
//                version waits for the next weight push) is the actor being
//                down or behind: the call is retried — on another worker of a
//                pool first — with exponential backoff (0.25 s doubling to 5 s)
//                until orchestrator.outage_seconds have passed since its first
//                such failure. Then the call returns that last error annotated
//                "... outage_seconds ... spent"; IsOutage() is true for it and
//                the run stops as STOPPED, resumable by starting the
//                orchestrator again.
//   other faults INTERNAL, RESOURCE_EXHAUSTED, ... from a pool worker: retried
//                on another worker up to orchestrator.max_retries times.
//   the caller's INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED, and any
//                other error of a single actor: returned at once.
// While a call waits out an outage the policy reports "waiting for learner at
// HOST:PORT (12s of outage_seconds 300): <last error>" through `on_wait`, and
// "" once it goes through. A stop request (the `stop` flag) ends the wait.
// Thread-safe: many calls may run at once.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "orchestrator/worker_registry.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl {

class CallPolicy {
 public:
  using WaitReporter = std::function<void(const std::string& waiting_for)>;
  CallPolicy(const zerorl::v1::OrchestratorConfig& config, const std::atomic<bool>* stop, WaitReporter on_wait);

  std::chrono::milliseconds deadline() const { return deadline_; }

  // Calls fn() on the single actor `role` ("learner", "buffer") at `address`.
  absl::Status CallSingle(const std::string& role, const std::string& address, const std::string& what,
                          const std::function<absl::Status()>& fn) const;
  // Calls fn(worker) on a worker of `role`, moving to another on failure.
  absl::Status CallPool(WorkerRegistry* registry, zerorl::v1::WorkerRole role, const std::string& what,
                        const std::function<absl::Status(const WorkerHandle&)>& fn) const;

  // Whether a call's error is an outage past the budget (or a stop during one).
  static bool IsOutage(const absl::Status& s);

 private:
  class Attempts;
  std::chrono::milliseconds deadline_;
  std::chrono::seconds outage_;
  int max_retries_;
  const std::atomic<bool>* stop_;
  WaitReporter on_wait_;
};

}  // namespace zerorl
