// Warp and block reductions shared by the CUDA kernels (sum and max over
// float). Block reductions need blockDim.x a multiple of 32, at most 1024,
// and every thread of the block to call them.
#pragma once

#include <cuda_runtime.h>

namespace zerorl::model::ops::cuda {

__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Returns the block-wide sum (or max) to every thread.
template <bool kMax>
__device__ __forceinline__ float BlockReduce(float v) {
  __shared__ float part[32];
  __shared__ float result;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = kMax ? WarpMax(v) : WarpSum(v);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int nw = (blockDim.x + 31) >> 5;
    float x = lane < nw ? part[lane] : (kMax ? -INFINITY : 0.f);
    x = kMax ? WarpMax(x) : WarpSum(x);
    if (lane == 0) result = x;
  }
  __syncthreads();
  const float r = result;
  __syncthreads();  // `part`/`result` may be reused by the next call
  return r;
}
__device__ __forceinline__ float BlockSum(float v) { return BlockReduce<false>(v); }
__device__ __forceinline__ float BlockMax(float v) { return BlockReduce<true>(v); }

// Block-wide sum in double, to every thread (same rules as BlockSum).
__device__ __forceinline__ double WarpSumDouble(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double BlockSumDouble(double v) {
  __shared__ double part[32];
  __shared__ double result;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = WarpSumDouble(v);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int nw = (blockDim.x + 31) >> 5;
    double x = lane < nw ? part[lane] : 0.0;
    x = WarpSumDouble(x);
    if (lane == 0) result = x;
  }
  __syncthreads();
  const double r = result;
  __syncthreads();
  return r;
}

inline unsigned Blocks(long long n, int threads) {
  long long b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 2147483647LL ? 2147483647LL : b));
}

// Blocks for a grid-stride loop over n elements: at most 65536 blocks (one
// pass of 65536 x 256 threads covers 16M elements; the loop does the rest).
inline unsigned GridStrideBlocks(long long n, int threads) {
  const unsigned b = Blocks(n, threads);
  return b > 65536u ? 65536u : b;
}

}  // namespace zerorl::model::ops::cuda
