// CallPolicy (see call_policy.h).
#include "orchestrator/call_policy.h"

#include <algorithm>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"

namespace zerorl {
namespace {

using Clock = std::chrono::steady_clock;

// CANCELLED too: the orchestrator never cancels its own calls, so it comes
// from a server shutting down with the call in flight.
bool IsOutageCode(absl::StatusCode c) {
  return c == absl::StatusCode::kUnavailable || c == absl::StatusCode::kDeadlineExceeded ||
         c == absl::StatusCode::kCancelled;
}

bool IsCallersFault(absl::StatusCode c) {
  return c == absl::StatusCode::kInvalidArgument || c == absl::StatusCode::kUnauthenticated ||
         c == absl::StatusCode::kPermissionDenied;
}

}  // namespace

// The retry state of one call: when its outage began, the backoff, the reports.
class CallPolicy::Attempts {
 public:
  explicit Attempts(const CallPolicy& p) : p_(p) {}
  ~Attempts() {
    if (reported_) p_.on_wait_("");
  }

  // After an outage-class failure `s` of `target`: false when the budget is
  // spent or a stop was requested (*out is then the error to return), else
  // sleeps the backoff and returns true.
  bool WaitOutOutage(const std::string& target, const absl::Status& s, absl::Status* out) {
    const auto now = Clock::now();
    if (!began_) {
      began_ = true;
      start_ = now;
    }
    const auto waited = std::chrono::duration_cast<std::chrono::seconds>(now - start_);
    if (waited >= p_.outage_ || p_.stop_->load()) {
      const absl::StatusCode code = IsOutageCode(s.code()) ? s.code() : absl::StatusCode::kUnavailable;
      *out = p_.stop_->load()
                 ? absl::Status(code, absl::StrCat(s.message(), "; stopped while waiting for ", target))
                 : absl::Status(code, absl::StrCat(s.message(), "; waited ", waited.count(), " s for ", target,
                                                   " (orchestrator.outage_seconds ", p_.outage_.count(), " spent)"));
      return false;
    }
    const std::string text = absl::StrCat("waiting for ", target, " (", waited.count(),
                                          "s of orchestrator.outage_seconds ", p_.outage_.count(), "): ", s.message());
    if (!reported_ || waited.count() / 10 != last_report_ / 10) {
      ZLOG(WARNING) << text;
      last_report_ = waited.count();
    }
    p_.on_wait_(text);
    reported_ = true;
    for (auto t = std::chrono::milliseconds(0); t < backoff_ && !p_.stop_->load(); t += std::chrono::milliseconds(50))
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(5000));
    return true;
  }

 private:
  const CallPolicy& p_;
  bool began_ = false, reported_ = false;
  Clock::time_point start_;
  int64_t last_report_ = 0;
  std::chrono::milliseconds backoff_{250};
};

CallPolicy::CallPolicy(const zerorl::v1::OrchestratorConfig& config, const std::atomic<bool>* stop,
                       WaitReporter on_wait)
    : deadline_(std::max(1000, config.call_deadline_ms())),
      outage_(std::max(0, config.outage_seconds())),
      max_retries_(std::max(0, config.max_retries())),
      stop_(stop),
      on_wait_(std::move(on_wait)) {}

bool CallPolicy::IsOutage(const absl::Status& s) { return IsOutageCode(s.code()); }

absl::Status CallPolicy::CallSingle(const std::string& role, const std::string& address, const std::string& what,
                                    const std::function<absl::Status()>& fn) const {
  Attempts attempts(*this);
  const std::string target = address.empty() ? role : absl::StrCat(role, " at ", address);
  while (true) {
    absl::Status s = fn();
    if (s.ok()) return s;
    s = Annotate(s, what);
    if (!IsOutageCode(s.code())) return s;
    absl::Status out;
    if (!attempts.WaitOutOutage(target, s, &out)) return out;
  }
}

absl::Status CallPolicy::CallPool(WorkerRegistry* registry, zerorl::v1::WorkerRole role, const std::string& what,
                                  const std::function<absl::Status(const WorkerHandle&)>& fn) const {
  Attempts attempts(*this);
  const std::string role_name = role == zerorl::v1::WORKER_ROLE_ROLLOUT  ? "rollout workers"
                                : role == zerorl::v1::WORKER_ROLE_REWARD ? "reward workers"
                                                                         : zerorl::v1::WorkerRole_Name(role);
  std::set<std::string> exclude;
  int other_faults = 0;
  absl::Status last;
  while (true) {
    auto h = registry->Acquire(role, exclude);
    if (!h) {
      if (exclude.empty()) {
        last = absl::UnavailableError(absl::StrCat(what, ": no ", role_name, " are registered"));
      }
      // Every worker failed once (or none is registered): wait, then start over.
      exclude.clear();
      absl::Status out;
      if (!attempts.WaitOutOutage(role_name, last, &out)) return out;
      continue;
    }
    absl::Status s = fn(*h);
    const bool outage = IsOutageCode(s.code()) || s.code() == absl::StatusCode::kFailedPrecondition;
    registry->Release(h->id, s.ok() || IsCallersFault(s.code()) || s.code() == absl::StatusCode::kFailedPrecondition);
    if (s.ok()) return s;
    last = Annotate(s, absl::StrCat(what, " on ", h->id, " (", h->address, ")"));
    if (IsCallersFault(s.code())) return last;
    if (!outage && ++other_faults > max_retries_) return last;
    ZLOG(WARNING) << last << "; retrying on another worker";
    exclude.insert(h->id);
  }
}

}  // namespace zerorl
