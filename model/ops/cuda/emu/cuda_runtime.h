// The CUDA runtime API surface the CUDA backend uses (model/ops/cuda/*.cc),
// emulated on host memory for the emulated-backend tests (see shim.h): one
// device, "device" memory is aligned host memory (at most kEmuDeviceBytes in
// use, so out-of-memory paths are real), copies are memcpy, work runs when it
// is launched (so synchronisation is a no-op). Found before the toolkit's
// header only by the emulation targets (their include path starts here).
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "shim.h"

constexpr int cudaErrorMemoryAllocation = 2;
constexpr int cudaErrorInvalidValue = 1;
constexpr int cudaErrorInsufficientDriver = 35;
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
struct cudaDeviceProp {
  char name[256];
  int major = 0, minor = 0, multiProcessorCount = 0;
  size_t totalGlobalMem = 0;
};
inline constexpr size_t kEmuDeviceBytes = size_t{16} << 30;
inline size_t g_emu_used = 0;

static inline const char* cudaGetErrorName(cudaError_t e) {
  return e == 0 ? "cudaSuccess" : e == cudaErrorMemoryAllocation ? "cudaErrorMemoryAllocation" : "cudaErrorUnknown";
}
static inline cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
static inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidValue; }
static inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
static inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::strcpy(p->name, "Emulated CUDA device (CPU)");
  p->major = 9, p->minor = 0, p->multiProcessorCount = 1, p->totalGlobalMem = kEmuDeviceBytes;
  return cudaSuccess;
}
static inline cudaError_t cudaMemGetInfo(size_t* f, size_t* t) {
  *t = kEmuDeviceBytes;
  *f = kEmuDeviceBytes - g_emu_used;
  return cudaSuccess;
}
static inline cudaError_t cudaMalloc(void** p, size_t n) {
  const size_t r = (n + 255) / 256 * 256 + 256;  // + a header holding the size
  if (n > kEmuDeviceBytes - g_emu_used) return cudaErrorMemoryAllocation;
  char* b = static_cast<char*>(std::aligned_alloc(256, r));
  if (!b) return cudaErrorMemoryAllocation;
  std::memcpy(b, &r, sizeof r);
  g_emu_used += r;
  *p = b + 256;
  return cudaSuccess;
}
template <typename T>
static inline cudaError_t cudaMalloc(T** p, size_t n) {
  return cudaMalloc(reinterpret_cast<void**>(p), n);
}
static inline cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  char* b = static_cast<char*>(p) - 256;
  size_t r;
  std::memcpy(&r, b, sizeof r);
  g_emu_used -= r;
  std::free(b);
  return cudaSuccess;
}
static inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
  if (n) std::memmove(d, s, n);
  return cudaSuccess;
}
static inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k, cudaStream_t = nullptr) {
  return cudaMemcpy(d, s, n, k);
}
static inline cudaError_t cudaMemcpy2DAsync(void* d, size_t dp, const void* s, size_t sp, size_t w, size_t h,
                                            cudaMemcpyKind, cudaStream_t = nullptr) {
  if (dp < w || sp < w) return cudaErrorInvalidValue;
  for (size_t r = 0; r < h; ++r) std::memmove(static_cast<char*>(d) + r * dp, static_cast<const char*>(s) + r * sp, w);
  return cudaSuccess;
}
static inline cudaError_t cudaMemset(void* p, int v, size_t n) {
  std::memset(p, v, n);
  return cudaSuccess;
}
static inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t = nullptr) { return cudaMemset(p, v, n); }
static inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
static inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
