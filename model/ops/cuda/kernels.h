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

}  // namespace zerorl::model::ops::cuda
