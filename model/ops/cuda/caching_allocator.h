// CachingAllocator: Backend::Alloc / Free of one CUDA backend. cudaFree
// synchronises the whole device and Buf<T> grows and frees often (KV caches,
// activations), so freed blocks are kept and handed out again:
//  - sizes round up: <= 1 MiB to a power of two (>= 512 B), larger to a
//    multiple of 2 MiB; a request reuses a cached block of the same rounded
//    size (small) or of up to 1.25x its rounded size (large);
//  - all work runs on one stream (the legacy default stream), so a block
//    freed while kernels that use it are still queued is safe to reuse: the
//    new user's work is ordered after them;
//  - when cudaMalloc fails, the cache is released (cudaFree) and the
//    allocation retried once; if it still fails, ops::OutOfMemory is thrown:
//      CUDA out of memory on device 0 allocating "kv cache": asked for
//      8589934592 bytes (8.00 GiB); free 1.20 GiB of 139.80 GiB; this backend
//      holds 120.30 GiB in 5210 blocks (+0.00 GiB cached, peak 121.00 GiB)
// Byte counts feed GetDeviceMemoryStats() (device_memory.h). Thread-safe.
// Host-compiler friendly (no CUDA headers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace zerorl::model::ops::cuda {

struct AllocatorStats {
  int64_t in_use_bytes = 0;   // live blocks, rounded sizes
  int64_t cached_bytes = 0;   // freed blocks kept for reuse
  int64_t peak_bytes = 0;     // high-water mark of in_use + cached
  int64_t live_blocks = 0;
  int64_t cuda_mallocs = 0;   // cudaMalloc calls so far (cache misses)
};

class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  ~CachingAllocator();  // cudaFree of every block, live or cached
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // `bytes` >= 0 of device memory (256-byte aligned); throws ops::OutOfMemory
  // naming `what`, the bytes asked for and the device's free/total bytes.
  void* Alloc(int64_t bytes, const char* what);
  // Returns a block from Alloc to the cache; nullptr is a no-op. Aborts on a
  // pointer this allocator did not hand out (a double free or a foreign pointer).
  void Free(void* p);
  // cudaFree of every cached block.
  void ReleaseCache();
  AllocatorStats stats() const;

  static size_t RoundSize(size_t bytes);

 private:
  void ReleaseCacheLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Account(int64_t in_use_delta, int64_t cached_delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int device_;
  mutable absl::Mutex mu_;
  std::unordered_map<void*, size_t> live_ ABSL_GUARDED_BY(mu_);  // pointer -> rounded size
  std::multimap<size_t, void*> free_ ABSL_GUARDED_BY(mu_);       // rounded size -> cached block
  AllocatorStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zerorl::model::ops::cuda
