// Host-side launchers of the CUDA kernels behind CudaBackend (kernels.cu,
// attention.cu). All pointers are device memory; every launcher enqueues on
// `stream` and returns without synchronising. Shapes and semantics are those
// of the matching ops::Backend method (model/ops/ops.h).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "model/ops/ops.h"

namespace zerorl::model::ops::cuda {

void LaunchRmsNormForward(float* out, float* rstd, const float* x, const float* w, int64_t N, int64_t C,
                          int64_t x_stride, int64_t out_stride, float eps, cudaStream_t stream);
void LaunchRmsNormBackward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                           const float* rstd, int64_t N, int64_t C, int64_t x_stride, int64_t dout_stride,
                           cudaStream_t stream);
void LaunchRope(float* x, const int32_t* pos, int64_t N, int64_t nh, int64_t stride, int64_t head_stride,
                int64_t off, int64_t rd, float theta, bool interleaved, bool inverse, cudaStream_t stream);
void LaunchSwiGluForward(float* out, const float* h, int64_t N, int64_t I, cudaStream_t stream);
void LaunchSwiGluBackward(float* dh, const float* dout, const float* h, int64_t N, int64_t I, cudaStream_t stream);
// Embedding forward and GatherRows are the same gather: out[m,:] = in[idx[m],:].
void LaunchGatherRows(float* out, const float* in, const int32_t* idx, int64_t M, int64_t C, cudaStream_t stream);
// out[idx[m],:] += scale[m] * in[m,:] (scale may be nullptr), atomicAdd.
void LaunchScatterAddRows(float* out, const float* in, const int32_t* idx, const float* scale, int64_t M, int64_t C,
                          cudaStream_t stream);
void LaunchLogProbForward(float* logp, float* entropy, const float* logits, const int32_t* target, int64_t N,
                          int64_t V, cudaStream_t stream);
void LaunchLogProbBackward(float* dlogits, const float* dlogp, const float* dentropy, const float* logits,
                           const int32_t* target, int64_t N, int64_t V, cudaStream_t stream);
void LaunchAxpy(float* y, const float* x, float a, int64_t n, cudaStream_t stream);

// Attention over `n` sequences whose descriptors `seqs_dev` are already in
// device memory. max_nq = max n_q over the sequences (sizes the grid).
void LaunchAttentionForward(const AttnSeq* seqs_dev, int64_t n, int64_t max_nq, const AttnShape& s,
                            cudaStream_t stream);
void LaunchAttentionBackward(const AttnSeq* seqs_dev, const AttnSeqGrad* grads_dev, int64_t n, int64_t max_nq,
                             const AttnShape& s, cudaStream_t stream);

// One AdamW update of n elements (see adamw.h for the formula).
void LaunchAdamW(float* w, float* m, float* v, const float* g, int64_t n, float lr, float beta1, float beta2,
                 float eps, float weight_decay, float bc1, float bc2, cudaStream_t stream);
// out[0] += sum x[i]^2 (fp32 partials, atomicAdd per block).
void LaunchSumSquares(float* out, const float* x, int64_t n, cudaStream_t stream);
void LaunchScale(float* x, float s, int64_t n, cudaStream_t stream);

// ---- memory (memory.cu) ----
void LaunchFill(float* x, float value, int64_t n, cudaStream_t stream);
void LaunchFillI32(int32_t* x, int32_t value, int64_t n, cudaStream_t stream);
// dst[r*ld_dst + c] += src[r*ld_src + c] (the accumulating Copy2D).
void LaunchAddCopy2D(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
                     cudaStream_t stream);
// part[0 .. SumSquaresBlocks(n)) = per-block sums of x[i]^2 in double (the
// caller downloads and adds them in order: deterministic).
int SumSquaresBlocks(int64_t n);
void LaunchSumSquaresPartials(double* part, const float* x, int64_t n, cudaStream_t stream);

// ---- MoE routing (route.cu) ----
void LaunchRouterScores(float* scores, const float* logits, int64_t N, int64_t E, bool sigmoid, cudaStream_t stream);
void LaunchRouterScoresBackward(float* dlogits, const float* dscores, const float* scores, int64_t N, int64_t E,
                                bool sigmoid, cudaStream_t stream);
void LaunchRouterTopK(int32_t* idx, float* w, const float* scores, const float* bias, int64_t N, const RouteShape& r,
                      cudaStream_t stream);
void LaunchRouterTopKBackward(float* dscores, const float* dw, const float* scores, const int32_t* idx, int64_t N,
                              const RouteShape& r, cudaStream_t stream);
// Routing replay: combine weights of given picks idx[N,K] (one thread per token).
void LaunchRouterGateWeights(float* w, const float* scores, const int32_t* idx, int64_t N, const RouteShape& r,
                             cudaStream_t stream);
// MoePermute in two launches: counts[E] (int32, device) = rows per expert;
// then the stable placement of rows (reads counts for each expert's base).
void LaunchExpertCount(int32_t* counts, const int32_t* idx, int64_t R, int64_t E, cudaStream_t stream);
void LaunchExpertPlace(int32_t* row_token, int32_t* row_slot, const int32_t* counts, const int32_t* idx, int64_t R,
                       int64_t K, int64_t E, cudaStream_t stream);
void LaunchMoeCombineBackward(float* dy, float* dw_slot, const float* dout, const float* y, const float* row_w,
                              const int32_t* row_token, const int32_t* row_slot, int64_t R, int64_t D,
                              cudaStream_t stream);

// ---- sampling (sample.cu) ----
// Device scratch of the top-k / top-p path (sizes for n rows of V logits):
// row_mx, row_lse [n] doubles; keys_in/keys_out [n*V] floats; vals_in/vals_out
// [n*V] int32; offsets [n+1] int32; temp: SampleSortTempBytes(n, V) bytes.
struct SampleScratch {
  double* row_mx = nullptr;
  double* row_lse = nullptr;
  float* keys_in = nullptr;
  float* keys_out = nullptr;
  int32_t* vals_in = nullptr;
  int32_t* vals_out = nullptr;
  int32_t* offsets = nullptr;
  void* temp = nullptr;
  size_t temp_bytes = 0;
};
// True when the draw needs the sorted path (top-k < V or top-p < 1, not greedy).
bool SampleNeedsSort(int64_t V, const SampleParams& p);
size_t SampleSortTempBytes(int64_t n, int64_t V);
// u_dev: [n] uniforms in device memory (unused when greedy, may be nullptr);
// the scratch is used only when SampleNeedsSort. logprob / slogp may be nullptr.
void LaunchSampleRows(int32_t* token, float* logprob, float* slogp, const float* logits, const double* u_dev,
                      int64_t n, int64_t V, const SampleParams& p, const SampleScratch& s, cudaStream_t stream);

}  // namespace zerorl::model::ops::cuda
