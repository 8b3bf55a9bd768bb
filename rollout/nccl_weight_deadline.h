// RunWithDeadline: a blocking call bounded by a deadline, for NCCL calls that
// cannot be interrupted (ncclCommInitRank waits for every rank; a broadcast
// waits for every rank to take part). The call runs on its own thread; when
// it overruns, the caller gets nullopt and the thread is left to finish
// detached — its state (and whatever the call holds, e.g. a communicator) is
// kept alive by a shared pointer until then and its result is dropped.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace zerorl::rollout {

template <typename T>
std::optional<T> RunWithDeadline(std::function<T()> fn, std::chrono::milliseconds timeout) {
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
  std::unique_lock<std::mutex> lk(state->mu);
  if (state->cv.wait_for(lk, timeout, [&] { return state->result.has_value(); })) {
    lk.unlock();
    worker.join();
    return std::move(state->result);
  }
  worker.detach();
  return std::nullopt;
}

}  // namespace zerorl::rollout
