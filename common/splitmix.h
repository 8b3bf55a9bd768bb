// SplitMix64: a tiny, portable, seedable RNG whose sequence is the same on every
// platform and standard library (std::shuffle's is not), so seeded dataset
// orders, splits and generated tasks are reproducible everywhere.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace zerorl {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n); n > 0. (Modulo bias is negligible for the small n used here.)
  uint64_t Below(uint64_t n) { return Next() % n; }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  uint64_t state() const { return state_; }
  void set_state(uint64_t s) { state_ = s; }

 private:
  uint64_t state_;
};

// Fisher-Yates with SplitMix64.
template <typename T>
void ShuffleInPlace(std::vector<T>* v, SplitMix64* rng) {
  for (size_t i = v->size(); i > 1; --i) {
    size_t j = rng->Below(i);
    std::swap((*v)[i - 1], (*v)[j]);
  }
}

}  // namespace zerorl
