// CRC-32C: hardware (SSE4.2) path with a portable slicing-by-8 fallback.
//
// The hardware path runs three independent crc32 instruction chains over three
// adjacent blocks (the instruction has a 3-cycle latency but issues every
// cycle) and joins them with "append n zero bytes" operators kept as 4x256
// tables (Mark Adler's method), so it runs near memory speed instead of one
// 8-byte word per 3 cycles. The copying variant stores each word as it goes.
#include "weights/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace zerorl {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t;
  Tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};

uint32_t Portable(uint32_t crc, const uint8_t* p, size_t n) {
  static const Tables tables;
  const auto& t = tables.t;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    w ^= crc;
    crc = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
          t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
  return crc;
}

#if defined(__x86_64__)
// The linear operator "feed `len` zero bytes through the CRC register", as
// four byte-indexed tables: Shift(crc) = register after len zero bytes.
class ZerosOp {
 public:
  explicit ZerosOp(size_t len) {
    uint32_t op[32];
    Operator(op, len);
    for (uint32_t n = 0; n < 256; ++n)
      for (int b = 0; b < 4; ++b) t_[b][n] = Times(op, n << (8 * b));
  }
  uint32_t Shift(uint32_t crc) const {
    return t_[0][crc & 0xff] ^ t_[1][(crc >> 8) & 0xff] ^ t_[2][(crc >> 16) & 0xff] ^ t_[3][crc >> 24];
  }

 private:
  static uint32_t Times(const uint32_t* mat, uint32_t vec) {
    uint32_t sum = 0;
    for (; vec; vec >>= 1, ++mat)
      if (vec & 1) sum ^= *mat;
    return sum;
  }
  static void Square(uint32_t* sq, const uint32_t* mat) {
    for (int n = 0; n < 32; ++n) sq[n] = Times(mat, mat[n]);
  }
  // out = the operator for len zero bytes (len > 0), by repeated squaring.
  static void Operator(uint32_t* even, size_t len) {
    uint32_t odd[32];
    odd[0] = kPoly;  // one zero bit
    for (int n = 1; n < 32; ++n) odd[n] = 1u << (n - 1);
    Square(even, odd);  // two zero bits
    Square(odd, even);  // four zero bits
    for (;;) {
      Square(even, odd);  // first pass: one zero byte
      len >>= 1;
      if (len == 0) return;
      Square(odd, even);
      len >>= 1;
      if (len == 0) break;
    }
    std::memcpy(even, odd, sizeof(odd));
  }
  std::array<std::array<uint32_t, 256>, 4> t_;
};

constexpr size_t kLong = 8192, kShort = 256;  // block sizes of the three-way loops (bytes)

inline uint64_t Load(const uint8_t* src) {
  uint64_t w;
  std::memcpy(&w, src, 8);
  return w;
}
inline void Store(uint8_t* dst, uint64_t w) { std::memcpy(dst, &w, 8); }

// Consumes whole 3*block runs from (*p, *d, *n): three chains over adjacent
// blocks, joined into c0 with `op` (= append `block` zero bytes). Works on
// local copies of the pointers: stores through a uint8_t* may alias anything,
// and reloading *p / *d after each store would stall the loop.
template <bool kCopy>
__attribute__((target("sse4.2"))) uint64_t ThreeWay(uint64_t c0, uint8_t** d, const uint8_t** p, size_t* n,
                                                    size_t block, const ZerosOp& op) {
  uint8_t* dst = *d;
  const uint8_t* src = *p;
  size_t left = *n;
  for (; left >= 3 * block; left -= 3 * block) {
    uint64_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < block; i += 8) {
      // Loads first, then stores: a load issued right behind a store that
      // might alias it is what made an interleaved version slow.
      const uint64_t w0 = Load(src + i), w1 = Load(src + block + i), w2 = Load(src + 2 * block + i);
      if constexpr (kCopy) {
        Store(dst + i, w0);
        Store(dst + block + i, w1);
        Store(dst + 2 * block + i, w2);
      }
      c0 = _mm_crc32_u64(c0, w0);
      c1 = _mm_crc32_u64(c1, w1);
      c2 = _mm_crc32_u64(c2, w2);
    }
    c0 = op.Shift(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
    c0 = op.Shift(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c2);
    src += 3 * block;
    if constexpr (kCopy) dst += 3 * block;
  }
  *d = dst;
  *p = src;
  *n = left;
  return c0;
}

// The CRC register (not inverted) extended over p[0, n); kCopy: also copies to d.
template <bool kCopy>
__attribute__((target("sse4.2"))) uint32_t Hardware(uint32_t crc, uint8_t* d, const uint8_t* p, size_t n) {
  static const ZerosOp long_op(kLong), short_op(kShort);
  uint64_t c0 = crc;
  // Align the stores (copy) or the loads (checksum only) to 8 bytes.
  for (; n > 0 && (reinterpret_cast<uintptr_t>(kCopy ? d : p) & 7) != 0; --n) {
    if constexpr (kCopy) *d++ = *p;
    c0 = _mm_crc32_u8(static_cast<uint32_t>(c0), *p++);
  }
  c0 = ThreeWay<kCopy>(c0, &d, &p, &n, kLong, long_op);
  c0 = ThreeWay<kCopy>(c0, &d, &p, &n, kShort, short_op);
  for (; n >= 8; n -= 8, p += 8) {
    const uint64_t w = Load(p);
    if constexpr (kCopy) {
      Store(d, w);
      d += 8;
    }
    c0 = _mm_crc32_u64(c0, w);
  }
  uint32_t c32 = static_cast<uint32_t>(c0);
  for (; n > 0; --n) {
    if constexpr (kCopy) *d++ = *p;
    c32 = _mm_crc32_u8(c32, *p++);
  }
  return c32;
}

bool HasSse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace

uint32_t Crc32cExtendCopy(uint32_t crc, void* dst, const void* src, size_t n) {
#if defined(__x86_64__)
  if (HasSse42()) return ~Hardware<true>(~crc, static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), n);
#endif
  std::memcpy(dst, src, n);
  return Crc32cExtend(crc, dst, n);
}

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
#if defined(__x86_64__)
  if (HasSse42()) return ~Hardware<false>(~crc, nullptr, p, n);
#endif
  return ~Portable(~crc, p, n);
}

}  // namespace zerorl
