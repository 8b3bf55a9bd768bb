// DetachedBackend: the CPU backend behind device-style memory, for tests of
// the device code path on machines without a GPU. Its Alloc hands out tagged
// pointers (bit 62 flipped: non-canonical on x86-64), so any host code that
// dereferences backend memory instead of going through Upload/Download
// crashes at once, exactly where it would read garbage on a GPU. Every op
// untags its pointer arguments (AttnSeq descriptors included) and runs the
// CPU implementation, so results equal the CPU backend's bit for bit.
// host_memory() is false. It also counts the bytes crossing Upload/Download,
// so tests can check what a code path moves between host and "device".
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "model/ops/ops.h"

namespace zerorl::model::ops {

struct TransferStats {
  int64_t uploaded_bytes = 0;
  int64_t downloaded_bytes = 0;
};

class DetachedBackendHandle {
 public:
  virtual ~DetachedBackendHandle() = default;
  virtual Backend* backend() = 0;
  virtual TransferStats stats() const = 0;
  virtual void ResetStats() = 0;
  // Live allocations (Alloc minus Free).
  virtual int64_t live_allocations() const = 0;
};

std::unique_ptr<DetachedBackendHandle> NewDetachedBackend();

}  // namespace zerorl::model::ops
