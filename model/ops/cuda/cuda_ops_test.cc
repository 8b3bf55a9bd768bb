// CudaBackend vs CpuBackend, op by op (llama.cpp test-backend-ops style):
// random inputs go through both backends and the CUDA results must match the
// fp32 CPU reference within tolerances suited to the op (fp32 kernels: ~1e-5
// relative; bf16 GEMMs: ~1e-2 of the output scale). Without a usable CUDA
// device every device test is SKIPPED with the reason ("no CUDA device: ...");
// the tests of the no-device error paths run everywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "model/cuda_bench.h"
#include "model/ops/buffer.h"
#include "model/ops/cuda/adamw.h"
#include "model/ops/cuda/cuda_backend.h"
#include "model/ops/cuda/device_memory.h"
#include "model/ops/ops.h"

// Built twice: against the real CUDA backend (runs on a GPU, skips without
// one) and, with ZERORL_CUDA_EMU, against the same backend over the emulated
// runtime (model/ops/cuda/emu/), where the suites get an Emu prefix.
#ifdef ZERORL_CUDA_EMU
#define CudaOps EmuCudaOps
#define CudaDevice EmuCudaDevice
#endif

namespace zerorl::model::ops {
namespace {

using Vec = std::vector<float>;

Vec Random(size_t n, std::mt19937& rng, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  Vec v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Max |got - want| relative to max(|want|, floor): one number per op.
double NormErr(const Vec& got, const Vec& want, double floor = 1.0) {
  double mx = floor, err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    mx = std::max(mx, std::abs(static_cast<double>(want[i])));
    err = std::max(err, std::abs(static_cast<double>(got[i]) - want[i]));
  }
  return err / mx;
}

#define EXPECT_CLOSE(got, want, tol) \
  EXPECT_LT(NormErr(got, want), tol) << "op output differs from the CPU reference: " #got " vs " #want

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::Status st = CudaDeviceStatus(0);
    if (!st.ok()) GTEST_SKIP() << st.message();
    auto f = NewCudaBackend({0, GemmPrecision::kFp32});
    auto b = NewCudaBackend({0, GemmPrecision::kBf16});
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_TRUE(b.ok()) << b.status();
    fp32_ = std::move(*f);
    bf16_ = std::move(*b);
    cpu_ = CpuBackend();
  }
  // Device copy of host data (kept alive by the fixture).
  float* Up(const Vec& v) {
    auto b = DeviceBuffer::Allocate(static_cast<int64_t>(std::max<size_t>(v.size(), 1) * 4), 0, "test");
    EXPECT_TRUE(b.ok()) << b.status();
    EXPECT_TRUE(b->Upload(v.data(), v.size() * 4).ok());
    bufs_.push_back(std::move(*b));
    return bufs_.back().f32();
  }
  int32_t* UpI(const std::vector<int32_t>& v) {
    auto b = DeviceBuffer::Allocate(static_cast<int64_t>(std::max<size_t>(v.size(), 1) * 4), 0, "test ids");
    EXPECT_TRUE(b.ok()) << b.status();
    EXPECT_TRUE(b->Upload(v.data(), v.size() * 4).ok());
    bufs_.push_back(std::move(*b));
    return bufs_.back().i32();
  }
  Vec Down(const float* dev, size_t n) {
    for (auto& b : bufs_)
      if (b.f32() == dev) {
        Vec v(n);
        absl::Status st = b.Download(v.data(), n * 4);
        EXPECT_TRUE(st.ok()) << st;
        return v;
      }
    ADD_FAILURE() << "not a test buffer";
    return {};
  }

  std::mt19937 rng_{1234};
  std::unique_ptr<Backend> fp32_, bf16_;
  Backend* cpu_ = nullptr;
  std::vector<DeviceBuffer> bufs_;
};

TEST(CudaDevice, NoDeviceErrorsAreClear) {
  absl::Status st = CudaDeviceStatus(0);
  if (st.ok()) {
    // With a device, an out-of-range ordinal is the error case.
    absl::Status bad = CudaDeviceStatus(1 << 20);
    EXPECT_EQ(bad.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(std::string(bad.message()).find("cudaGetDeviceCount returned"), std::string::npos) << bad;
    return;
  }
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(st.message()).rfind("no CUDA device", 0), 0u) << st;
  auto b = NewCudaBackend({});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().message(), st.message());
  auto buf = DeviceBuffer::Allocate(1024, 0, "weights");
  ASSERT_FALSE(buf.ok());
  EXPECT_EQ(std::string(buf.status().message()).rfind("no CUDA device", 0), 0u) << buf.status();
}

// `zerorl bench model --device cuda` without a device: a clear message and exit code 2.
TEST(CudaDevice, BenchWithoutDeviceExits2) {
  if (CudaDeviceStatus(0).ok()) GTEST_SKIP() << "a CUDA device is present; the no-device path is not reachable";
  ::testing::internal::CaptureStderr();
  const int rc = BenchModelCuda(ModelConfig{}, CudaBenchOptions{});
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("--device cuda: no CUDA device"), std::string::npos) << err;
}

TEST(CudaDevice, NegativeAllocationIsInvalidArgument) {
  auto buf = DeviceBuffer::Allocate(-5, 0, "grads");
  ASSERT_FALSE(buf.ok());
  EXPECT_EQ(buf.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(buf.status().message()).find("grads"), std::string::npos);
}

TEST_F(CudaOps, OutOfMemorySaysAskedAndFree) {
  auto buf = DeviceBuffer::Allocate(int64_t{1} << 52, 0, "huge kv cache");
  ASSERT_FALSE(buf.ok());
  EXPECT_EQ(buf.status().code(), absl::StatusCode::kResourceExhausted) << buf.status();
  const std::string m(buf.status().message());
  EXPECT_NE(m.find("asked for 4503599627370496 bytes"), std::string::npos) << m;
  EXPECT_NE(m.find("free "), std::string::npos) << m;
  EXPECT_NE(m.find("huge kv cache"), std::string::npos) << m;
}

TEST_F(CudaOps, DeviceBufferAccountingAndBounds) {
  const int64_t before = GetDeviceMemoryStats().in_use_bytes;
  {
    auto b = DeviceBuffer::Allocate(1 << 20, 0, "x");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(GetDeviceMemoryStats().in_use_bytes, before + (1 << 20));
    std::vector<char> h(16);
    EXPECT_EQ(b->Upload(h.data(), (1 << 20) + 1).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(GetDeviceMemoryStats().in_use_bytes, before);
  int64_t f = 0, t = 0;
  ASSERT_TRUE(DeviceMemInfo(0, &f, &t).ok());
  EXPECT_GT(t, 0);
  EXPECT_LE(f, t);
}

TEST_F(CudaOps, GemmAllTransposesFp32AndBf16) {
  const int64_t M = 37, N = 53, K = 71;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
      Vec A = Random((ta ? K : M) * lda, rng_), B = Random((tb ? N : K) * ldb, rng_), C = Random(M * ldc, rng_);
      for (Backend* dev : {fp32_.get(), bf16_.get()}) {
        float *a = Up(A), *b = Up(B), *c = Up(C);
        Vec want = C;
        cpu_->Gemm(ta, tb, M, N, K, 0.7f, A.data(), lda, B.data(), ldb, 0.3f, want.data(), ldc);
        dev->Gemm(ta, tb, M, N, K, 0.7f, a, lda, b, ldb, 0.3f, c, ldc);
        const double tol = dev == fp32_.get() ? 1e-5 : 2e-2;
        EXPECT_CLOSE(Down(c, C.size()), want, tol) << " ta=" << ta << " tb=" << tb << " " << dev->name();
      }
    }
}

TEST_F(CudaOps, LinearForwardBackward) {
  const int64_t N = 24, I = 64, O = 48;
  Vec x = Random(N * I, rng_), w = Random(O * I, rng_, 0.1f), dout = Random(N * O, rng_);
  Vec y(N * O), dx(N * I, 0.f), dw(O * I, 0.f);
  cpu_->LinearForward(y.data(), x.data(), w.data(), N, I, O);
  cpu_->LinearBackward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), N, I, O);
  float *dX = Up(x), *dW = Up(w), *dY = Up(Vec(N * O)), *dD = Up(dout), *gX = Up(Vec(N * I, 0.f)),
        *gW = Up(Vec(O * I, 0.f));
  bf16_->LinearForward(dY, dX, dW, N, I, O);
  bf16_->LinearBackward(gX, gW, dD, dX, dW, N, I, O);
  EXPECT_CLOSE(Down(dY, y.size()), y, 2e-2);
  EXPECT_CLOSE(Down(gX, dx.size()), dx, 2e-2);
  EXPECT_CLOSE(Down(gW, dw.size()), dw, 2e-2);
}

TEST_F(CudaOps, RmsNormForwardBackwardStrided) {
  const int64_t N = 19, C = 300, xs = 320, os = 310;
  Vec x = Random(N * xs, rng_), w = Random(C, rng_), dout = Random(N * os, rng_), dx0 = Random(N * xs, rng_),
      dw0 = Random(C, rng_);
  Vec out(N * os, 0.f), rstd(N), dx = dx0, dw = dw0;
  cpu_->RmsNormForward(out.data(), rstd.data(), x.data(), w.data(), N, C, xs, os, 1e-6f);
  cpu_->RmsNormBackward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), N, C, xs, os);
  float *dX = Up(x), *dW = Up(w), *dO = Up(Vec(N * os, 0.f)), *dR = Up(Vec(N)), *dD = Up(dout), *gX = Up(dx0),
        *gW = Up(dw0);
  fp32_->RmsNormForward(dO, dR, dX, dW, N, C, xs, os, 1e-6f);
  fp32_->RmsNormBackward(gX, gW, dD, dX, dW, dR, N, C, xs, os);
  EXPECT_CLOSE(Down(dO, out.size()), out, 1e-5);
  EXPECT_CLOSE(Down(dR, rstd.size()), rstd, 1e-5);
  EXPECT_CLOSE(Down(gX, dx.size()), dx, 1e-5);
  EXPECT_CLOSE(Down(gW, dw.size()), dw, 1e-4);
}

TEST_F(CudaOps, RopeBothLayoutsAndInverse) {
  const int64_t N = 11, nh = 3, head_stride = 40, stride = nh * head_stride + 4, off = 8, rd = 32;
  std::vector<int32_t> pos(N);
  for (int64_t n = 0; n < N; ++n) pos[n] = static_cast<int32_t>(n * 7 + 3);
  for (bool interleaved : {false, true}) {
    Vec x = Random(N * stride, rng_), want = x;
    cpu_->Rope(want.data(), pos.data(), N, nh, stride, head_stride, off, rd, 10000.f, interleaved, false);
    float* d = Up(x);
    int32_t* p = UpI(pos);
    fp32_->Rope(d, p, N, nh, stride, head_stride, off, rd, 10000.f, interleaved, false);
    EXPECT_CLOSE(Down(d, x.size()), want, 1e-5) << " interleaved=" << interleaved;
    fp32_->Rope(d, p, N, nh, stride, head_stride, off, rd, 10000.f, interleaved, true);
    EXPECT_CLOSE(Down(d, x.size()), x, 1e-5) << " inverse must undo the forward";
  }
}

TEST_F(CudaOps, SwiGluForwardBackward) {
  const int64_t N = 13, I = 129;
  Vec h = Random(N * 2 * I, rng_, 2.f), dout = Random(N * I, rng_), out(N * I), dh(N * 2 * I);
  cpu_->SwiGluForward(out.data(), h.data(), N, I);
  cpu_->SwiGluBackward(dh.data(), dout.data(), h.data(), N, I);
  float *dH = Up(h), *dO = Up(Vec(N * I)), *dD = Up(dout), *gH = Up(Vec(N * 2 * I, 7.f));
  fp32_->SwiGluForward(dO, dH, N, I);
  fp32_->SwiGluBackward(gH, dD, dH, N, I);
  EXPECT_CLOSE(Down(dO, out.size()), out, 1e-5);
  EXPECT_CLOSE(Down(gH, dh.size()), dh, 1e-5);
}

// Sequences of different lengths, a chunked prefill (q_pos0 > 0), a decode
// row (n_q = 1) and GQA (H = 4 over Hkv = 2) with MLA-like dk != dv.
TEST_F(CudaOps, AttentionForwardBackwardGqaRaggedBatch) {
  AttnShape s;
  s.H = 4, s.Hkv = 2, s.dk = 48, s.dv = 32;
  s.q_stride = s.H * s.dk + 8, s.k_stride = s.Hkv * s.dk + 4, s.v_stride = s.Hkv * s.dv, s.out_stride = s.H * s.dv;
  s.scale = 1.f / std::sqrt(48.f);
  struct Spec { int64_t n_q, n_kv, q_pos0; };
  const std::vector<Spec> specs = {{17, 17, 0}, {5, 12, 7}, {1, 30, 29}, {40, 40, 0}};
  const int64_t n = static_cast<int64_t>(specs.size());
  std::vector<Vec> Q, K, V, DO;
  for (const auto& sp : specs) {
    Q.push_back(Random(sp.n_q * s.q_stride, rng_));
    K.push_back(Random(sp.n_kv * s.k_stride, rng_));
    V.push_back(Random(sp.n_kv * s.v_stride, rng_));
    DO.push_back(Random(sp.n_q * s.out_stride, rng_));
  }
  std::vector<Vec> out(n), probs(n), dq(n), dk(n), dv(n);
  std::vector<AttnSeq> hs(n), ds(n), ds_noprobs(n);
  std::vector<AttnSeqGrad> hg(n), dg(n);
  std::vector<float*> dev_out(n), dev_out2(n), dev_probs(n), dev_dq(n), dev_dk(n), dev_dv(n);
  for (int64_t i = 0; i < n; ++i) {
    const auto& sp = specs[i];
    out[i].assign(sp.n_q * s.out_stride, 0.f);
    probs[i].assign(s.H * sp.n_q * sp.n_kv, 0.f);
    dq[i].assign(sp.n_q * s.q_stride, 0.f);
    dk[i] = Random(sp.n_kv * s.k_stride, rng_);  // accumulates onto existing values
    dv[i] = Random(sp.n_kv * s.v_stride, rng_);
    dev_out[i] = Up(out[i]);
    dev_out2[i] = Up(out[i]);
    dev_probs[i] = Up(probs[i]);
    dev_dq[i] = Up(dq[i]);
    dev_dk[i] = Up(dk[i]);
    dev_dv[i] = Up(dv[i]);
    hs[i] = {Q[i].data(), K[i].data(), V[i].data(), out[i].data(), probs[i].data(), sp.n_q, sp.n_kv, sp.q_pos0};
    ds[i] = {Up(Q[i]), Up(K[i]), Up(V[i]), dev_out[i], dev_probs[i], sp.n_q, sp.n_kv, sp.q_pos0};
    ds_noprobs[i] = ds[i];
    ds_noprobs[i].out = dev_out2[i];
    ds_noprobs[i].probs = nullptr;
    hg[i] = {DO[i].data(), dq[i].data(), dk[i].data(), dv[i].data()};
    dg[i] = {Up(DO[i]), dev_dq[i], dev_dk[i], dev_dv[i]};
  }
  cpu_->AttentionForward(hs.data(), n, s);
  cpu_->AttentionBackward(hs.data(), hg.data(), n, s);
  fp32_->AttentionForward(ds.data(), n, s);
  fp32_->AttentionForward(ds_noprobs.data(), n, s);  // the decode / no-saved-softmax path
  fp32_->AttentionBackward(ds.data(), dg.data(), n, s);
  for (int64_t i = 0; i < n; ++i) {
    SCOPED_TRACE("sequence " + std::to_string(i));
    // Only the written columns of the strided output rows are compared (padding stays 0 on both).
    EXPECT_CLOSE(Down(dev_out[i], out[i].size()), out[i], 1e-5);
    EXPECT_CLOSE(Down(dev_out2[i], out[i].size()), out[i], 1e-5);
    EXPECT_CLOSE(Down(dev_probs[i], probs[i].size()), probs[i], 1e-5);
    EXPECT_CLOSE(Down(dev_dq[i], dq[i].size()), dq[i], 1e-4);
    EXPECT_CLOSE(Down(dev_dk[i], dk[i].size()), dk[i], 1e-4);
    EXPECT_CLOSE(Down(dev_dv[i], dv[i].size()), dv[i], 1e-4);
  }
}

TEST_F(CudaOps, EmbeddingGatherScatterWithRepeats) {
  const int64_t Vocab = 50, C = 70, N = 33;
  std::vector<int32_t> ids(N);
  for (int64_t n = 0; n < N; ++n) ids[n] = static_cast<int32_t>((n * 13) % 7 + (n % 3) * 20);  // repeats
  Vec table = Random(Vocab * C, rng_), dout = Random(N * C, rng_), scale = Random(N, rng_), dtab0 = Random(Vocab * C, rng_);
  Vec out(N * C), dtab = dtab0, scat = dtab0;
  cpu_->EmbeddingForward(out.data(), table.data(), ids.data(), N, C);
  cpu_->EmbeddingBackward(dtab.data(), dout.data(), ids.data(), N, C);
  cpu_->ScatterAddRows(scat.data(), dout.data(), ids.data(), scale.data(), N, C);
  float *dT = Up(table), *dO = Up(Vec(N * C)), *dG = Up(Vec(N * C)), *dD = Up(dout), *dS = Up(scale),
        *gT = Up(dtab0), *gS = Up(dtab0);
  int32_t* dI = UpI(ids);
  fp32_->EmbeddingForward(dO, dT, dI, N, C);
  fp32_->GatherRows(dG, dT, dI, N, C);
  fp32_->EmbeddingBackward(gT, dD, dI, N, C);
  fp32_->ScatterAddRows(gS, dD, dI, dS, N, C);
  EXPECT_EQ(Down(dO, out.size()), out);
  EXPECT_EQ(Down(dG, out.size()), out);
  EXPECT_CLOSE(Down(gT, dtab.size()), dtab, 1e-5);
  EXPECT_CLOSE(Down(gS, scat.size()), scat, 1e-5);
}

TEST_F(CudaOps, LogProbEntropyForwardBackward) {
  const int64_t N = 9, V = 5003;
  Vec z = Random(N * V, rng_, 3.f), dlogp = Random(N, rng_), dent = Random(N, rng_);
  std::vector<int32_t> t(N);
  for (int64_t n = 0; n < N; ++n) t[n] = n == 4 ? -1 : static_cast<int32_t>((n * 977) % V);
  dlogp[6] = 0.f, dent[6] = 0.f;  // a row with no gradient writes zeros
  Vec logp(N), ent(N), dz(N * V);
  cpu_->LogProbForward(logp.data(), ent.data(), z.data(), t.data(), N, V);
  cpu_->LogProbBackward(dz.data(), dlogp.data(), dent.data(), z.data(), t.data(), N, V);
  float *dZ = Up(z), *dL = Up(Vec(N)), *dE = Up(Vec(N)), *gL = Up(dlogp), *gE = Up(dent), *gZ = Up(Vec(N * V, 9.f));
  int32_t* dT = UpI(t);
  fp32_->LogProbForward(dL, dE, dZ, dT, N, V);
  fp32_->LogProbBackward(gZ, gL, gE, dZ, dT, N, V);
  // Both sides sum 5003 fp32 terms, in different orders (the CPU left to right,
  // the GPU in per-thread partials and a tree), and the entropy lse - E[z]
  // cancels: ~1e-5 of its scale apart (seen 1.1e-5 under the emulation).
  EXPECT_CLOSE(Down(dL, N), logp, 1e-5);
  EXPECT_CLOSE(Down(dE, N), ent, 5e-5);
  EXPECT_CLOSE(Down(gZ, dz.size()), dz, 5e-5);
  // logp-only backward (no entropy gradient).
  Vec dz2(N * V);
  cpu_->LogProbBackward(dz2.data(), dlogp.data(), nullptr, z.data(), t.data(), N, V);
  fp32_->LogProbBackward(gZ, gL, nullptr, dZ, dT, N, V);
  EXPECT_CLOSE(Down(gZ, dz2.size()), dz2, 1e-5);
}

TEST_F(CudaOps, AxpyAndParallelFor) {
  const int64_t n = 100003;
  Vec y = Random(n, rng_), x = Random(n, rng_), want = y;
  cpu_->Axpy(want.data(), x.data(), -0.25f, n);
  float *dy = Up(y), *dx = Up(x);
  fp32_->Axpy(dy, dx, -0.25f, n);
  EXPECT_CLOSE(Down(dy, n), want, 1e-6);
  int64_t sum = 0;
  fp32_->ParallelFor(10, [](void* ctx, int64_t i) { *static_cast<int64_t*>(ctx) += i; }, &sum);
  EXPECT_EQ(sum, 45);
}

TEST_F(CudaOps, AdamWSumSquaresScaleMatchCpu) {
  const int64_t n = 40999;
  Vec w = Random(n, rng_), g = Random(n, rng_), m(n, 0.f), v(n, 0.f);
  Vec w2 = w, m2 = m, v2 = v;
  float *dw = Up(w), *dm = Up(m), *dv = Up(v), *dg = Up(g);
  float *dw2 = Up(w2), *dm2 = Up(m2), *dv2 = Up(v2);
  for (int64_t step = 1; step <= 3; ++step) {
    const float bc1 = 1.f - static_cast<float>(std::pow(0.9, step)), bc2 = 1.f - static_cast<float>(std::pow(0.95, step));
    cpu_->AdamW(w.data(), m.data(), v.data(), g.data(), n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, bc1, bc2);
    fp32_->AdamW(dw, dm, dv, dg, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, bc1, bc2);
    DeviceAdamWArgs a;  // the older host wrapper: the same kernel
    a.lr = 1e-2f, a.beta1 = 0.9f, a.beta2 = 0.95f, a.eps = 1e-8f, a.weight_decay = 0.1f, a.step = step;
    DeviceAdamWStep(dw2, dm2, dv2, dg, n, a);
  }
  EXPECT_CLOSE(Down(dw, n), w, 1e-5);
  EXPECT_CLOSE(Down(dm, n), m, 1e-5);
  EXPECT_CLOSE(Down(dv, n), v, 1e-5);
  EXPECT_CLOSE(Down(dw2, n), w, 1e-5);
  const double want = cpu_->SumSquares(g.data(), n);
  EXPECT_NEAR(fp32_->SumSquares(dg, n), want, want * 1e-9);
  EXPECT_NEAR(fp32_->SumSquares(dg, 1), static_cast<double>(g[0]) * g[0], 1e-9);
  EXPECT_EQ(fp32_->SumSquares(dg, 0), 0.0);
  auto ss = DeviceSumSquares(dg, n);
  ASSERT_TRUE(ss.ok()) << ss.status();
  EXPECT_NEAR(*ss, want, want * 1e-4);
  cpu_->Scale(g.data(), -0.37f, n);
  fp32_->Scale(dg, -0.37f, n);
  EXPECT_CLOSE(Down(dg, n), g, 1e-7);
}

// ---- backend memory ----

template <typename T>
Buf<T> ToBackend(Backend* b, const std::vector<T>& v, const char* what = "test buffer") {
  Buf<T> x(b, what);
  x.upload(v.data(), static_cast<int64_t>(v.size()));
  return x;
}
template <typename T>
std::vector<T> ToHost(Backend* b, const T* p, int64_t n) {
  std::vector<T> v(static_cast<size_t>(n));
  b->Download(v.data(), p, n * static_cast<int64_t>(sizeof(T)));
  return v;
}

TEST_F(CudaOps, MemoryOpsMatchCpu) {
  Backend* d = fp32_.get();
  EXPECT_FALSE(d->host_memory());
  EXPECT_TRUE(cpu_->host_memory());
  const int64_t rows = 37, cols = 29, lds = 41, ldd = 33;
  Vec src = Random(rows * lds, rng_), dst0 = Random(rows * ldd, rng_);
  for (bool acc : {false, true}) {
    Vec want = dst0;
    cpu_->Copy2D(want.data(), ldd, src.data(), lds, rows, cols, acc);
    Buf<float> s = ToBackend(d, src), t = ToBackend(d, dst0);
    d->Copy2D(t.data(), ldd, s.data(), lds, rows, cols, acc);
    EXPECT_EQ(ToHost(d, t.data(), t.size()), want) << "Copy2D accumulate=" << acc;
  }
  Buf<float> a = ToBackend(d, src);
  Buf<float> b(d, "copy");
  b.resize(a.size());
  d->Copy(b.data(), a.data(), a.size() * 4);
  EXPECT_EQ(ToHost(d, b.data(), b.size()), src);
  Buf<float> c = b;  // Buf copies on the backend
  EXPECT_EQ(ToHost(d, c.data(), c.size()), src);
  c.resize(c.size() * 3);  // growth keeps the contents
  EXPECT_EQ(ToHost(d, c.data(), static_cast<int64_t>(src.size())), src);
  for (float value : {0.f, -2.5f}) {
    Buf<float> f(d, "fill");
    f.assign(100003, value);
    EXPECT_EQ(ToHost(d, f.data(), f.size()), Vec(100003, value));
  }
  for (int32_t value : {0, -7}) {
    Buf<int32_t> f(d, "fill i32");
    f.assign(4097, value);
    EXPECT_EQ(ToHost(d, f.data(), f.size()), std::vector<int32_t>(4097, value));
  }
  d->Synchronize();
}

TEST_F(CudaOps, CachingAllocatorReusesFreedBlocks) {
  Backend* d = fp32_.get();
  auto before = CudaBackendMemoryStats(d);
  ASSERT_TRUE(before.ok()) << before.status();
  void* p = d->Alloc(3000 * 4, "a");
  void* q = d->Alloc(100, "b");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  EXPECT_NE(p, q);
  auto mid = CudaBackendMemoryStats(d);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(mid->in_use_bytes - before->in_use_bytes, 16384 + 512) << "rounded to powers of two >= 512";
  d->Free(p);
  void* p2 = d->Alloc(12001, "a again");  // same rounded size: the cached block
  EXPECT_EQ(p2, p);
  auto after = CudaBackendMemoryStats(d);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->cuda_mallocs, mid->cuda_mallocs) << "a cache hit calls no cudaMalloc";
  d->Free(p2);
  d->Free(q);
  EXPECT_EQ(CudaBackendMemoryStats(d)->in_use_bytes, before->in_use_bytes);
  EXPECT_GT(GetDeviceMemoryStats().backend_cached_bytes, 0);
  EXPECT_TRUE(ReleaseCudaBackendCache(d).ok());
  EXPECT_EQ(CudaBackendMemoryStats(d)->cached_bytes, 0);
  EXPECT_EQ(CudaBackendMemoryStats(cpu_).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(cuda::CachingAllocator::RoundSize(1), 512u);
  EXPECT_EQ(cuda::CachingAllocator::RoundSize(513), 1024u);
  EXPECT_EQ(cuda::CachingAllocator::RoundSize((1 << 20) + 1), size_t{2} << 20);
}

TEST_F(CudaOps, HugeAllocThrowsOutOfMemoryNamingTheBuffer) {
  try {
    fp32_->Alloc(int64_t{1} << 52, "huge kv cache");
    FAIL() << "a 4 PiB allocation succeeded";
  } catch (const OutOfMemory& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("huge kv cache"), std::string::npos) << m;
    EXPECT_NE(m.find("asked for 4503599627370496 bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("free "), std::string::npos) << m;
    EXPECT_NE(m.find("out of memory"), std::string::npos) << m;
  }
  // The backend still works afterwards.
  Buf<float> ok = ToBackend(fp32_.get(), Vec{1.f, 2.f});
  EXPECT_EQ(ToHost(fp32_.get(), ok.data(), 2), (Vec{1.f, 2.f}));
}

// ---- MoE routing ----

TEST_F(CudaOps, RouterScoresForwardBackward) {
  for (int64_t E : {8, 64, 256}) {
    for (bool sigmoid : {true, false}) {
      const int64_t N = 37;
      Vec z = Random(N * E, rng_, 2.f), ds = Random(N * E, rng_), s(N * E), dz(N * E);
      cpu_->RouterScores(s.data(), z.data(), N, E, sigmoid);
      cpu_->RouterScoresBackward(dz.data(), ds.data(), s.data(), N, E, sigmoid);
      Buf<float> gz = ToBackend(fp32_.get(), z), gds = ToBackend(fp32_.get(), ds), gs(fp32_.get()),
                 gdz(fp32_.get());
      gs.resize(N * E);
      gdz.resize(N * E);
      fp32_->RouterScores(gs.data(), gz.data(), N, E, sigmoid);
      fp32_->RouterScoresBackward(gdz.data(), gds.data(), gs.data(), N, E, sigmoid);
      EXPECT_CLOSE(ToHost(fp32_.get(), gs.data(), N * E), s, 1e-6) << " E=" << E << " sigmoid=" << sigmoid;
      EXPECT_CLOSE(ToHost(fp32_.get(), gdz.data(), N * E), dz, 1e-6) << " E=" << E << " sigmoid=" << sigmoid;
    }
  }
}

// Scores on a coarse grid, so ties (within and across groups) are common:
// the picks must be the CPU's exactly (ties: lower index first).
Vec GridScores(size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(0, 15);
  Vec v(n);
  for (auto& x : v) x = static_cast<float>(d(rng)) / 16.f;
  return v;
}

struct RouteCase {
  RouteShape r;
  bool bias = false;
  bool ties = false;
};

TEST_F(CudaOps, RouterTopKAndBackwardMatchCpuExactly) {
  std::vector<RouteCase> cases;
  {
    RouteCase c;  // DeepSeek-V3: 256 experts in 8 groups, top-4 groups, 8 per token, bias, normalised, scaled
    c.r.E = 256, c.r.K = 8, c.r.n_group = 8, c.r.topk_group = 4, c.r.normalize = true, c.r.scale = 2.5f;
    c.bias = true;
    cases.push_back(c);
    c.ties = true;
    cases.push_back(c);
  }
  {
    RouteCase c;  // Qwen3-MoE: 128 experts, 8 per token, no groups, normalised
    c.r.E = 128, c.r.K = 8, c.r.normalize = true;
    cases.push_back(c);
    c.ties = true;
    c.r.normalize = false;
    c.r.scale = 0.5f;
    cases.push_back(c);
  }
  {
    RouteCase c;  // small: 6 of 40 experts in 4 groups, one group kept, unnormalised
    c.r.E = 40, c.r.K = 6, c.r.n_group = 4, c.r.topk_group = 1;
    c.ties = true;
    cases.push_back(c);
  }
  {
    RouteCase c;  // K = E: every expert, in descending order
    c.r.E = 8, c.r.K = 8, c.r.normalize = true;
    cases.push_back(c);
  }
  for (const RouteCase& c : cases) {
    SCOPED_TRACE("E=" + std::to_string(c.r.E) + " K=" + std::to_string(c.r.K) + " groups=" +
                 std::to_string(c.r.n_group) + " ties=" + std::to_string(c.ties));
    const int64_t N = 301, E = c.r.E, K = c.r.K;
    Vec s = c.ties ? GridScores(N * E, rng_) : Random(N * E, rng_);
    if (!c.ties)
      for (auto& x : s) x = 1.f / (1.f + std::exp(-x));
    Vec bias = c.ties ? GridScores(E, rng_) : Random(E, rng_, 0.1f);
    std::vector<int32_t> idx(N * K);
    Vec w(N * K), dw = Random(N * K, rng_), ds0 = Random(N * E, rng_), ds = ds0;
    const float* hb = c.bias ? bias.data() : nullptr;
    cpu_->RouterTopK(idx.data(), w.data(), s.data(), hb, N, c.r);
    cpu_->RouterTopKBackward(ds.data(), dw.data(), s.data(), idx.data(), N, c.r);
    Backend* d = fp32_.get();
    Buf<float> gs = ToBackend(d, s), gb = ToBackend(d, bias), gw(d), gdw = ToBackend(d, dw), gds = ToBackend(d, ds0);
    Buf<int32_t> gi(d);
    gi.resize(N * K);
    gw.resize(N * K);
    d->RouterTopK(gi.data(), gw.data(), gs.data(), c.bias ? gb.data() : nullptr, N, c.r);
    d->RouterTopKBackward(gds.data(), gdw.data(), gs.data(), gi.data(), N, c.r);
    EXPECT_EQ(ToHost(d, gi.data(), N * K), idx);
    EXPECT_CLOSE(ToHost(d, gw.data(), N * K), w, 1e-6);
    EXPECT_CLOSE(ToHost(d, gds.data(), N * E), ds, 1e-5);
    // Routing replay: the combine weights of given picks (each token's reversed).
    std::vector<int32_t> rev = idx;
    for (int64_t n = 0; n < N; ++n) std::reverse(rev.begin() + n * K, rev.begin() + (n + 1) * K);
    Vec rw(N * K);
    cpu_->RouterGateWeights(rw.data(), s.data(), rev.data(), N, c.r);
    Buf<int32_t> grev(d);
    grev.upload(rev.data(), N * K);
    d->RouterGateWeights(gw.data(), gs.data(), grev.data(), N, c.r);
    EXPECT_CLOSE(ToHost(d, gw.data(), N * K), rw, 1e-6);
  }
}

TEST_F(CudaOps, MoePermuteIsTheCpusStableGrouping) {
  for (int64_t E : {1, 7, 64, 256}) {
    const int64_t N = 513, K = std::min<int64_t>(E, 8);
    // Distinct experts per token (as top-k gives), skewed so some experts get none.
    std::vector<int32_t> idx(N * K);
    for (int64_t n = 0; n < N; ++n) {
      std::vector<int32_t> all(E);
      for (int64_t e = 0; e < E; ++e) all[e] = static_cast<int32_t>(e);
      std::shuffle(all.begin(), all.begin() + std::max<int64_t>(K, E / 2), rng_);
      for (int64_t k = 0; k < K; ++k) idx[n * K + k] = all[k];
    }
    std::vector<int64_t> off(E + 1), goff(E + 1, -1);
    std::vector<int32_t> tok(N * K), slot(N * K);
    cpu_->MoePermute(off.data(), tok.data(), slot.data(), idx.data(), N, K, E);
    Backend* d = fp32_.get();
    Buf<int32_t> gi = ToBackend(d, idx), gt(d), gsl(d);
    gt.resize(N * K);
    gsl.resize(N * K);
    d->MoePermute(goff.data(), gt.data(), gsl.data(), gi.data(), N, K, E);
    EXPECT_EQ(goff, off) << "E=" << E;
    EXPECT_EQ(ToHost(d, gt.data(), N * K), tok) << "E=" << E;
    EXPECT_EQ(ToHost(d, gsl.data(), N * K), slot) << "E=" << E;
  }
}

TEST_F(CudaOps, MoeCombineBackwardMatchesCpu) {
  const int64_t N = 45, K = 3, E = 9, D = 300, R = N * K;
  std::vector<int32_t> idx(R);
  for (int64_t r = 0; r < R; ++r) idx[r] = static_cast<int32_t>((r * 5 + r / K) % E);
  std::vector<int64_t> off(E + 1);
  std::vector<int32_t> tok(R), slot(R);
  cpu_->MoePermute(off.data(), tok.data(), slot.data(), idx.data(), N, K, E);
  Vec dout = Random(N * D, rng_), y = Random(R * D, rng_), rw = Random(R, rng_), dy(R * D), dws(R);
  cpu_->MoeCombineBackward(dy.data(), dws.data(), dout.data(), y.data(), rw.data(), tok.data(), slot.data(), R, D);
  Backend* d = fp32_.get();
  Buf<float> gdo = ToBackend(d, dout), gy = ToBackend(d, y), grw = ToBackend(d, rw), gdy(d), gdws(d);
  Buf<int32_t> gt = ToBackend(d, tok), gsl = ToBackend(d, slot);
  gdy.resize(R * D);
  gdws.resize(R);
  d->MoeCombineBackward(gdy.data(), gdws.data(), gdo.data(), gy.data(), grw.data(), gt.data(), gsl.data(), R, D);
  EXPECT_EQ(ToHost(d, gdy.data(), R * D), dy);
  EXPECT_CLOSE(ToHost(d, gdws.data(), R), dws, 1e-5);
}

// ---- sampling ----

TEST_F(CudaOps, SampleRowsMatchesCpuOnALargeVocabulary) {
  const int64_t n = 6, V = 151936;
  Vec logits = Random(n * V, rng_, 3.f);
  // Ties: row 0 has two equal maxima (greedy takes the lower index); row 1 is on
  // a coarse grid (many equal logits around the top-k / top-p cut).
  logits[0 * V + 777] = 40.f, logits[0 * V + 150000] = 40.f;
  for (int64_t v = 0; v < V; ++v) logits[1 * V + v] = std::round(logits[1 * V + v] * 2.f) / 2.f;
  logits[2 * V + 5] = -0.f, logits[2 * V + 6] = 0.f;
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  struct Case { const char* name; SampleParams p; };
  std::vector<Case> cases;
  {
    SampleParams p;
    p.greedy = true;
    cases.push_back({"greedy", p});
  }
  {
    SampleParams p;
    cases.push_back({"T=1", p});
    p.temperature = 0.7f;
    cases.push_back({"T=0.7", p});
    p.top_k = 50;
    cases.push_back({"T=0.7 top_k=50", p});
    p.top_k = 0, p.top_p = 0.9f;
    cases.push_back({"T=0.7 top_p=0.9", p});
    p.top_k = 40, p.top_p = 0.8f, p.temperature = 1.3f;
    cases.push_back({"T=1.3 top_k=40 top_p=0.8", p});
    p.top_k = 1, p.top_p = 1.f;
    cases.push_back({"top_k=1", p});
    p.top_k = 0, p.top_p = 1e-6f;
    cases.push_back({"top_p=1e-6", p});
  }
  Backend* d = fp32_.get();
  Buf<float> gl = ToBackend(d, logits);
  for (const Case& c : cases) {
    for (int rep = 0; rep < 3; ++rep) {
      SCOPED_TRACE(std::string(c.name) + " rep " + std::to_string(rep));
      std::vector<double> u(n);
      for (auto& x : u) x = ud(rng_);
      if (rep == 2) u[0] = 0.0, u[1] = 0.999999999;
      std::vector<int32_t> tok(n);
      Vec lp(n), slp(n);
      cpu_->SampleRows(tok.data(), lp.data(), slp.data(), logits.data(), u.data(), n, V, c.p);
      Buf<int32_t> gt(d);
      Buf<float> glp(d), gslp(d);
      gt.resize(n), glp.resize(n), gslp.resize(n);
      d->SampleRows(gt.data(), glp.data(), gslp.data(), gl.data(), u.data(), n, V, c.p);
      EXPECT_EQ(ToHost(d, gt.data(), n), tok);
      EXPECT_CLOSE(ToHost(d, glp.data(), n), lp, 1e-5);
      EXPECT_CLOSE(ToHost(d, gslp.data(), n), slp, 1e-5);
      if (c.p.greedy) {
        EXPECT_EQ(tok[0], 777) << "greedy ties go to the lower index";
        break;
      }
    }
  }
}

}  // namespace
}  // namespace zerorl::model::ops
