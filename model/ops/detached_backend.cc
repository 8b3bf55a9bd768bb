// DetachedBackend (see detached_backend.h): tag on Alloc, untag in every op,
// forward to the CPU backend.
#include "model/ops/detached_backend.h"

#include <vector>

namespace zerorl::model::ops {
namespace {

constexpr uintptr_t kTag = uintptr_t{1} << 62;

template <typename T>
T* U(T* p) {  // untag
  return p ? reinterpret_cast<T*>(reinterpret_cast<uintptr_t>(p) ^ kTag) : nullptr;
}

class Detached final : public Backend, public DetachedBackendHandle {
 public:
  Backend* backend() override { return this; }
  TransferStats stats() const override { return {up_.load(), down_.load()}; }
  void ResetStats() override {
    up_ = 0;
    down_ = 0;
  }
  int64_t live_allocations() const override { return live_.load(); }

  const char* name() const override { return "detached"; }
  bool host_memory() const override { return false; }
  void* Alloc(int64_t bytes, const char* what) override {
    void* p = cpu_->Alloc(bytes, what);  // throws OutOfMemory
    ++live_;
    return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p) ^ kTag);
  }
  void Free(void* p) override {
    if (!p) return;
    --live_;
    cpu_->Free(U(p));
  }
  void Copy(void* dst, const void* src, int64_t bytes) override { cpu_->Copy(U(dst), U(src), bytes); }
  void Upload(void* dst, const void* host, int64_t bytes) override {
    up_ += bytes;
    cpu_->Upload(U(dst), host, bytes);
  }
  void Download(void* host, const void* src, int64_t bytes) override {
    down_ += bytes;
    cpu_->Download(host, U(src), bytes);
  }
  void Fill(float* x, float value, int64_t n) override { cpu_->Fill(U(x), value, n); }
  void FillI32(int32_t* x, int32_t value, int64_t n) override { cpu_->FillI32(U(x), value, n); }
  void Copy2D(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
              bool accumulate) override {
    cpu_->Copy2D(U(dst), ld_dst, U(src), ld_src, rows, cols, accumulate);
  }
  void Synchronize() override {}

  void Gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
            const float* B, int64_t ldb, float beta, float* C, int64_t ldc) override {
    cpu_->Gemm(ta, tb, M, N, K, alpha, U(A), lda, U(B), ldb, beta, U(C), ldc);
  }
  void RmsNormForward(float* out, float* rstd, const float* x, const float* w, int64_t N, int64_t C,
                      int64_t x_stride, int64_t out_stride, float eps) override {
    cpu_->RmsNormForward(U(out), U(rstd), U(x), U(w), N, C, x_stride, out_stride, eps);
  }
  void RmsNormBackward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                       int64_t N, int64_t C, int64_t x_stride, int64_t dout_stride) override {
    cpu_->RmsNormBackward(U(dx), U(dw), U(dout), U(x), U(w), U(rstd), N, C, x_stride, dout_stride);
  }
  void Rope(float* x, const int32_t* pos, int64_t N, int64_t nh, int64_t stride, int64_t head_stride, int64_t off,
            int64_t rd, float theta, bool interleaved, bool inverse) override {
    cpu_->Rope(U(x), U(pos), N, nh, stride, head_stride, off, rd, theta, interleaved, inverse);
  }
  void SwiGluForward(float* out, const float* h, int64_t N, int64_t I) override {
    cpu_->SwiGluForward(U(out), U(h), N, I);
  }
  void SwiGluBackward(float* dh, const float* dout, const float* h, int64_t N, int64_t I) override {
    cpu_->SwiGluBackward(U(dh), U(dout), U(h), N, I);
  }
  void AttentionForward(const AttnSeq* seqs, int64_t n, const AttnShape& s) override {
    std::vector<AttnSeq> q = UntagSeqs(seqs, n);
    cpu_->AttentionForward(q.data(), n, s);
  }
  void AttentionBackward(const AttnSeq* seqs, const AttnSeqGrad* grads, int64_t n, const AttnShape& s) override {
    std::vector<AttnSeq> q = UntagSeqs(seqs, n);
    std::vector<AttnSeqGrad> g(grads, grads + n);
    for (auto& x : g) {
      x.dout = U(x.dout);
      x.dq = U(x.dq);
      x.dk = U(x.dk);
      x.dv = U(x.dv);
    }
    cpu_->AttentionBackward(q.data(), g.data(), n, s);
  }
  void EmbeddingForward(float* out, const float* table, const int32_t* ids, int64_t N, int64_t C) override {
    cpu_->EmbeddingForward(U(out), U(table), U(ids), N, C);
  }
  void EmbeddingBackward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C) override {
    cpu_->EmbeddingBackward(U(dtable), U(dout), U(ids), N, C);
  }
  void LogProbForward(float* logp, float* entropy, const float* logits, const int32_t* target, int64_t N,
                      int64_t V) override {
    cpu_->LogProbForward(U(logp), U(entropy), U(logits), U(target), N, V);
  }
  void LogProbBackward(float* dlogits, const float* dlogp, const float* dentropy, const float* logits,
                       const int32_t* target, int64_t N, int64_t V) override {
    cpu_->LogProbBackward(U(dlogits), U(dlogp), U(dentropy), U(logits), U(target), N, V);
  }
  void Axpy(float* y, const float* x, float a, int64_t n) override { cpu_->Axpy(U(y), U(x), a, n); }
  void GatherRows(float* out, const float* in, const int32_t* idx, int64_t M, int64_t C) override {
    cpu_->GatherRows(U(out), U(in), U(idx), M, C);
  }
  void ScatterAddRows(float* out, const float* in, const int32_t* idx, const float* scale, int64_t M,
                      int64_t C) override {
    cpu_->ScatterAddRows(U(out), U(in), U(idx), U(scale), M, C);
  }
  void RouterScores(float* scores, const float* logits, int64_t N, int64_t E, bool sigmoid) override {
    cpu_->RouterScores(U(scores), U(logits), N, E, sigmoid);
  }
  void RouterScoresBackward(float* dlogits, const float* dscores, const float* scores, int64_t N, int64_t E,
                            bool sigmoid) override {
    cpu_->RouterScoresBackward(U(dlogits), U(dscores), U(scores), N, E, sigmoid);
  }
  void RouterTopK(int32_t* idx, float* w, const float* scores, const float* bias, int64_t N,
                  const RouteShape& r) override {
    cpu_->RouterTopK(U(idx), U(w), U(scores), U(bias), N, r);
  }
  void RouterGateWeights(float* w, const float* scores, const int32_t* idx, int64_t N,
                         const RouteShape& r) override {
    cpu_->RouterGateWeights(U(w), U(scores), U(idx), N, r);
  }
  void RouterTopKBackward(float* dscores, const float* dw, const float* scores, const int32_t* idx, int64_t N,
                          const RouteShape& r) override {
    cpu_->RouterTopKBackward(U(dscores), U(dw), U(scores), U(idx), N, r);
  }
  void MoePermute(int64_t* offsets, int32_t* row_token, int32_t* row_slot, const int32_t* idx, int64_t N, int64_t K,
                  int64_t E) override {
    down_ += (E + 1) * static_cast<int64_t>(sizeof(int64_t));  // the counts cross to the host
    cpu_->MoePermute(offsets, U(row_token), U(row_slot), U(idx), N, K, E);
  }
  void MoeCombineBackward(float* dy, float* dw_slot, const float* dout, const float* y, const float* row_w,
                          const int32_t* row_token, const int32_t* row_slot, int64_t R, int64_t D) override {
    cpu_->MoeCombineBackward(U(dy), U(dw_slot), U(dout), U(y), U(row_w), U(row_token), U(row_slot), R, D);
  }
  void SampleRows(int32_t* token, float* logprob, float* sampling_logprob, const float* logits, const double* u,
                  int64_t n, int64_t V, const SampleParams& p) override {
    cpu_->SampleRows(U(token), U(logprob), U(sampling_logprob), U(logits), u, n, V, p);
  }
  void AdamW(float* w, float* m, float* v, const float* g, int64_t n, float lr, float b1, float b2, float eps,
             float wd, float bc1, float bc2) override {
    cpu_->AdamW(U(w), U(m), U(v), U(g), n, lr, b1, b2, eps, wd, bc1, bc2);
  }
  double SumSquares(const float* x, int64_t n) override { return cpu_->SumSquares(U(x), n); }
  void Scale(float* x, float s, int64_t n) override { cpu_->Scale(U(x), s, n); }
  void ParallelFor(int64_t n, void (*fn)(void* ctx, int64_t i), void* ctx) override { cpu_->ParallelFor(n, fn, ctx); }
  int num_threads() const override { return cpu_->num_threads(); }

 private:
  static std::vector<AttnSeq> UntagSeqs(const AttnSeq* seqs, int64_t n) {
    std::vector<AttnSeq> q(seqs, seqs + n);
    for (auto& x : q) {
      x.q = U(x.q);
      x.k = U(x.k);
      x.v = U(x.v);
      x.out = U(x.out);
      x.probs = U(x.probs);
    }
    return q;
  }

  Backend* cpu_ = CpuBackend();
  std::atomic<int64_t> up_{0}, down_{0}, live_{0};
};

}  // namespace

std::unique_ptr<DetachedBackendHandle> NewDetachedBackend() { return std::make_unique<Detached>(); }

}  // namespace zerorl::model::ops
