// The op layer the model is written against: every numeric kernel the
// transformer needs, forward and backward, over raw float pointers + shapes.
//
// One model code path (model/*.cc) calls these through `Backend`; the CPU
// backend (model/ops/cpu/) implements them with OpenBLAS sgemm and vectorised
// loops over both cores; the CUDA backend (model/ops/cuda/) implements the same
// interface on device memory and is cross-checked against the CPU one op by op.
// The model keeps its weights, activations and KV caches in backend memory
// (Alloc/Free below) and crosses to the host only through Upload/Download, so
// nothing in model/*.cc dereferences an op pointer. All matrices are row-major.
// Backward ops ACCUMULATE (+=) into parameter gradients; into activation
// gradients they accumulate too unless the comment says "writes".
// Pointers are backend memory (host memory for the CPU backend).
#pragma once

#include <cstdint>
#include <new>
#include <string>

namespace zerorl::model::ops {

// Thrown by Backend::Alloc when the backend is out of memory; the message says
// what was being allocated, how much was asked for and how much is free. Model
// entry points catch it and return RESOURCE_EXHAUSTED with that message.
class OutOfMemory : public std::bad_alloc {
 public:
  explicit OutOfMemory(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// Expert routing of one MoE layer (DeepSeek-V3 / Qwen3-MoE).
struct RouteShape {
  int64_t E = 0, K = 0;                    // routed experts, experts per token
  int64_t n_group = 1, topk_group = 1;     // group limit (n_group 1: none)
  bool normalize = false;                  // combine weights renormalised over the K picks
  float scale = 1.f;                       // routed_scaling_factor
};

// How SampleRows draws (mirrors model::SamplerParams).
struct SampleParams {
  bool greedy = false;
  float temperature = 1.f;  // > 0
  float top_p = 1.f;        // (0, 1]
  int64_t top_k = 0;        // 0 = off
};

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
  // ---- memory ----
  // true when backend pointers are host memory (the CPU backend).
  virtual bool host_memory() const = 0;
  // Bytes of memory the backend allocates from: the host's physical RAM (this
  // default, for host backends) or the device's total memory (CUDA). Sizes
  // default budgets such as rollout.kv_cache_mb.
  virtual int64_t memory_bytes() const;
  // `bytes` of backend memory (64-byte aligned, uninitialised); `what` names it
  // in the OutOfMemory error this throws when the backend cannot allocate.
  virtual void* Alloc(int64_t bytes, const char* what) = 0;
  virtual void Free(void* p) = 0;
  // Copies within backend memory / from the host / to the host. Download waits
  // for queued work; Upload may return before the copy lands but the host
  // buffer may be reused as soon as it returns.
  virtual void Copy(void* dst, const void* src, int64_t bytes) = 0;
  virtual void Upload(void* dst, const void* host, int64_t bytes) = 0;
  virtual void Download(void* host, const void* src, int64_t bytes) = 0;
  virtual void Fill(float* x, float value, int64_t n) = 0;
  virtual void FillI32(int32_t* x, int32_t value, int64_t n) = 0;
  // dst[r*ld_dst + c] = (or += when accumulate) src[r*ld_src + c], r < rows, c < cols.
  virtual void Copy2D(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
                      bool accumulate) = 0;
  // Blocks until all queued work has finished (no-op on the CPU).
  virtual void Synchronize() = 0;

  // ---- MoE routing ----
  // scores[N,E] = sigmoid(logits) (sigmoid) or softmax over the row.
  virtual void RouterScores(float* scores, const float* logits, int64_t N, int64_t E, bool sigmoid) = 0;
  // dlogits[N,E] (writes) from dscores[N,E] and the saved scores.
  virtual void RouterScoresBackward(float* dlogits, const float* dscores, const float* scores, int64_t N, int64_t E,
                                    bool sigmoid) = 0;
  // Per token: choice = scores + bias (bias[E] may be nullptr); with n_group > 1
  // only the topk_group groups with the largest top-2 sums stay eligible (the
  // others are set to 0, as HF does); idx[N,K] = the K largest choices (ties:
  // lower index first, in descending order); w[N,K] = scores[idx] (normalised
  // over the K when r.normalize) * r.scale.
  virtual void RouterTopK(int32_t* idx, float* w, const float* scores, const float* bias, int64_t N,
                          const RouteShape& r) = 0;
  // Routing replay: the combine weights of picks made elsewhere. idx[N,K]
  // (distinct ids in [0, E) per token) is input; w[N,K] = scores[idx]
  // (normalised over the K when r.normalize) * r.scale, formed exactly as
  // RouterTopK forms them for its own picks (same order of operations).
  virtual void RouterGateWeights(float* w, const float* scores, const int32_t* idx, int64_t N,
                                 const RouteShape& r) = 0;
  // dscores[N,E] += d(w)/d(scores)^T dw[N,K] (the selection itself has no gradient).
  virtual void RouterTopKBackward(float* dscores, const float* dw, const float* scores, const int32_t* idx, int64_t N,
                                  const RouteShape& r) = 0;
  // Groups the R = N*K routed rows by expert, stably in (token, k) order:
  // row r of expert e's block [offsets[e], offsets[e+1]) is routed slot
  // row_slot[r] = n*K + k, of token row_token[r] = n. offsets[E+1] is HOST
  // memory (the per-expert GEMM sizes); row_token/row_slot are backend memory.
  virtual void MoePermute(int64_t* offsets, int32_t* row_token, int32_t* row_slot, const int32_t* idx, int64_t N,
                          int64_t K, int64_t E) = 0;
  // Backward of out[tok[r]] += w[r] * y[r]: dy[R,D] (writes) = row_w[r] *
  // dout[tok[r]]; dw_slot[row_slot[r]] (writes) = dot(dout[tok[r]], y[r]).
  virtual void MoeCombineBackward(float* dy, float* dw_slot, const float* dout, const float* y, const float* row_w,
                                  const int32_t* row_token, const int32_t* row_slot, int64_t R, int64_t D) = 0;

  // ---- sampling ----
  // One token per row of logits[n,V]: token[n], logprob[n] under the raw policy
  // (temperature 1, no truncation) and sampling_logprob[n] under the truncated,
  // tempered distribution (0 when greedy). u[n] (HOST memory) is the uniform in
  // [0,1) each row draws with (unused when greedy). Outputs are backend memory.
  virtual void SampleRows(int32_t* token, float* logprob, float* sampling_logprob, const float* logits,
                          const double* u, int64_t n, int64_t V, const SampleParams& p) = 0;

  // ---- optimizer ----
  // AdamW on n elements: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
  // w -= lr * ((m/bc1) / (sqrt(v/bc2) + eps) + wd * w).
  virtual void AdamW(float* w, float* m, float* v, const float* g, int64_t n, float lr, float b1, float b2, float eps,
                     float wd, float bc1, float bc2) = 0;
  // sum x[i]^2 in double (synchronises).
  virtual double SumSquares(const float* x, int64_t n) = 0;
  // x[i] *= s.
  virtual void Scale(float* x, float s, int64_t n) = 0;

  // Runs fn(i) for i in [0,n) on the backend's threads (host-side helper for
  // per-expert and per-sequence loops; ops called inside run single-threaded).
  virtual void ParallelFor(int64_t n, void (*fn)(void* ctx, int64_t i), void* ctx) = 0;
  virtual int num_threads() const = 0;
};

// The process-wide CPU backend. threads <= 0: OMP/OPENBLAS default (all cores).
Backend* CpuBackend();
void SetCpuThreads(int threads);

}  // namespace zerorl::model::ops
