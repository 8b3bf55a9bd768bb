// CachingAllocator: size rounding, the free-block cache, release-and-retry on
// cudaMalloc failure and the out-of-memory message (see caching_allocator.h).
#include "model/ops/cuda/caching_allocator.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/ops/cuda/device_memory.h"
#include "model/ops/ops.h"

namespace zerorl::model::ops::cuda {
namespace {

constexpr size_t kMinBlock = 512;
constexpr size_t kSmallLimit = size_t{1} << 20;  // 1 MiB
constexpr size_t kLargeGrain = size_t{2} << 20;  // 2 MiB

std::string GiB(int64_t b) { return absl::StrFormat("%.2f GiB", static_cast<double>(b) / (1LL << 30)); }

}  // namespace

size_t CachingAllocator::RoundSize(size_t bytes) {
  if (bytes <= kMinBlock) return kMinBlock;
  if (bytes <= kSmallLimit) {
    size_t r = kMinBlock;
    while (r < bytes) r <<= 1;
    return r;
  }
  return (bytes + kLargeGrain - 1) / kLargeGrain * kLargeGrain;
}

CachingAllocator::~CachingAllocator() {
  absl::MutexLock lock(&mu_);
  cudaSetDevice(device_);
  ReleaseCacheLocked();
  for (auto& [p, size] : live_) {
    cudaFree(p);
    Account(-static_cast<int64_t>(size), 0);
  }
  live_.clear();
}

void CachingAllocator::Account(int64_t in_use_delta, int64_t cached_delta) {
  stats_.in_use_bytes += in_use_delta;
  stats_.cached_bytes += cached_delta;
  if (stats_.in_use_bytes + stats_.cached_bytes > stats_.peak_bytes)
    stats_.peak_bytes = stats_.in_use_bytes + stats_.cached_bytes;
  stats_.live_blocks = static_cast<int64_t>(live_.size());
  NoteBackendMemory(in_use_delta, cached_delta);
}

void* CachingAllocator::Alloc(int64_t bytes, const char* what) {
  if (bytes < 0)
    throw OutOfMemory(absl::StrCat("CUDA allocation of \"", what ? what : "buffer", "\" with a negative size (",
                                   bytes, " bytes)"));
  const size_t need = RoundSize(static_cast<size_t>(bytes));
  absl::MutexLock lock(&mu_);
  // Reuse: the smallest cached block that is big enough and not wasteful.
  const size_t limit = need <= kSmallLimit ? need : need + need / 4;
  auto it = free_.lower_bound(need);
  if (it != free_.end() && it->first <= limit) {
    const size_t size = it->first;
    void* p = it->second;
    free_.erase(it);
    live_.emplace(p, size);
    Account(static_cast<int64_t>(size), -static_cast<int64_t>(size));
    return p;
  }
  cudaSetDevice(device_);
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, need);
  if (e != cudaSuccess && !free_.empty()) {
    cudaGetLastError();  // clear the error before retrying
    ReleaseCacheLocked();
    e = cudaMalloc(&p, need);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t f = 0, t = 0;
    cudaMemGetInfo(&f, &t);
    const DeviceMemoryStats g = GetDeviceMemoryStats();
    throw OutOfMemory(absl::StrCat(
        "CUDA ", e == cudaErrorMemoryAllocation ? "out of memory" : cudaGetErrorString(e), " on device ", device_,
        " allocating \"", what ? what : "buffer", "\": asked for ", bytes, " bytes (", GiB(bytes), "); free ",
        GiB(static_cast<int64_t>(f)), " of ", GiB(static_cast<int64_t>(t)), "; this backend holds ",
        GiB(stats_.in_use_bytes), " in ", live_.size(), " blocks (+", GiB(stats_.cached_bytes), " cached, peak ",
        GiB(stats_.peak_bytes), "); the process holds ", GiB(g.in_use_bytes), " through DeviceBuffer"));
  }
  ++stats_.cuda_mallocs;
  live_.emplace(p, need);
  Account(static_cast<int64_t>(need), 0);
  return p;
}

void CachingAllocator::Free(void* p) {
  if (!p) return;
  absl::MutexLock lock(&mu_);
  auto it = live_.find(p);
  if (it == live_.end()) {
    std::fprintf(stderr, "[CUDA ERROR] Backend::Free(%p): not a live block of this backend (double free?)\n", p);
    std::abort();
  }
  const size_t size = it->second;
  live_.erase(it);
  free_.emplace(size, p);
  Account(-static_cast<int64_t>(size), static_cast<int64_t>(size));
}

void CachingAllocator::ReleaseCache() {
  absl::MutexLock lock(&mu_);
  ReleaseCacheLocked();
}

void CachingAllocator::ReleaseCacheLocked() {
  if (free_.empty()) return;
  cudaSetDevice(device_);
  int64_t released = 0;
  for (auto& [size, p] : free_) {
    cudaFree(p);  // synchronises the device: queued users of the block finish first
    released += static_cast<int64_t>(size);
  }
  free_.clear();
  Account(0, -released);
}

AllocatorStats CachingAllocator::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace zerorl::model::ops::cuda
