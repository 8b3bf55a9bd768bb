// CRC-32C (Castagnoli), the checksum carried per tensor in WeightChunk.
// Uses the SSE4.2 crc32 instruction when the CPU has it, else slicing-by-8
// tables; both give the same value. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace zerorl {

// Extends `crc` (0 for a fresh checksum) over data[0, n). Crc32c(Crc32c(0,a),b) == Crc32c(0,ab).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }
// Copies src[0, n) to dst (no overlap) and extends `crc` over it in one pass.
uint32_t Crc32cExtendCopy(uint32_t crc, void* dst, const void* src, size_t n);

}  // namespace zerorl
