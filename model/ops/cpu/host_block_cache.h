// HostBlockCache: the CPU backend's Alloc/Free of large blocks. A training
// step allocates and frees the same large activation-gradient buffers every
// step (Buf locals of 1-16 MiB on the reference workload); glibc serves those
// with fresh mmaps or trims them back to the kernel, so each step page-faulted
// every one of them in again — a quarter of the backward's time on the
// reference workload, most of it in the hypervisor's fault path. Freed blocks
// of >= kMinBytes are kept here and handed out again instead:
//  - a request takes the smallest cached block of at least its size and at
//    most 1.25x it (sizes are rounded up to 4 KiB pages), else a fresh
//    64-byte-aligned block from the C heap;
//  - at most `max_cached_bytes` stay cached; freeing beyond that releases the
//    oldest cached blocks first (a block larger than the whole limit is
//    released at once), so the cache never holds more than the limit on top of
//    what is live;
//  - smaller blocks go straight to the C heap (its bins already recycle them).
// Contents of a block are undefined (Backend::Alloc promises no zeroing).
// Thread-safe: the one CPU backend serves every model of the process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <unordered_map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace zerorl::model::ops::cpu {

class HostBlockCache {
 public:
  static constexpr size_t kMinBytes = 256 << 10;  // smaller requests bypass the cache

  explicit HostBlockCache(size_t max_cached_bytes) : max_cached_(max_cached_bytes) {}
  ~HostBlockCache();  // frees the cached blocks (live ones belong to their Bufs)
  HostBlockCache(const HostBlockCache&) = delete;
  HostBlockCache& operator=(const HostBlockCache&) = delete;

  // A 64-byte-aligned block of >= bytes, or nullptr when the C heap is out of
  // memory (the cache is released and the allocation retried first).
  void* Alloc(size_t bytes);
  // Returns a block from Alloc (nullptr is a no-op).
  void Free(void* p);

  size_t cached_bytes() const;
  size_t cached_blocks() const;

 private:
  using Age = std::list<std::pair<size_t, void*>>;  // cached blocks, oldest first
  void ReleaseOldestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_cached_;
  mutable absl::Mutex mu_;
  std::unordered_map<void*, size_t> size_of_ ABSL_GUARDED_BY(mu_);  // every large block handed out, live or cached
  Age age_ ABSL_GUARDED_BY(mu_);
  std::multimap<size_t, Age::iterator> by_size_ ABSL_GUARDED_BY(mu_);
  size_t cached_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace zerorl::model::ops::cpu
