// CudaBackend: device selection, the cuBLAS GEMM (row-major on top of
// column-major cuBLAS), attention descriptor staging, and dispatch of every
// other op to its kernel launcher (kernels.h).
#include "model/ops/cuda/cuda_backend.h"

#include <cstdio>
#include <map>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/ops/cuda/cuda_check.h"
#include "model/ops/cuda/cuda_status.h"
#include "model/ops/cuda/kernels.h"

namespace zerorl::model::ops {
namespace cuda {
namespace {

class CudaBackendImpl final : public Backend {
 public:
  CudaBackendImpl(int device, GemmPrecision gemm, cublasHandle_t handle)
      : device_(device), gemm_(gemm), handle_(handle) {}
  ~CudaBackendImpl() override {
    cudaSetDevice(device_);
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
    std::lock_guard<std::mutex> lock(mu_);
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
    std::lock_guard<std::mutex> lock(mu_);
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
  void* Stage(const void* host, size_t bytes, size_t extra) {
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
  std::mutex mu_;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
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
  static std::mutex mu;
  static auto* backends = new std::map<int, std::unique_ptr<Backend>>();
  std::lock_guard<std::mutex> lock(mu);
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

absl::Status CudaSynchronize(int device) {
  if (auto st = CudaDeviceStatus(device); !st.ok()) return st;
  ZRL_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  ZRL_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  return absl::OkStatus();
}

}  // namespace zerorl::model::ops
