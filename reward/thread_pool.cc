// ThreadPool (contract in thread_pool.h).
#include "reward/thread_pool.h"

#include <atomic>
#include <memory>

namespace zerorl::reward {

ThreadPool::ThreadPool(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    workers_.emplace_back([this] {
      while (true) {
        std::function<void()> task;
        {
          absl::MutexLock lock(&mu_);
          while (!stop_ && queue_.empty()) cv_.Wait(&mu_);
          if (stop_ && queue_.empty()) return;
          task = std::move(queue_.front());
          queue_.pop_front();
        }
        task();
      }
    });
  }
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  for (auto& t : workers_) t.join();
}

void ThreadPool::ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  struct Shared {
    std::atomic<size_t> next{0};
    absl::Mutex mu;
    absl::CondVar done_cv;
    size_t done ABSL_GUARDED_BY(mu) = 0;
  };
  auto shared = std::make_shared<Shared>();
  auto drain = [shared, n, &fn] {
    size_t finished = 0;
    for (size_t i; (i = shared->next.fetch_add(1)) < n;) {
      fn(i);
      ++finished;
    }
    absl::MutexLock lock(&shared->mu);
    shared->done += finished;
    if (shared->done == n) shared->done_cv.SignalAll();
  };
  size_t helpers = std::min(n - 1, workers_.size());
  {
    absl::MutexLock lock(&mu_);
    for (size_t h = 0; h < helpers; ++h) queue_.push_back(drain);
  }
  cv_.SignalAll();
  drain();
  absl::MutexLock lock(&shared->mu);
  while (shared->done != n) shared->done_cv.Wait(&shared->mu);
}

}  // namespace zerorl::reward
