// BenchModelCuda: cuBLAS GEMMs (bf16 vs fp32) and the decode attention kernel
// on the shapes of a model config; see cuda_bench.h.
#include "model/cuda_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "model/ops/cuda/cuda_backend.h"
#include "model/ops/cuda/device_memory.h"

namespace zerorl::model {
namespace {

using Clock = std::chrono::steady_clock;

// Dense bf16 tensor-core peak of known devices, TFLOP/s (0: unknown).
double Bf16PeakTflops(const std::string& name) {
  if (name.find("H200") != std::string::npos || name.find("H100") != std::string::npos) return 989.4;
  if (name.find("A100") != std::string::npos) return 312.0;
  return 0;
}

// Seconds per call of fn, after one warm-up call, synchronised.
template <typename Fn>
double Time(Fn fn, int reps) {
  fn();
  if (!ops::CudaSynchronize(0).ok()) return -1;
  auto t0 = Clock::now();
  for (int r = 0; r < reps; ++r) fn();
  if (!ops::CudaSynchronize(0).ok()) return -1;
  return std::chrono::duration<double>(Clock::now() - t0).count() / reps;
}

}  // namespace

int BenchModelCuda(const ModelConfig& c, int64_t tokens, int64_t decode_batch, int64_t decode_ctx) {
  if (absl::Status st = ops::CudaDeviceStatus(0); !st.ok()) {
    std::fprintf(stderr, "zerorl bench model --device cuda: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  auto desc = ops::CudaDeviceDescription(0);
  auto f32 = ops::NewCudaBackend({0, ops::GemmPrecision::kFp32});
  auto b16 = ops::NewCudaBackend({0, ops::GemmPrecision::kBf16});
  if (!desc.ok() || !f32.ok() || !b16.ok()) {
    std::fprintf(stderr, "zerorl bench model --device cuda: cannot set up the device\n");
    return 1;
  }
  const double peak = Bf16PeakTflops(*desc);
  std::printf("device: %s; bf16 peak %s\n", desc->c_str(),
              peak > 0 ? (std::to_string(peak) + " TFLOP/s").c_str() : "unknown (no MFU)");
  std::printf("note: op-level numbers; the whole model does not run on the CUDA backend yet\n");

  struct Shape { const char* name; int64_t in, out; };
  const int64_t D = c.hidden_size;
  const int64_t inter = c.moe_intermediate_size > 0 ? c.moe_intermediate_size : c.intermediate_size;
  const std::vector<Shape> shapes = {{"o_proj", c.num_attention_heads * c.v_dim(), D},
                                     {"expert gate|up", D, 2 * inter},
                                     {"expert down", inter, D},
                                     {"lm_head", D, c.vocab_size}};
  int64_t max_in = 0, max_out = 0;
  for (const auto& s : shapes) max_in = std::max(max_in, s.in), max_out = std::max(max_out, s.out);
  auto x = ops::DeviceBuffer::Allocate(tokens * max_in * 4, 0, "bench x");
  auto w = ops::DeviceBuffer::Allocate(max_in * max_out * 4, 0, "bench w");
  auto y = ops::DeviceBuffer::Allocate(tokens * max_out * 4, 0, "bench y");
  if (!x.ok() || !w.ok() || !y.ok()) {
    std::fprintf(stderr, "zerorl bench model --device cuda: %s\n",
                 std::string((!x.ok() ? x.status() : !w.ok() ? w.status() : y.status()).message()).c_str());
    return 1;
  }
  (void)x->Zero(), (void)w->Zero();
  std::printf("%-16s %8s %8s %8s  %10s %10s %7s %6s\n", "gemm", "tokens", "in", "out", "fp32 TF/s", "bf16 TF/s",
              "ratio", "MFU");
  for (const auto& s : shapes) {
    const double flops = 2.0 * tokens * s.in * s.out;
    const double t32 = Time([&] { (*f32)->LinearForward(y->f32(), x->f32(), w->f32(), tokens, s.in, s.out); }, 5);
    const double t16 = Time([&] { (*b16)->LinearForward(y->f32(), x->f32(), w->f32(), tokens, s.in, s.out); }, 5);
    if (t32 <= 0 || t16 <= 0) {
      std::fprintf(stderr, "zerorl bench model --device cuda: a CUDA error stopped the GEMM benchmark\n");
      return 1;
    }
    const double tf32 = flops / t32 / 1e12, tf16 = flops / t16 / 1e12;
    std::printf("%-16s %8lld %8lld %8lld  %10.1f %10.1f %6.2fx %5.1f%%\n", s.name, static_cast<long long>(tokens),
                static_cast<long long>(s.in), static_cast<long long>(s.out), tf32, tf16, tf16 / tf32,
                peak > 0 ? 100.0 * tf16 / peak : 0.0);
  }

  // Decode attention: decode_batch sequences, one new token each, over decode_ctx cached positions.
  ops::AttnShape a;
  a.H = c.num_attention_heads, a.Hkv = c.kv_heads(), a.dk = c.qk_head_dim(), a.dv = c.v_dim();
  a.q_stride = a.H * a.dk, a.k_stride = a.Hkv * a.dk, a.v_stride = a.Hkv * a.dv, a.out_stride = a.H * a.dv;
  a.scale = 1.f;
  const int64_t kv_floats = decode_batch * decode_ctx * (a.k_stride + a.v_stride);
  auto kv = ops::DeviceBuffer::Allocate(kv_floats * 4, 0, "bench kv cache");
  auto qo = ops::DeviceBuffer::Allocate(decode_batch * (a.q_stride + a.out_stride) * 4, 0, "bench q/out");
  if (!kv.ok() || !qo.ok()) {
    std::fprintf(stderr, "zerorl bench model --device cuda: %s\n",
                 std::string((!kv.ok() ? kv.status() : qo.status()).message()).c_str());
    return 1;
  }
  (void)kv->Zero(), (void)qo->Zero();
  std::vector<ops::AttnSeq> seqs(decode_batch);
  for (int64_t b = 0; b < decode_batch; ++b) {
    float* k = kv->f32() + b * decode_ctx * (a.k_stride + a.v_stride);
    seqs[b].q = qo->f32() + b * a.q_stride;
    seqs[b].out = qo->f32() + decode_batch * a.q_stride + b * a.out_stride;
    seqs[b].k = k;
    seqs[b].v = k + decode_ctx * a.k_stride;
    seqs[b].n_q = 1, seqs[b].n_kv = decode_ctx, seqs[b].q_pos0 = decode_ctx - 1;
  }
  const double ta = Time([&] { (*b16)->AttentionForward(seqs.data(), decode_batch, a); }, 20);
  if (ta <= 0) {
    std::fprintf(stderr, "zerorl bench model --device cuda: a CUDA error stopped the attention benchmark\n");
    return 1;
  }
  const double gbs = kv_floats * 4.0 / ta / 1e9;
  std::printf("decode attention (one layer): %lld seqs x %lld ctx, H=%lld Hkv=%lld dk=%lld dv=%lld: %.1f us, "
              "%.0f tokens/s, KV read %.0f GB/s\n",
              static_cast<long long>(decode_batch), static_cast<long long>(decode_ctx), static_cast<long long>(a.H),
              static_cast<long long>(a.Hkv), static_cast<long long>(a.dk), static_cast<long long>(a.dv), ta * 1e6,
              decode_batch / ta, gbs);
  return 0;
}

}  // namespace zerorl::model
