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
#include "model/model.h"
#include "model/ops/cuda/adamw.h"
#include "model/ops/cuda/cuda_backend.h"
#include "model/ops/cuda/device_memory.h"
#include "model/ops/ops.h"
#include "model/optimizer.h"

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
  const int rc = BenchModelCuda(ModelConfig{}, 128, 4, 64);
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
  EXPECT_CLOSE(Down(dL, N), logp, 1e-5);
  EXPECT_CLOSE(Down(dE, N), ent, 1e-5);
  EXPECT_CLOSE(Down(gZ, dz.size()), dz, 1e-5);
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

TEST_F(CudaOps, AdamWMatchesHostOptimizer) {
  const int64_t n = 4099;
  Vec w = Random(n, rng_), g = Random(n, rng_), w_host = w;
  AdamWConfig cfg;
  cfg.weight_decay = 0.1f;
  AdamW host(cfg);
  TensorRef ref;
  ref.name = "w";
  ref.shape = {n, 1};  // a matrix: weight decay applies
  ref.data = w_host.data();
  ref.grad = g.data();
  ref.size = n;
  float *dw = Up(w), *dm = Up(Vec(n, 0.f)), *dv = Up(Vec(n, 0.f)), *dg = Up(g);
  for (int64_t step = 1; step <= 3; ++step) {
    ASSERT_TRUE(host.Step({ref}, 1e-2f).ok());
    DeviceAdamWArgs a;
    a.lr = 1e-2f, a.beta1 = cfg.beta1, a.beta2 = cfg.beta2, a.eps = cfg.eps, a.weight_decay = cfg.weight_decay;
    a.step = step;
    DeviceAdamWStep(dw, dm, dv, dg, n, a);
  }
  EXPECT_CLOSE(Down(dw, n), w_host, 1e-5);
  auto ss = DeviceSumSquares(dg, n);
  ASSERT_TRUE(ss.ok()) << ss.status();
  double want = 0;
  for (float v : g) want += static_cast<double>(v) * v;
  EXPECT_NEAR(*ss, want, want * 1e-4);
}

}  // namespace
}  // namespace zerorl::model::ops
