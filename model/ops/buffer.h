// Buf<T>: a growable array in a backend's memory (host for the CPU backend,
// device for CUDA) — what std::vector is to the host, for the model's weights,
// activations and KV caches. resize() keeps the contents (like std::vector;
// new elements are uninitialised unless assign() is used) and grows the
// capacity by at least 1.5x once allocated, so per-token KV-cache appends stay amortised O(1).
// Copying a Buf copies its contents on the backend (KVCache::Fork).
// Allocation failures throw ops::OutOfMemory (see ops.h).
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "model/ops/ops.h"

namespace zerorl::model::ops {

template <typename T>
class Buf {
  static_assert(std::is_trivially_copyable_v<T>, "Buf holds plain numbers");

 public:
  Buf() = default;
  explicit Buf(Backend* b, const char* what = "buffer") : b_(b), what_(what) {}
  ~Buf() { Release(); }
  Buf(Buf&& o) noexcept { *this = std::move(o); }
  Buf& operator=(Buf&& o) noexcept {
    if (this != &o) {
      Release();
      b_ = o.b_;
      what_ = o.what_;
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
      cap_ = std::exchange(o.cap_, 0);
    }
    return *this;
  }
  Buf(const Buf& o) : b_(o.b_), what_(o.what_) {
    if (o.n_ > 0) {
      Reserve(o.n_, false);
      b_->Copy(p_, o.p_, o.n_ * static_cast<int64_t>(sizeof(T)));
      n_ = o.n_;
    }
  }
  Buf& operator=(const Buf& o) {
    if (this != &o) *this = Buf(o);
    return *this;
  }

  // Binds an empty Buf to a backend (a no-op when already bound to it).
  void bind(Backend* b, const char* what) {
    if (b_ == b) return;
    Release();
    b_ = b;
    what_ = what;
  }
  Backend* backend() const { return b_; }
  T* data() { return p_; }
  const T* data() const { return p_; }
  int64_t size() const { return n_; }
  int64_t capacity() const { return cap_; }  // elements allocated
  bool empty() const { return n_ == 0; }

  // Keeps the first min(size, n) elements.
  void resize(int64_t n) {
    if (n > cap_) Reserve(n, true);
    n_ = n;
  }
  // n elements, every one `value` (float and int32 only).
  void assign(int64_t n, T value) {
    if (n > cap_) Reserve(n, false);
    n_ = n;
    if constexpr (std::is_same_v<T, float>) b_->Fill(p_, value, n);
    else b_->FillI32(reinterpret_cast<int32_t*>(p_), static_cast<int32_t>(value), n);
  }
  // n elements copied from host memory.
  void upload(const T* host, int64_t n) {
    resize_discard(n);
    if (n > 0) b_->Upload(p_, host, n * static_cast<int64_t>(sizeof(T)));
  }
  // Like resize, without keeping the old contents (no copy on growth).
  void resize_discard(int64_t n) {
    if (n > cap_) Reserve(n, false);
    n_ = n;
  }
  void clear() { n_ = 0; }
  // Allocates exactly n elements now when the capacity is smaller (keeps the
  // contents), so that resizes up to n neither allocate nor copy.
  void reserve(int64_t n) {
    if (n > cap_) ReserveExact(n);
  }

 private:
  void Reserve(int64_t n, bool keep) {
    // Exact on first use; then at least 1.5x, so appends are amortised O(1).
    const int64_t cap = n > cap_ + cap_ / 2 ? n : cap_ + cap_ / 2;
    T* p = static_cast<T*>(b_->Alloc(cap * static_cast<int64_t>(sizeof(T)), what_));
    if (keep && n_ > 0) b_->Copy(p, p_, n_ * static_cast<int64_t>(sizeof(T)));
    if (p_) b_->Free(p_);
    p_ = p;
    cap_ = cap;
  }
  void ReserveExact(int64_t n) {
    T* p = static_cast<T*>(b_->Alloc(n * static_cast<int64_t>(sizeof(T)), what_));
    if (n_ > 0) b_->Copy(p, p_, n_ * static_cast<int64_t>(sizeof(T)));
    if (p_) b_->Free(p_);
    p_ = p;
    cap_ = n;
  }
  void Release() {
    if (p_) b_->Free(p_);
    p_ = nullptr;
    n_ = cap_ = 0;
  }

  Backend* b_ = nullptr;
  const char* what_ = "buffer";
  T* p_ = nullptr;
  int64_t n_ = 0, cap_ = 0;
};

}  // namespace zerorl::model::ops
