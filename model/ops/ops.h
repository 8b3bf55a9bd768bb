// The op layer the model is written against: every numeric kernel the
// transformer needs, forward and backward, over raw float pointers + shapes.
//
// One model code path (model/*.cc) calls these through `Backend`; the CPU
// backend (model/ops/cpu/) implements them with OpenBLAS sgemm and vectorised
// loops over both cores; a CUDA backend implements the same interface later and
// is cross-checked against the CPU one op by op. All matrices are row-major.
// Backward ops ACCUMULATE (+=) into parameter gradients; into activation
// gradients they accumulate too unless the comment says "writes".
// Pointers are backend memory (host memory for the CPU backend).
#pragma once

#include <cstdint>

namespace zerorl::model::ops {

// One sequence's slice of a (possibly batched) attention call. Queries are the
// n_q tokens at positions q_pos0 .. q_pos0+n_q-1; keys/values are positions
// 0 .. n_kv-1 of the same sequence (n_kv >= q_pos0 + n_q); causal mask.
struct AttnSeq {
  const float* q = nullptr;  // [n_q, H, dk]   row stride q_stride
  const float* k = nullptr;  // [n_kv, Hkv, dk] row stride k_stride
  const float* v = nullptr;  // [n_kv, Hkv, dv] row stride v_stride
  float* out = nullptr;      // [n_q, H, dv]   row stride out_stride
  float* probs = nullptr;    // [H, n_q, n_kv] saved softmax (training), or nullptr
  int64_t n_q = 0, n_kv = 0, q_pos0 = 0;
};
struct AttnShape {
  int64_t H = 0, Hkv = 0, dk = 0, dv = 0;
  int64_t q_stride = 0, k_stride = 0, v_stride = 0, out_stride = 0;  // floats per token row
  float scale = 1.f;
};
// Gradients of one sequence (same strides as AttnSeq's tensors).
struct AttnSeqGrad {
  const float* dout = nullptr;  // [n_q, H, dv]
  float* dq = nullptr;          // [n_q, H, dk]    writes
  float* dk = nullptr;          // [n_kv, Hkv, dk] accumulates
  float* dv = nullptr;          // [n_kv, Hkv, dv] accumulates
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // C[M,N] = alpha * op(A) @ op(B) + beta * C. op(A) is [M,K], op(B) is [K,N].
  virtual void Gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc) = 0;
  // Linear layer, y = x @ W^T: out[N,O] (= or += when accumulate) x[N,I] W[O,I].
  void LinearForward(float* out, const float* x, const float* w, int64_t N, int64_t I, int64_t O,
                     bool accumulate = false);
  // dx[N,I] += dout[N,O] @ W ; dw[O,I] += dout^T @ x. Either may be nullptr.
  void LinearBackward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                      int64_t N, int64_t I, int64_t O);

  // out[N,C] = x * rstd * w ; rstd[N] = 1/sqrt(mean(x^2)+eps). x rows have stride x_stride.
  virtual void RmsNormForward(float* out, float* rstd, const float* x, const float* w, int64_t N,
                              int64_t C, int64_t x_stride, int64_t out_stride, float eps) = 0;
  // dx[N,C] += ..., dw[C] += ... (dw may be nullptr).
  virtual void RmsNormBackward(float* dx, float* dw, const float* dout, const float* x,
                               const float* w, const float* rstd, int64_t N, int64_t C,
                               int64_t x_stride, int64_t dout_stride) = 0;

  // Rotary embedding in place on x[N, nh, ...]: for token n, head h, the dims
  // [off, off+rd) of row x + n*stride + h*head_stride are rotated by angle
  // pos[n] * theta^(-2i/rd). interleaved: pairs (2i, 2i+1) (DeepSeek-V3);
  // otherwise pairs (i, i+rd/2) (Qwen3, rotate_half). inverse=true rotates by
  // the negative angle, which is the backward of the forward.
  virtual void Rope(float* x, const int32_t* pos, int64_t N, int64_t nh, int64_t stride,
                    int64_t head_stride, int64_t off, int64_t rd, float theta, bool interleaved,
                    bool inverse) = 0;

  // SwiGLU on a fused gate|up activation: h[N, 2I] = [gate | up];
  // out[N,I] = silu(gate) * up.
  virtual void SwiGluForward(float* out, const float* h, int64_t N, int64_t I) = 0;
  // dh[N,2I] (writes) from dout[N,I].
  virtual void SwiGluBackward(float* dh, const float* dout, const float* h, int64_t N, int64_t I) = 0;

  // Causal scaled-dot-product attention over a batch of sequences.
  virtual void AttentionForward(const AttnSeq* seqs, int64_t n, const AttnShape& s) = 0;
  // Needs the probs saved by the forward.
  virtual void AttentionBackward(const AttnSeq* seqs, const AttnSeqGrad* grads, int64_t n,
                                 const AttnShape& s) = 0;

  // out[N,C] = table[ids[n]].
  virtual void EmbeddingForward(float* out, const float* table, const int32_t* ids, int64_t N,
                                int64_t C) = 0;
  // dtable[ids[n]] += dout[n].
  virtual void EmbeddingBackward(float* dtable, const float* dout, const int32_t* ids, int64_t N,
                                 int64_t C) = 0;

  // Per row of logits[N,V]: logp[n] = log_softmax(logits)[target[n]] and, when
  // entropy != nullptr, entropy[n] = -sum p log p. Rows with target < 0 get 0.
  virtual void LogProbForward(float* logp, float* entropy, const float* logits,
                              const int32_t* target, int64_t N, int64_t V) = 0;
  // dlogits[N,V] (writes) from dlogp[N] and dentropy[N] (either may be nullptr).
  virtual void LogProbBackward(float* dlogits, const float* dlogp, const float* dentropy,
                               const float* logits, const int32_t* target, int64_t N, int64_t V) = 0;

  // y[n] += a * x[n]
  virtual void Axpy(float* y, const float* x, float a, int64_t n) = 0;
  // out[m, :] = in[idx[m], :]   (in rows of C floats)
  virtual void GatherRows(float* out, const float* in, const int32_t* idx, int64_t M, int64_t C) = 0;
  // out[idx[m], :] += scale[m] * in[m, :]  (scale may be nullptr: 1). idx may repeat.
  virtual void ScatterAddRows(float* out, const float* in, const int32_t* idx, const float* scale,
                              int64_t M, int64_t C) = 0;
  // Runs fn(i) for i in [0,n) on the backend's threads (host-side helper for
  // per-expert and per-sequence loops; ops called inside run single-threaded).
  virtual void ParallelFor(int64_t n, void (*fn)(void* ctx, int64_t i), void* ctx) = 0;
  virtual int num_threads() const = 0;
};

// The process-wide CPU backend. threads <= 0: OMP/OPENBLAS default (all cores).
Backend* CpuBackend();
void SetCpuThreads(int threads);

}  // namespace zerorl::model::ops
