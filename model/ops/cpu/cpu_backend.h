// The CPU implementation of ops::Backend: OpenBLAS sgemm (single-threaded
// calls, split across OpenMP threads by us so BLAS and our loops never
// oversubscribe the cores) and OpenMP-parallel, vectorised element-wise ops.
#pragma once

#include "model/ops/cpu/host_block_cache.h"
#include "model/ops/ops.h"

namespace zerorl::model::ops::cpu {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  void Gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
            const float* B, int64_t ldb, float beta, float* C, int64_t ldc) override;
  void RmsNormForward(float* out, float* rstd, const float* x, const float* w, int64_t N, int64_t C,
                      int64_t x_stride, int64_t out_stride, float eps) override;
  void RmsNormBackward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                       int64_t N, int64_t C, int64_t x_stride, int64_t dout_stride) override;
  void Rope(float* x, const int32_t* pos, int64_t N, int64_t nh, int64_t stride, int64_t head_stride, int64_t off,
            int64_t rd, float theta, bool interleaved, bool inverse) override;
  void SwiGluForward(float* out, const float* h, int64_t N, int64_t I) override;
  void SwiGluBackward(float* dh, const float* dout, const float* h, int64_t N, int64_t I) override;
  void AttentionForward(const AttnSeq* seqs, int64_t n, const AttnShape& s) override;
  void AttentionBackward(const AttnSeq* seqs, const AttnSeqGrad* grads, int64_t n, const AttnShape& s) override;
  void EmbeddingForward(float* out, const float* table, const int32_t* ids, int64_t N, int64_t C) override;
  void EmbeddingBackward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C) override;
  void LogProbForward(float* logp, float* entropy, const float* logits, const int32_t* target, int64_t N,
                      int64_t V) override;
  void LogProbBackward(float* dlogits, const float* dlogp, const float* dentropy, const float* logits,
                       const int32_t* target, int64_t N, int64_t V) override;
  void Axpy(float* y, const float* x, float a, int64_t n) override;
  void GatherRows(float* out, const float* in, const int32_t* idx, int64_t M, int64_t C) override;
  void ScatterAddRows(float* out, const float* in, const int32_t* idx, const float* scale, int64_t M,
                      int64_t C) override;
  // memory.cc
  bool host_memory() const override { return true; }
  void* Alloc(int64_t bytes, const char* what) override;
  void Free(void* p) override;
  void Copy(void* dst, const void* src, int64_t bytes) override;
  void Upload(void* dst, const void* host, int64_t bytes) override;
  void Download(void* host, const void* src, int64_t bytes) override;
  void Fill(float* x, float value, int64_t n) override;
  void FillI32(int32_t* x, int32_t value, int64_t n) override;
  void Copy2D(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
              bool accumulate) override;
  void Synchronize() override {}
  void AdamW(float* w, float* m, float* v, const float* g, int64_t n, float lr, float b1, float b2, float eps,
             float wd, float bc1, float bc2) override;
  double SumSquares(const float* x, int64_t n) override;
  void Scale(float* x, float s, int64_t n) override;
  // route.cc
  void RouterScores(float* scores, const float* logits, int64_t N, int64_t E, bool sigmoid) override;
  void RouterScoresBackward(float* dlogits, const float* dscores, const float* scores, int64_t N, int64_t E,
                            bool sigmoid) override;
  void RouterTopK(int32_t* idx, float* w, const float* scores, const float* bias, int64_t N,
                  const RouteShape& r) override;
  void RouterGateWeights(float* w, const float* scores, const int32_t* idx, int64_t N,
                         const RouteShape& r) override;
  void RouterTopKBackward(float* dscores, const float* dw, const float* scores, const int32_t* idx, int64_t N,
                          const RouteShape& r) override;
  void MoePermute(int64_t* offsets, int32_t* row_token, int32_t* row_slot, const int32_t* idx, int64_t N, int64_t K,
                  int64_t E) override;
  void MoeCombineBackward(float* dy, float* dw_slot, const float* dout, const float* y, const float* row_w,
                          const int32_t* row_token, const int32_t* row_slot, int64_t R, int64_t D) override;
  // sample.cc
  void SampleRows(int32_t* token, float* logprob, float* sampling_logprob, const float* logits, const double* u,
                  int64_t n, int64_t V, const SampleParams& p) override;
  void ParallelFor(int64_t n, void (*fn)(void* ctx, int64_t i), void* ctx) override;
  int num_threads() const override;

 private:
  // Large blocks are recycled (host_block_cache.h); up to 1/16 of the host's
  // memory stays cached on top of what is live.
  HostBlockCache blocks_{static_cast<size_t>(Backend::memory_bytes() / 16)};
};

}  // namespace zerorl::model::ops::cpu
