// A fixed pool of worker threads with a blocking ParallelFor. The calling
// thread takes part, so ParallelFor never deadlocks even when every worker is
// busy with other calls. Thread-safe; the destructor joins the workers.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace zerorl::reward {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Calls fn(i) for every i in [0, n) across the pool; returns when all are done.
  void ParallelFor(size_t n, const std::function<void(size_t)>& fn);
  int size() const { return static_cast<int>(workers_.size()); }

 private:
  absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace zerorl::reward
