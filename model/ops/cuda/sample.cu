// CUDA kernels of SampleRows (semantics: ops.h; CPU reference: the CPU
// backend's SampleRows, formerly model/sampler.cc). One block per row of
// logits[n, V] (V up to ~152k):
//  - SampleRowKernel: argmax (lowest index on ties), the raw log-sum-exp in
//    double; then greedy (done), or untruncated sampling (softmax(logits/T),
//    the first index in vocabulary order whose cumulative probability exceeds
//    u), or, for top-k / top-p, it writes the row's (logit, index) pairs for a
//    stable descending segmented radix sort (cub), -0.0 canonicalised to +0.0
//    so equal logits tie exactly as on the CPU (ties keep index order);
//  - SampleSortedKernel: on the sorted row, softmax(logits/T) over the first
//    top_k, the smallest prefix whose cumulative probability reaches top_p
//    (renormalised), and the first position whose cumulative probability
//    exceeds u.
// Cumulative sums are "first crossing" searches: each thread sums a contiguous
// segment, a block scan gives segment prefixes, and the first thread whose
// prefix crosses walks its segment. Probabilities are in double like the CPU's.
#include <cub/device/device_segmented_radix_sort.cuh>

#include <climits>

#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/kernels.h"
#include "model/ops/cuda/reduce.cuh"

namespace zerorl::model::ops::cuda {
namespace {

constexpr int kSampleThreads = 512;  // a multiple of 32

__device__ __forceinline__ bool Beats(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

// Block-wide argmax of (v, i), ties to the lower index; the result goes to every thread.
__device__ void BlockArgMax(float& v, int& i) {
  __shared__ float pv[32];
  __shared__ int pi[32];
  __shared__ float rv;
  __shared__ int ri;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (Beats(ov, oi, v, i)) v = ov, i = oi;
  }
  if (lane == 0) pv[warp] = v, pi[warp] = i;
  __syncthreads();
  if (warp == 0) {
    const int nw = (blockDim.x + 31) >> 5;
    float x = lane < nw ? pv[lane] : -INFINITY;
    int xi = lane < nw ? pi[lane] : INT_MAX;
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, x, o);
      const int oi = __shfl_xor_sync(0xffffffffu, xi, o);
      if (Beats(ov, oi, x, xi)) x = ov, xi = oi;
    }
    if (lane == 0) rv = x, ri = xi;
  }
  __syncthreads();
  v = rv;
  i = ri;
  __syncthreads();
}

// Inclusive prefix sum over the block's threads (in thread order).
__device__ double BlockInclusiveScan(double v) {
  __shared__ double wsum[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 1; o < 32; o <<= 1) {
    const double y = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += y;
  }
  if (lane == 31) wsum[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int nw = (blockDim.x + 31) >> 5;
    double x = lane < nw ? wsum[lane] : 0.0;
    for (int o = 1; o < 32; o <<= 1) {
      const double y = __shfl_up_sync(0xffffffffu, x, o);
      if (lane >= o) x += y;
    }
    if (lane < nw) wsum[lane] = x;
  }
  __syncthreads();
  if (warp > 0) v += wsum[warp - 1];
  __syncthreads();
  return v;
}

// The first j in [0, L) whose inclusive prefix sum of f(0..j) (f >= 0) is
// > target (strict) or >= target; -1 when none. *cum gets that prefix (the
// total when none). Every thread of the block must call it; same result in all.
template <typename F>
__device__ int64_t FirstCrossing(const F& f, int64_t L, double target, bool strict, double* cum) {
  __shared__ double incl_sh[kSampleThreads];
  __shared__ int first_t;
  __shared__ long long pick_sh;
  __shared__ double cum_sh;
  const int t = threadIdx.x, T = blockDim.x;
  const int64_t seg = (L + T - 1) / T;
  const int64_t b = min(L, t * seg), e = min(L, b + seg);
  double local = 0.0;
  for (int64_t j = b; j < e; ++j) local += f(j);
  const double incl = BlockInclusiveScan(local);
  incl_sh[t] = incl;
  if (t == 0) first_t = T;
  __syncthreads();
  auto crossed = [&](double c) { return strict ? c > target : c >= target; };
  if (b < e && crossed(incl)) atomicMin(&first_t, t);
  __syncthreads();
  const int ft = first_t;
  if (t == ft) {  // walk the segment from its prefix
    double c = t > 0 ? incl_sh[t - 1] : 0.0;
    long long pick = e - 1;
    double pc = incl;
    for (int64_t j = b; j < e; ++j) {
      c += f(j);
      if (crossed(c)) {
        pick = j;
        pc = c;
        break;
      }
    }
    pick_sh = pick;
    cum_sh = pc;
  }
  __syncthreads();
  const int64_t r = ft < T ? pick_sh : -1;
  *cum = ft < T ? cum_sh : incl_sh[T - 1];
  __syncthreads();  // the shared slots are reused by the next call
  return r;
}

enum Mode : int { kGreedy = 0, kSampleAll = 1, kPrepareSort = 2 };

__global__ void SampleRowKernel(int32_t* token, float* logprob, float* slogp, double* row_mx, double* row_lse,
                                float* keys, int32_t* vals, const float* logits, const double* u, int64_t V,
                                float temperature, int mode) {
  const int64_t n = blockIdx.x;
  const float* z = logits + n * V;
  float bv = -INFINITY;
  int bi = INT_MAX;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    const float x = z[v];
    if (Beats(x, static_cast<int>(v), bv, bi)) bv = x, bi = static_cast<int>(v);
  }
  BlockArgMax(bv, bi);
  if (bi == INT_MAX) bi = 0;  // every logit NaN
  const double mx = bv;
  double s = 0.0;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) s += exp(static_cast<double>(z[v]) - mx);
  const double lse = mx + log(BlockSumDouble(s));
  if (mode == kGreedy) {
    if (threadIdx.x == 0) {
      token[n] = bi;
      if (logprob) logprob[n] = static_cast<float>(static_cast<double>(z[bi]) - lse);
      if (slogp) slogp[n] = 0.f;
    }
    return;
  }
  if (mode == kPrepareSort) {
    if (threadIdx.x == 0) row_mx[n] = mx, row_lse[n] = lse;
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      const float x = z[v];
      keys[n * V + v] = x == 0.f ? 0.f : x;  // -0.0 and +0.0 must tie
      vals[n * V + v] = static_cast<int32_t>(v);
    }
    return;
  }
  // Untruncated: softmax(z / T) in vocabulary order.
  const double inv_t = 1.0 / static_cast<double>(temperature);
  double zs = 0.0;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) zs += exp((static_cast<double>(z[v]) - mx) * inv_t);
  const double Z = BlockSumDouble(zs);
  auto p = [&](int64_t v) { return exp((static_cast<double>(z[v]) - mx) * inv_t) / Z; };
  double cum = 0.0;
  int64_t pick = FirstCrossing(p, V, u[n], /*strict=*/true, &cum);
  if (pick < 0) pick = V - 1;
  if (threadIdx.x == 0) {
    token[n] = static_cast<int32_t>(pick);
    if (logprob) logprob[n] = static_cast<float>(static_cast<double>(z[pick]) - lse);
    if (slogp) slogp[n] = static_cast<float>(log(p(pick)));
  }
}

__global__ void SampleSortedKernel(int32_t* token, float* logprob, float* slogp, const double* row_mx,
                                   const double* row_lse, const float* skeys, const int32_t* svals,
                                   const float* logits, const double* u, int64_t V, float temperature, float top_p,
                                   int64_t top_k) {
  const int64_t n = blockIdx.x;
  const float* sk = skeys + n * V;
  const int32_t* sv = svals + n * V;
  const double mx = row_mx[n], lse = row_lse[n], inv_t = 1.0 / static_cast<double>(temperature);
  const int64_t Lk = top_k > 0 && top_k < V ? top_k : V;
  auto e = [&](int64_t j) { return exp((static_cast<double>(sk[j]) - mx) * inv_t); };
  double zs = 0.0;
  for (int64_t j = threadIdx.x; j < Lk; j += blockDim.x) zs += e(j);
  const double Z = BlockSumDouble(zs);
  int64_t keep = Lk;
  double norm = 1.0;  // the kept mass the probabilities are renormalised by (top-p)
  bool renorm = false;
  if (top_p < 1.f) {
    double c = 0.0;
    const int64_t j = FirstCrossing([&](int64_t i) { return e(i) / Z; }, Lk, static_cast<double>(top_p),
                                    /*strict=*/false, &c);
    keep = j >= 0 ? j + 1 : Lk;
    norm = c;
    renorm = true;
  }
  auto q = [&](int64_t j) {
    const double pj = e(j) / Z;
    return renorm ? pj / norm : pj;
  };
  double cum = 0.0;
  int64_t pick = FirstCrossing(q, keep, u[n], /*strict=*/true, &cum);
  if (pick < 0) pick = keep - 1;
  if (threadIdx.x == 0) {
    const int32_t tok = sv[pick];
    token[n] = tok;
    if (logprob) logprob[n] = static_cast<float>(static_cast<double>(logits[n * V + tok]) - lse);
    if (slogp) slogp[n] = static_cast<float>(log(q(pick)));
  }
}

__global__ void SegmentOffsetsKernel(int32_t* off, int64_t n, int64_t V) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i <= n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    off[i] = static_cast<int32_t>(i * V);
}

}  // namespace

bool SampleNeedsSort(int64_t V, const SampleParams& p) {
  return !p.greedy && ((p.top_k > 0 && p.top_k < V) || p.top_p < 1.f);
}

size_t SampleSortTempBytes(int64_t n, int64_t V) {
  size_t bytes = 0;
  ZRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      nullptr, bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), static_cast<int>(n * V),
      static_cast<int>(n), static_cast<const int32_t*>(nullptr), static_cast<const int32_t*>(nullptr) + 1, 0, 32,
      cudaStream_t{}));
  return bytes;
}

void LaunchSampleRows(int32_t* token, float* logprob, float* slogp, const float* logits, const double* u_dev,
                      int64_t n, int64_t V, const SampleParams& p, const SampleScratch& s, cudaStream_t stream) {
  if (n <= 0 || V <= 0) return;
  if (V > INT_MAX / 2 || (SampleNeedsSort(V, p) && n * V > INT_MAX)) {
    std::fprintf(stderr, "[CUDA ERROR] SampleRows: %lld rows x %lld logits exceed the int32 index range\n",
                 static_cast<long long>(n), static_cast<long long>(V));
    std::abort();
  }
  const unsigned rows = static_cast<unsigned>(n);
  if (p.greedy) {
    SampleRowKernel<<<rows, kSampleThreads, 0, stream>>>(token, logprob, slogp, nullptr, nullptr, nullptr, nullptr,
                                                         logits, nullptr, V, 1.f, kGreedy);
    ZRL_CUDA_CHECK_LAUNCH();
    return;
  }
  if (!SampleNeedsSort(V, p)) {
    SampleRowKernel<<<rows, kSampleThreads, 0, stream>>>(token, logprob, slogp, nullptr, nullptr, nullptr, nullptr,
                                                         logits, u_dev, V, p.temperature, kSampleAll);
    ZRL_CUDA_CHECK_LAUNCH();
    return;
  }
  SampleRowKernel<<<rows, kSampleThreads, 0, stream>>>(token, logprob, slogp, s.row_mx, s.row_lse, s.keys_in,
                                                       s.vals_in, logits, u_dev, V, p.temperature, kPrepareSort);
  ZRL_CUDA_CHECK_LAUNCH();
  SegmentOffsetsKernel<<<Blocks(n + 1, 256), 256, 0, stream>>>(s.offsets, n, V);
  ZRL_CUDA_CHECK_LAUNCH();
  size_t bytes = s.temp_bytes;
  ZRL_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      s.temp, bytes, s.keys_in, s.keys_out, s.vals_in, s.vals_out, static_cast<int>(n * V), static_cast<int>(n),
      s.offsets, s.offsets + 1, 0, 32, stream));
  SampleSortedKernel<<<rows, kSampleThreads, 0, stream>>>(token, logprob, slogp, s.row_mx, s.row_lse, s.keys_out,
                                                          s.vals_out, logits, u_dev, V, p.temperature, p.top_p,
                                                          p.top_k);
  ZRL_CUDA_CHECK_LAUNCH();
}

}  // namespace zerorl::model::ops::cuda
