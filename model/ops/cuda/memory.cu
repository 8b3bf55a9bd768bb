// CUDA kernels behind the memory ops of CudaBackend that cudaMemset /
// cudaMemcpy2D cannot do: fills with a non-zero value (float, int32) and the
// accumulating 2-D copy (dst += src over a strided block), plus the per-block
// double partial sums of SumSquares (summed on the host in a fixed order, so
// the result does not depend on atomic ordering).
#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/kernels.h"
#include "model/ops/cuda/reduce.cuh"

namespace zerorl::model::ops::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void FillKernel(float* x, float v, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = v;
}

__global__ void FillI32Kernel(int32_t* x, int32_t v, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = v;
}

// dst[r*ld_dst + c] += src[r*ld_src + c] over rows x cols, one thread per element.
__global__ void AddCopy2DKernel(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows,
                                int64_t cols) {
  const int64_t total = rows * cols;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = t / cols, c = t % cols;
    dst[r * ld_dst + c] += src[r * ld_src + c];
  }
}

// part[b] = sum of x[i]^2 over block b's grid-stride share, in double.
__global__ void SumSquaresPartialKernel(double* part, const float* x, int64_t n) {
  double acc = 0.0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double v = x[i];
    acc += v * v;
  }
  acc = BlockSumDouble(acc);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

}  // namespace

void LaunchFill(float* x, float value, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  FillKernel<<<GridStrideBlocks(n, kThreads), kThreads, 0, stream>>>(x, value, n);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchFillI32(int32_t* x, int32_t value, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  FillI32Kernel<<<GridStrideBlocks(n, kThreads), kThreads, 0, stream>>>(x, value, n);
  ZRL_CUDA_CHECK_LAUNCH();
}

void LaunchAddCopy2D(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
                     cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  AddCopy2DKernel<<<GridStrideBlocks(rows * cols, kThreads), kThreads, 0, stream>>>(dst, ld_dst, src, ld_src, rows,
                                                                                    cols);
  ZRL_CUDA_CHECK_LAUNCH();
}

int SumSquaresBlocks(int64_t n) {
  const unsigned b = Blocks(n, kThreads);
  return static_cast<int>(b > 1024u ? 1024u : b);
}

void LaunchSumSquaresPartials(double* part, const float* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  SumSquaresPartialKernel<<<SumSquaresBlocks(n), kThreads, 0, stream>>>(part, x, n);
  ZRL_CUDA_CHECK_LAUNCH();
}

}  // namespace zerorl::model::ops::cuda
