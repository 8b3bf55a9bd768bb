// HostBlockCache: see host_block_cache.h.
#include "model/ops/cpu/host_block_cache.h"

#include <cstdlib>

namespace zerorl::model::ops::cpu {
namespace {
constexpr size_t kPage = 4096;
size_t RoundUp(size_t bytes, size_t to) { return (bytes + to - 1) / to * to; }
}  // namespace

HostBlockCache::~HostBlockCache() {
  absl::MutexLock lock(&mu_);
  for (auto& [size, p] : age_) std::free(p);
}

void* HostBlockCache::Alloc(size_t bytes) {
  if (bytes < kMinBytes) return std::aligned_alloc(64, RoundUp(bytes == 0 ? 64 : bytes, 64));
  const size_t size = RoundUp(bytes, kPage);
  absl::MutexLock lock(&mu_);
  auto it = by_size_.lower_bound(size);
  if (it != by_size_.end() && it->first <= size + size / 4) {
    void* p = it->second->second;
    cached_ -= it->first;
    age_.erase(it->second);
    by_size_.erase(it);
    return p;
  }
  void* p = std::aligned_alloc(64, size);
  if (!p && !age_.empty()) {
    while (!age_.empty()) ReleaseOldestLocked();
    p = std::aligned_alloc(64, size);
  }
  if (p) size_of_[p] = size;
  return p;
}

void HostBlockCache::Free(void* p) {
  if (!p) return;
  absl::MutexLock lock(&mu_);
  auto found = size_of_.find(p);
  if (found == size_of_.end()) {
    std::free(p);
    return;
  }
  const size_t size = found->second;
  if (size > max_cached_) {
    size_of_.erase(found);
    std::free(p);
    return;
  }
  while (cached_ + size > max_cached_) ReleaseOldestLocked();
  age_.emplace_back(size, p);
  by_size_.emplace(size, std::prev(age_.end()));
  cached_ += size;
}

void HostBlockCache::ReleaseOldestLocked() {
  auto [size, p] = age_.front();
  auto range = by_size_.equal_range(size);
  for (auto it = range.first; it != range.second; ++it)
    if (it->second == age_.begin()) {
      by_size_.erase(it);
      break;
    }
  age_.pop_front();
  size_of_.erase(p);
  cached_ -= size;
  std::free(p);
}

size_t HostBlockCache::cached_bytes() const {
  absl::MutexLock lock(&mu_);
  return cached_;
}

size_t HostBlockCache::cached_blocks() const {
  absl::MutexLock lock(&mu_);
  return age_.size();
}

}  // namespace zerorl::model::ops::cpu
