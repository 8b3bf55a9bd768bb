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
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace zerorl::weights {

template <typename T>
std::optional<T> RunWithDeadline(std::function<T()> fn, std::chrono::milliseconds timeout,
                                 const std::function<bool()>& give_up = nullptr) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<T> result;
  };
  auto state = std::make_shared<State>();
  std::thread worker([state, fn = std::move(fn)] {
    T r = fn();
    std::lock_guard<std::mutex> lk(state->mu);
    state->result.emplace(std::move(r));
    state->cv.notify_all();
  });
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> lk(state->mu);
  for (;;) {
    const auto slice = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(20));
    if (state->cv.wait_until(lk, slice, [&] { return state->result.has_value(); })) {
      lk.unlock();
      worker.join();
      return std::move(state->result);
    }
    if (std::chrono::steady_clock::now() >= deadline || (give_up && give_up())) break;
  }
  lk.unlock();
  worker.detach();
  return std::nullopt;
}

}  // namespace zerorl::weights
