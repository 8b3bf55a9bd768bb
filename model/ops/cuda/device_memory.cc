// DeviceBuffer: cudaMalloc/cudaFree with byte accounting and out-of-memory
// errors that say what was asked for and what is free (cudaMemGetInfo).
#include "model/ops/cuda/device_memory.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/ops/cuda/cuda_backend.h"
#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/cuda_status.h"

namespace zerorl::model::ops {
namespace {
std::atomic<int64_t> g_in_use{0}, g_peak{0}, g_count{0};
std::atomic<int64_t> g_backend_in_use{0}, g_backend_cached{0}, g_backend_peak{0};

void RaisePeak(std::atomic<int64_t>& peak, int64_t now) {
  int64_t p = peak.load();
  while (now > p && !peak.compare_exchange_weak(p, now)) {
  }
}

std::string GiB(int64_t b) { return absl::StrFormat("%.2f GiB", static_cast<double>(b) / (1LL << 30)); }
}  // namespace

DeviceMemoryStats GetDeviceMemoryStats() {
  DeviceMemoryStats s;
  s.in_use_bytes = g_in_use.load();
  s.peak_bytes = g_peak.load();
  s.allocations = g_count.load();
  s.backend_in_use_bytes = g_backend_in_use.load();
  s.backend_cached_bytes = g_backend_cached.load();
  s.backend_peak_bytes = g_backend_peak.load();
  return s;
}

void NoteBackendMemory(int64_t in_use_delta, int64_t cached_delta) {
  const int64_t used = g_backend_in_use.fetch_add(in_use_delta) + in_use_delta;
  const int64_t cached = g_backend_cached.fetch_add(cached_delta) + cached_delta;
  RaisePeak(g_backend_peak, used + cached);
}

absl::Status DeviceMemInfo(int device, int64_t* free_bytes, int64_t* total_bytes) {
  if (auto st = CudaDeviceStatus(device); !st.ok()) return st;
  ZRL_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  size_t f = 0, t = 0;
  ZRL_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&f, &t));
  *free_bytes = static_cast<int64_t>(f);
  *total_bytes = static_cast<int64_t>(t);
  return absl::OkStatus();
}

absl::StatusOr<DeviceBuffer> DeviceBuffer::Allocate(int64_t bytes, int device, absl::string_view what) {
  if (bytes < 0) return absl::InvalidArgumentError(absl::StrCat("DeviceBuffer \"", what, "\": negative size ", bytes));
  if (auto st = CudaDeviceStatus(device); !st.ok()) return st;
  DeviceBuffer b;
  b.device_ = device;
  b.what_ = std::string(what);
  if (bytes == 0) return b;
  ZRL_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, static_cast<size_t>(bytes));
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t f = 0, t = 0;
    cudaMemGetInfo(&f, &t);
    const DeviceMemoryStats s = GetDeviceMemoryStats();
    std::string msg = absl::StrCat(
        "CUDA ", e == cudaErrorMemoryAllocation ? "out of memory" : cudaGetErrorString(e), " on device ", device,
        " allocating \"", what, "\": asked for ", bytes, " bytes (", GiB(bytes), "); free ", GiB(static_cast<int64_t>(f)),
        " of ", GiB(static_cast<int64_t>(t)), "; this process holds ", GiB(s.in_use_bytes),
        " through DeviceBuffer (peak ", GiB(s.peak_bytes), ") and ", GiB(s.backend_in_use_bytes),
        " in backend buffers (+", GiB(s.backend_cached_bytes), " cached)");
    if (e == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(msg);
    return absl::InternalError(msg);
  }
  b.ptr_ = p;
  b.bytes_ = bytes;
  RaisePeak(g_peak, g_in_use.fetch_add(bytes) + bytes);
  g_count.fetch_add(1);
  return b;
}

DeviceBuffer::~DeviceBuffer() { Release(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)), device_(o.device_),
      what_(std::move(o.what_)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    Release();
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    device_ = o.device_;
    what_ = std::move(o.what_);
  }
  return *this;
}

void DeviceBuffer::Release() {
  if (!ptr_) return;
  cudaSetDevice(device_);
  cudaFree(ptr_);
  g_in_use.fetch_sub(bytes_);
  g_count.fetch_sub(1);
  ptr_ = nullptr;
  bytes_ = 0;
}

absl::Status DeviceBuffer::Upload(const void* host, int64_t bytes, int64_t offset) {
  if (bytes < 0 || offset < 0 || offset + bytes > bytes_)
    return absl::InvalidArgumentError(absl::StrCat("DeviceBuffer \"", what_, "\": upload of ", bytes, " bytes at ",
                                                   offset, " does not fit its ", bytes_, " bytes"));
  if (bytes == 0) return absl::OkStatus();
  ZRL_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  ZRL_CUDA_RETURN_IF_ERROR(cudaMemcpy(static_cast<char*>(ptr_) + offset, host, bytes, cudaMemcpyHostToDevice));
  return absl::OkStatus();
}

absl::Status DeviceBuffer::Download(void* host, int64_t bytes, int64_t offset) const {
  if (bytes < 0 || offset < 0 || offset + bytes > bytes_)
    return absl::InvalidArgumentError(absl::StrCat("DeviceBuffer \"", what_, "\": download of ", bytes,
                                                   " bytes at ", offset, " does not fit its ", bytes_, " bytes"));
  if (bytes == 0) return absl::OkStatus();
  ZRL_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  ZRL_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());  // surfaces kernel faults here, with a message
  ZRL_CUDA_RETURN_IF_ERROR(cudaMemcpy(host, static_cast<const char*>(ptr_) + offset, bytes, cudaMemcpyDeviceToHost));
  return absl::OkStatus();
}

absl::Status DeviceBuffer::Zero() {
  if (!ptr_) return absl::OkStatus();
  ZRL_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  ZRL_CUDA_RETURN_IF_ERROR(cudaMemset(ptr_, 0, bytes_));
  return absl::OkStatus();
}

}  // namespace zerorl::model::ops
