// Device memory for the CUDA backend: an owning buffer (RAII cudaMalloc /
// cudaFree) with upload/download helpers, and process-wide accounting of the
// bytes this process holds through it. Allocation failures are errors, not
// crashes, and say how much was asked for and how much is free:
//   RESOURCE_EXHAUSTED: CUDA out of memory on device 0 allocating "kv cache":
//   asked for 8589934592 bytes (8.00 GiB); free 1.20 GiB of 139.80 GiB;
//   this process holds 120.3 GiB through DeviceBuffer (peak 121.0 GiB)
// Host-compiler friendly (no CUDA headers).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zerorl::model::ops {

struct DeviceMemoryStats {
  int64_t in_use_bytes = 0;  // held through DeviceBuffer now (all devices)
  int64_t peak_bytes = 0;    // high-water mark of in_use_bytes
  int64_t allocations = 0;   // live DeviceBuffers
  // Backend::Alloc of the CUDA backends (caching_allocator.h), all devices:
  int64_t backend_in_use_bytes = 0;  // live blocks (rounded sizes)
  int64_t backend_cached_bytes = 0;  // freed blocks kept for reuse
  int64_t backend_peak_bytes = 0;    // high-water mark of in_use + cached
};
DeviceMemoryStats GetDeviceMemoryStats();
// Called by the caching allocator when its live / cached byte counts change.
void NoteBackendMemory(int64_t in_use_delta, int64_t cached_delta);

// Free and total bytes of `device` as cudaMemGetInfo reports them.
absl::Status DeviceMemInfo(int device, int64_t* free_bytes, int64_t* total_bytes);

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // `what` names the buffer in errors. bytes == 0 gives an empty buffer.
  // INVALID_ARGUMENT for bytes < 0, FAILED_PRECONDITION without a device,
  // RESOURCE_EXHAUSTED when the device is out of memory.
  static absl::StatusOr<DeviceBuffer> Allocate(int64_t bytes, int device, absl::string_view what);

  void* data() const { return ptr_; }
  float* f32() const { return static_cast<float*>(ptr_); }
  int32_t* i32() const { return static_cast<int32_t*>(ptr_); }
  int64_t bytes() const { return bytes_; }
  int device() const { return device_; }

  // Synchronous copies of `bytes` (<= this->bytes(), INVALID_ARGUMENT otherwise)
  // at byte `offset`. Download waits for queued work on the device first.
  absl::Status Upload(const void* host, int64_t bytes, int64_t offset = 0);
  absl::Status Download(void* host, int64_t bytes, int64_t offset = 0) const;
  absl::Status Zero();

 private:
  void Release();
  void* ptr_ = nullptr;
  int64_t bytes_ = 0;
  int device_ = 0;
  std::string what_;
};

}  // namespace zerorl::model::ops
