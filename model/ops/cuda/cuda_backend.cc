// CudaBackend: device selection, the cuBLAS GEMM (row-major on top of
// column-major cuBLAS), attention descriptor staging, backend memory (the
// caching allocator, copies on the backend's stream), and dispatch of every
// other op to its kernel launcher (kernels.h).
#include "model/ops/cuda/cuda_backend.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "model/ops/cuda/caching_allocator.h"
#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/cuda_status.h"
#include "model/ops/cuda/kernels.h"

namespace zerorl::model::ops {
namespace cuda {
namespace {

class CudaBackendImpl final : public Backend {
 public:
  CudaBackendImpl(int device, GemmPrecision gemm, cublasHandle_t handle)
      : device_(device), gemm_(gemm), handle_(handle), alloc_(device) {}
  ~CudaBackendImpl() override {
    cudaSetDevice(device_);
    cudaDeviceSynchronize();  // queued work may still use backend memory
    if (scratch_) cudaFree(scratch_);
    cublasDestroy(handle_);
  }
  const char* name() const override { return gemm_ == GemmPrecision::kBf16 ? "cuda-bf16" : "cuda-fp32"; }

  void Gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
            const float* B, int64_t ldb, float beta, float* C, int64_t ldc) override {
    if (M <= 0 || N <= 0) return;
    Use();
    // Row-major C[M,N] = op(A) op(B) is column-major C^T[N,M] = op(B)^T op(A)^T,
    // and a row-major X with leading dim ld is the column-major X^T with the same ld.
    const cublasComputeType_t compute =
        gemm_ == GemmPrecision::kBf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
    ZRL_CUBLAS_CHECK(cublasGemmEx(handle_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha, B,
                                  CUDA_R_32F, static_cast<int>(ldb), A, CUDA_R_32F, static_cast<int>(lda), &beta, C,
                                  CUDA_R_32F, static_cast<int>(ldc), compute, CUBLAS_GEMM_DEFAULT));
  }

  void RmsNormForward(float* out, float* rstd, const float* x, const float* w, int64_t N, int64_t C,
                      int64_t x_stride, int64_t out_stride, float eps) override {
    Use();
    LaunchRmsNormForward(out, rstd, x, w, N, C, x_stride, out_stride, eps, 0);
  }
  void RmsNormBackward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                       int64_t N, int64_t C, int64_t x_stride, int64_t dout_stride) override {
    Use();
    LaunchRmsNormBackward(dx, dw, dout, x, w, rstd, N, C, x_stride, dout_stride, 0);
  }
  void Rope(float* x, const int32_t* pos, int64_t N, int64_t nh, int64_t stride, int64_t head_stride, int64_t off,
            int64_t rd, float theta, bool interleaved, bool inverse) override {
    Use();
    LaunchRope(x, pos, N, nh, stride, head_stride, off, rd, theta, interleaved, inverse, 0);
  }
  void SwiGluForward(float* out, const float* h, int64_t N, int64_t I) override {
    Use();
    LaunchSwiGluForward(out, h, N, I, 0);
  }
  void SwiGluBackward(float* dh, const float* dout, const float* h, int64_t N, int64_t I) override {
    Use();
    LaunchSwiGluBackward(dh, dout, h, N, I, 0);
  }

  void AttentionForward(const AttnSeq* seqs, int64_t n, const AttnShape& s) override {
    if (n <= 0) return;
    Use();
    CheckShape(s, n, "AttentionForward");
    absl::MutexLock lock(&mu_);
    const int64_t max_nq = MaxNq(seqs, n);
    auto* d = static_cast<AttnSeq*>(Stage(seqs, n * sizeof(AttnSeq), 0));
    LaunchAttentionForward(d, n, max_nq, s, 0);
  }
  void AttentionBackward(const AttnSeq* seqs, const AttnSeqGrad* grads, int64_t n, const AttnShape& s) override {
    if (n <= 0) return;
    Use();
    CheckShape(s, n, "AttentionBackward");
    for (int64_t i = 0; i < n; ++i)
      if (seqs[i].n_q > 0 && !seqs[i].probs) {
        std::fprintf(stderr, "[CUDA ERROR] AttentionBackward: sequence %lld has no saved probs (run the forward "
                     "with probs set)\n", static_cast<long long>(i));
        std::abort();
      }
    absl::MutexLock lock(&mu_);
    const int64_t max_nq = MaxNq(seqs, n);
    const size_t seq_bytes = (n * sizeof(AttnSeq) + 255) / 256 * 256;
    auto* base = static_cast<char*>(Stage(seqs, n * sizeof(AttnSeq), n * sizeof(AttnSeqGrad) + seq_bytes));
    ZRL_CUDA_CHECK(cudaMemcpyAsync(base + seq_bytes, grads, n * sizeof(AttnSeqGrad), cudaMemcpyHostToDevice, 0));
    LaunchAttentionBackward(reinterpret_cast<AttnSeq*>(base), reinterpret_cast<AttnSeqGrad*>(base + seq_bytes), n,
                            max_nq, s, 0);
  }

  void EmbeddingForward(float* out, const float* table, const int32_t* ids, int64_t N, int64_t C) override {
    Use();
    LaunchGatherRows(out, table, ids, N, C, 0);
  }
  void EmbeddingBackward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C) override {
    Use();
    LaunchScatterAddRows(dtable, dout, ids, nullptr, N, C, 0);
  }
  void LogProbForward(float* logp, float* entropy, const float* logits, const int32_t* target, int64_t N,
                      int64_t V) override {
    Use();
    LaunchLogProbForward(logp, entropy, logits, target, N, V, 0);
  }
  void LogProbBackward(float* dlogits, const float* dlogp, const float* dentropy, const float* logits,
                       const int32_t* target, int64_t N, int64_t V) override {
    Use();
    LaunchLogProbBackward(dlogits, dlogp, dentropy, logits, target, N, V, 0);
  }
  void Axpy(float* y, const float* x, float a, int64_t n) override {
    Use();
    LaunchAxpy(y, x, a, n, 0);
  }
  void GatherRows(float* out, const float* in, const int32_t* idx, int64_t M, int64_t C) override {
    Use();
    LaunchGatherRows(out, in, idx, M, C, 0);
  }
  void ScatterAddRows(float* out, const float* in, const int32_t* idx, const float* scale, int64_t M,
                      int64_t C) override {
    Use();
    LaunchScatterAddRows(out, in, idx, scale, M, C, 0);
  }
  // ---- memory ----
  bool host_memory() const override { return false; }
  int64_t memory_bytes() const override {
    cudaSetDevice(device_);
    size_t free_bytes = 0, total = 0;
    return cudaMemGetInfo(&free_bytes, &total) == cudaSuccess ? static_cast<int64_t>(total) : 0;
  }
  void* Alloc(int64_t bytes, const char* what) override {
    Use();
    return alloc_.Alloc(bytes, what);
  }
  void Free(void* p) override { alloc_.Free(p); }
  void Copy(void* dst, const void* src, int64_t bytes) override {
    if (bytes <= 0 || dst == src) return;
    Use();
    ZRL_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, 0));
  }
  // From pageable host memory the copy is staged before cudaMemcpyAsync
  // returns, so the caller may reuse `host` at once.
  void Upload(void* dst, const void* host, int64_t bytes) override {
    if (bytes <= 0) return;
    Use();
    ZRL_CUDA_CHECK(cudaMemcpyAsync(dst, host, static_cast<size_t>(bytes), cudaMemcpyHostToDevice, 0));
  }
  void Download(void* host, const void* src, int64_t bytes) override {
    if (bytes <= 0) return;
    Use();
    ZRL_CUDA_CHECK(cudaMemcpyAsync(host, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost, 0));
    ZRL_CUDA_CHECK(cudaStreamSynchronize(0));  // waits for the queued ops, surfaces their faults
  }
  void Fill(float* x, float value, int64_t n) override {
    if (n <= 0) return;
    Use();
    uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    if (bits == 0) ZRL_CUDA_CHECK(cudaMemsetAsync(x, 0, static_cast<size_t>(n) * sizeof(float), 0));
    else LaunchFill(x, value, n, 0);
  }
  void FillI32(int32_t* x, int32_t value, int64_t n) override {
    if (n <= 0) return;
    Use();
    if (value == 0) ZRL_CUDA_CHECK(cudaMemsetAsync(x, 0, static_cast<size_t>(n) * sizeof(int32_t), 0));
    else LaunchFillI32(x, value, n, 0);
  }
  void Copy2D(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
              bool accumulate) override {
    if (rows <= 0 || cols <= 0) return;
    Use();
    if (accumulate) {
      LaunchAddCopy2D(dst, ld_dst, src, ld_src, rows, cols, 0);
      return;
    }
    ZRL_CUDA_CHECK(cudaMemcpy2DAsync(dst, static_cast<size_t>(ld_dst) * sizeof(float), src,
                                     static_cast<size_t>(ld_src) * sizeof(float),
                                     static_cast<size_t>(cols) * sizeof(float), static_cast<size_t>(rows),
                                     cudaMemcpyDeviceToDevice, 0));
  }
  void Synchronize() override {
    Use();
    ZRL_CUDA_CHECK(cudaDeviceSynchronize());
  }

  // ---- MoE routing ----
  void RouterScores(float* scores, const float* logits, int64_t N, int64_t E, bool sigmoid) override {
    Use();
    LaunchRouterScores(scores, logits, N, E, sigmoid, 0);
  }
  void RouterScoresBackward(float* dlogits, const float* dscores, const float* scores, int64_t N, int64_t E,
                            bool sigmoid) override {
    Use();
    LaunchRouterScoresBackward(dlogits, dscores, scores, N, E, sigmoid, 0);
  }
  void RouterTopK(int32_t* idx, float* w, const float* scores, const float* bias, int64_t N,
                  const RouteShape& r) override {
    Use();
    LaunchRouterTopK(idx, w, scores, bias, N, r, 0);
  }
  void RouterGateWeights(float* w, const float* scores, const int32_t* idx, int64_t N,
                         const RouteShape& r) override {
    Use();
    LaunchRouterGateWeights(w, scores, idx, N, r, 0);
  }
  void RouterTopKBackward(float* dscores, const float* dw, const float* scores, const int32_t* idx, int64_t N,
                          const RouteShape& r) override {
    Use();
    LaunchRouterTopKBackward(dscores, dw, scores, idx, N, r, 0);
  }
  // Counts per expert on the device, one download of the E counts (the host
  // needs them for the per-expert GEMM sizes), stable placement on the device.
  void MoePermute(int64_t* offsets, int32_t* row_token, int32_t* row_slot, const int32_t* idx, int64_t N, int64_t K,
                  int64_t E) override {
    if (E <= 0) return;
    Use();
    const int64_t R = N * K;
    auto* counts = static_cast<int32_t*>(alloc_.Alloc(E * static_cast<int64_t>(sizeof(int32_t)), "MoePermute counts"));
    LaunchExpertCount(counts, idx, R, E, 0);
    LaunchExpertPlace(row_token, row_slot, counts, idx, R, K, E, 0);
    std::vector<int32_t> host(static_cast<size_t>(E));
    Download(host.data(), counts, E * static_cast<int64_t>(sizeof(int32_t)));
    alloc_.Free(counts);
    offsets[0] = 0;
    for (int64_t e = 0; e < E; ++e) offsets[e + 1] = offsets[e] + host[e];
  }
  void MoeCombineBackward(float* dy, float* dw_slot, const float* dout, const float* y, const float* row_w,
                          const int32_t* row_token, const int32_t* row_slot, int64_t R, int64_t D) override {
    Use();
    LaunchMoeCombineBackward(dy, dw_slot, dout, y, row_w, row_token, row_slot, R, D, 0);
  }

  // ---- sampling ----
  void SampleRows(int32_t* token, float* logprob, float* sampling_logprob, const float* logits, const double* u,
                  int64_t n, int64_t V, const SampleParams& p) override {
    if (n <= 0 || V <= 0) return;
    Use();
    if (!p.greedy && !(p.temperature > 0.f)) Fatal("SampleRows", "temperature must be > 0");
    if (!p.greedy && !(p.top_p > 0.f && p.top_p <= 1.f)) Fatal("SampleRows", "top_p must be in (0, 1]");
    std::vector<void*> owned;
    auto take = [&](int64_t bytes, const char* what) {
      void* ptr = alloc_.Alloc(bytes, what);
      owned.push_back(ptr);
      return ptr;
    };
    double* u_dev = nullptr;
    if (!p.greedy) {
      u_dev = static_cast<double*>(take(n * static_cast<int64_t>(sizeof(double)), "SampleRows uniforms"));
      Upload(u_dev, u, n * static_cast<int64_t>(sizeof(double)));
    }
    SampleScratch s;
    if (SampleNeedsSort(V, p)) {
      const int64_t nv = n * V;
      s.row_mx = static_cast<double*>(take(n * 8, "SampleRows row max"));
      s.row_lse = static_cast<double*>(take(n * 8, "SampleRows row lse"));
      s.keys_in = static_cast<float*>(take(nv * 4, "SampleRows sort keys"));
      s.keys_out = static_cast<float*>(take(nv * 4, "SampleRows sorted keys"));
      s.vals_in = static_cast<int32_t*>(take(nv * 4, "SampleRows sort indices"));
      s.vals_out = static_cast<int32_t*>(take(nv * 4, "SampleRows sorted indices"));
      s.offsets = static_cast<int32_t*>(take((n + 1) * 4, "SampleRows segment offsets"));
      s.temp_bytes = SampleSortTempBytes(n, V);
      s.temp = take(static_cast<int64_t>(s.temp_bytes), "SampleRows sort temp");
    }
    LaunchSampleRows(token, logprob, sampling_logprob, logits, u_dev, n, V, p, s, 0);
    for (void* ptr : owned) alloc_.Free(ptr);  // reuse is ordered after the kernels on the same stream
  }

  // ---- optimizer ----
  void AdamW(float* w, float* m, float* v, const float* g, int64_t n, float lr, float b1, float b2, float eps,
             float wd, float bc1, float bc2) override {
    Use();
    LaunchAdamW(w, m, v, g, n, lr, b1, b2, eps, wd, bc1, bc2, 0);
  }
  double SumSquares(const float* x, int64_t n) override {
    if (n <= 0) return 0.0;
    Use();
    const int blocks = SumSquaresBlocks(n);
    auto* part = static_cast<double*>(alloc_.Alloc(blocks * static_cast<int64_t>(sizeof(double)), "SumSquares"));
    LaunchSumSquaresPartials(part, x, n, 0);
    std::vector<double> host(static_cast<size_t>(blocks));
    Download(host.data(), part, blocks * static_cast<int64_t>(sizeof(double)));
    alloc_.Free(part);
    double sum = 0.0;
    for (double v : host) sum += v;
    return sum;
  }
  void Scale(float* x, float s, int64_t n) override {
    Use();
    LaunchScale(x, s, n, 0);
  }

  AllocatorStats allocator_stats() const { return alloc_.stats(); }
  void ReleaseCache() { alloc_.ReleaseCache(); }

  // Ops are queued on one stream; the host loop itself is serial.
  void ParallelFor(int64_t n, void (*fn)(void* ctx, int64_t i), void* ctx) override {
    for (int64_t i = 0; i < n; ++i) fn(ctx, i);
  }
  int num_threads() const override { return 1; }

 private:
  void Use() const {
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != device_) ZRL_CUDA_CHECK(cudaSetDevice(device_));
  }
  [[noreturn]] static void Fatal(const char* op, const char* what) {
    std::fprintf(stderr, "[CUDA ERROR] %s: %s\n", op, what);
    std::fflush(stderr);
    std::abort();
  }
  static int64_t MaxNq(const AttnSeq* seqs, int64_t n) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; ++i) m = seqs[i].n_q > m ? seqs[i].n_q : m;
    return m;
  }
  static void CheckShape(const AttnShape& s, int64_t n, const char* op) {
    if (s.H <= 0 || s.Hkv <= 0 || s.H % s.Hkv != 0 || s.dk <= 0 || s.dv <= 0 || n > 65535) {
      std::fprintf(stderr, "[CUDA ERROR] %s: bad shape H=%lld Hkv=%lld dk=%lld dv=%lld n=%lld (need H %% Hkv == 0, "
                   "dims > 0, n <= 65535)\n", op, static_cast<long long>(s.H), static_cast<long long>(s.Hkv),
                   static_cast<long long>(s.dk), static_cast<long long>(s.dv), static_cast<long long>(n));
      std::abort();
    }
  }
  // Copies `bytes` of host descriptors into the device scratch (at least
  // bytes + extra long) and returns it. The copy is ordered on the default
  // stream after earlier kernels that may still read the scratch.
  void* Stage(const void* host, size_t bytes, size_t extra) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const size_t need = bytes + extra + 256;
    if (need > scratch_bytes_) {
      if (scratch_) ZRL_CUDA_CHECK(cudaFree(scratch_));  // cudaFree synchronises the device
      scratch_bytes_ = need * 2;
      ZRL_CUDA_CHECK(cudaMalloc(&scratch_, scratch_bytes_));
    }
    ZRL_CUDA_CHECK(cudaMemcpyAsync(scratch_, host, bytes, cudaMemcpyHostToDevice, 0));
    return scratch_;
  }

  const int device_;
  const GemmPrecision gemm_;
  cublasHandle_t handle_;
  CachingAllocator alloc_;
  absl::Mutex mu_;  // the descriptor scratch: one staged launch at a time
  void* scratch_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t scratch_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace
}  // namespace cuda

absl::Status CudaDeviceStatus(int device) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return absl::FailedPreconditionError(absl::StrCat("no CUDA device: cudaGetDeviceCount failed: ",
                                                      cudaGetErrorString(e), " (", cudaGetErrorName(e), ")"));
  }
  if (count == 0) return absl::FailedPreconditionError("no CUDA device: cudaGetDeviceCount returned 0");
  if (device < 0 || device >= count)
    return absl::FailedPreconditionError(
        absl::StrCat("no CUDA device ", device, ": cudaGetDeviceCount returned ", count, " (valid: 0..", count - 1,
                     ")"));
  return absl::OkStatus();
}

absl::StatusOr<std::string> CudaDeviceDescription(int device) {
  if (auto st = CudaDeviceStatus(device); !st.ok()) return st;
  cudaDeviceProp p{};
  ZRL_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&p, device));
  return absl::StrFormat("%s (sm_%d%d, %.1f GiB, %d SMs)", p.name, p.major, p.minor,
                         static_cast<double>(p.totalGlobalMem) / (1 << 30), p.multiProcessorCount);
}

absl::StatusOr<std::unique_ptr<Backend>> NewCudaBackend(const CudaBackendOptions& options) {
  if (auto st = CudaDeviceStatus(options.device); !st.ok()) return st;
  ZRL_CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device));
  cublasHandle_t handle = nullptr;
  cublasStatus_t cs = cublasCreate(&handle);
  if (cs != CUBLAS_STATUS_SUCCESS)
    return absl::InternalError(absl::StrCat("cublasCreate on device ", options.device, " failed: ",
                                            cuda::CublasStatusName(cs)));
  return std::unique_ptr<Backend>(new cuda::CudaBackendImpl(options.device, options.gemm, handle));
}

absl::StatusOr<Backend*> CudaBackend(int device) {
  ABSL_CONST_INIT static absl::Mutex mu(absl::kConstInit);  // guards `backends`
  static auto* backends = new std::map<int, std::unique_ptr<Backend>>();
  absl::MutexLock lock(&mu);
  auto it = backends->find(device);
  if (it != backends->end()) return it->second.get();
  CudaBackendOptions o;
  o.device = device;
  auto b = NewCudaBackend(o);
  if (!b.ok()) return b.status();
  Backend* raw = b->get();
  (*backends)[device] = std::move(*b);
  return raw;
}

absl::StatusOr<cuda::AllocatorStats> CudaBackendMemoryStats(Backend* backend) {
  auto* b = dynamic_cast<cuda::CudaBackendImpl*>(backend);
  if (!b) return absl::FailedPreconditionError(absl::StrCat("not a CUDA backend: ", backend ? backend->name() : "null"));
  return b->allocator_stats();
}

absl::Status ReleaseCudaBackendCache(Backend* backend) {
  auto* b = dynamic_cast<cuda::CudaBackendImpl*>(backend);
  if (!b) return absl::FailedPreconditionError(absl::StrCat("not a CUDA backend: ", backend ? backend->name() : "null"));
  b->ReleaseCache();
  return absl::OkStatus();
}

absl::Status CudaSynchronize(int device) {
  if (auto st = CudaDeviceStatus(device); !st.ok()) return st;
  ZRL_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  ZRL_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  return absl::OkStatus();
}

}  // namespace zerorl::model::ops
