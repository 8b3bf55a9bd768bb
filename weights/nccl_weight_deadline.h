// RunWithDeadline: a blocking call bounded by a deadline, for NCCL calls that
// cannot be interrupted (ncclCommInitRank waits for every rank; a broadcast
// waits for every rank to take part). The call runs on its own thread; when
// it overruns, the caller gets nullopt and the thread is left to finish
// detached — its state (and whatever the call holds, e.g. a communicator) is
// kept alive by a shared pointer until then and its result is dropped.
// `give_up` (may be empty), polled every 20 ms, ends the wait early the same
// way (e.g. a peer already failed, so a collective can never complete).
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace zerorl::weights {

template <typename T>
std::optional<T> RunWithDeadline(std::function<T()> fn, std::chrono::milliseconds timeout,
                                 const std::function<bool()>& give_up = nullptr) {
  struct State {
    absl::Mutex mu;
    absl::CondVar cv;
    std::optional<T> result ABSL_GUARDED_BY(mu);
  };
  auto state = std::make_shared<State>();
  std::thread worker([state, fn = std::move(fn)] {
    T r = fn();
    absl::MutexLock lk(&state->mu);
    state->result.emplace(std::move(r));
    state->cv.SignalAll();
  });
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::chrono::steady_clock::duration poll = std::chrono::milliseconds(20);
  std::optional<T> result;
  for (;;) {
    {
      absl::MutexLock lk(&state->mu);
      const auto now = std::chrono::steady_clock::now();
      if (!state->result.has_value() && now < deadline)
        state->cv.WaitWithTimeout(&state->mu, absl::FromChrono(std::min(deadline - now, poll)));
      if (state->result.has_value()) result = std::move(state->result);
    }
    if (result.has_value()) {
      worker.join();
      return result;
    }
    if (std::chrono::steady_clock::now() >= deadline || (give_up && give_up())) break;
  }
  worker.detach();
  return std::nullopt;
}

}  // namespace zerorl::weights
