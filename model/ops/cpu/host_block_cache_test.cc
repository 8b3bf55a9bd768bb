// HostBlockCache: large blocks come back on the next request of a similar
// size, the cache stays within its limit (oldest released first), and small
// or oversized blocks bypass it.
#include "model/ops/cpu/host_block_cache.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

namespace zerorl::model::ops::cpu {
namespace {

constexpr size_t kMiB = 1 << 20;

TEST(HostBlockCacheTest, ReusesAFreedBlockOfASimilarSize) {
  HostBlockCache cache(64 * kMiB);
  void* a = cache.Alloc(8 * kMiB);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  std::memset(a, 1, 8 * kMiB);  // the whole block is usable
  cache.Free(a);
  EXPECT_EQ(cache.cached_blocks(), 1u);
  EXPECT_EQ(cache.cached_bytes(), 8 * kMiB);
  void* b = cache.Alloc(8 * kMiB - 100);  // same rounded size: the cached block
  EXPECT_EQ(b, a);
  EXPECT_EQ(cache.cached_bytes(), 0u);
  cache.Free(b);
  void* c = cache.Alloc(4 * kMiB);  // the cached 8 MiB is more than 1.25x: a new block
  EXPECT_NE(c, a);
  EXPECT_EQ(cache.cached_blocks(), 1u);
  void* d = cache.Alloc(9 * kMiB);  // larger than anything cached: a new block
  EXPECT_NE(d, a);
  cache.Free(c);
  cache.Free(d);
  EXPECT_EQ(cache.cached_bytes(), 21 * kMiB);
}

TEST(HostBlockCacheTest, StaysWithinItsLimitReleasingTheOldestFirst) {
  HostBlockCache cache(10 * kMiB);
  void* a = cache.Alloc(4 * kMiB);
  void* b = cache.Alloc(4 * kMiB);
  void* c = cache.Alloc(4 * kMiB);
  cache.Free(a);
  cache.Free(b);
  EXPECT_EQ(cache.cached_bytes(), 8 * kMiB);
  cache.Free(c);  // 12 MiB > 10: a (the oldest) goes back to the heap
  EXPECT_EQ(cache.cached_bytes(), 8 * kMiB);
  EXPECT_EQ(cache.cached_blocks(), 2u);
  void* big = cache.Alloc(11 * kMiB);  // over the limit by itself: never cached
  cache.Free(big);
  EXPECT_EQ(cache.cached_bytes(), 8 * kMiB);
  void* x = cache.Alloc(4 * kMiB);
  void* y = cache.Alloc(4 * kMiB);
  EXPECT_TRUE((x == b && y == c) || (x == c && y == b));
  EXPECT_EQ(cache.cached_bytes(), 0u);
  cache.Free(x);
  cache.Free(y);
}

TEST(HostBlockCacheTest, SmallBlocksBypassTheCache) {
  HostBlockCache cache(64 * kMiB);
  void* p = cache.Alloc(1000);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  cache.Free(p);
  EXPECT_EQ(cache.cached_blocks(), 0u);
  cache.Free(nullptr);
  EXPECT_EQ(cache.cached_blocks(), 0u);
}

}  // namespace
}  // namespace zerorl::model::ops::cpu
