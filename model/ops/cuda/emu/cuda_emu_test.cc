// The CUDA kernels of the routing, sampling and memory ops, run on the CPU
// emulation of the CUDA execution model (shim.h; sources rewritten by
// gen_emu.py at build time) against the CPU backend: the same checks as
// cuda_ops_test's device tests for these ops (exact top-k / permute indices
// with ties and group limits, sampled tokens with top-k / top-p on a large
// vocabulary), but runnable in CI and on machines without a GPU. Logic only:
// speed, occupancy and the hardware memory model are the GPU tests' job.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>

#include "emu_decls.h"

namespace zerorl::model::ops::cuda {
namespace {

using Vec = std::vector<float>;

double Err(const Vec& got, const Vec& want) {
  double mx = 1, e = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    mx = std::max(mx, static_cast<double>(std::fabs(want[i])));
    e = std::max(e, static_cast<double>(std::fabs(got[i] - want[i])));
  }
  return e / mx;
}

class CudaEmu : public ::testing::Test {
 protected:
  Vec Random(size_t n, float s = 1.f) {
    std::normal_distribution<float> d(0, s);
    Vec v(n);
    for (auto& x : v) x = d(rng_);
    return v;
  }
  // On a 1/16 grid: many exact ties.
  Vec Grid(size_t n) {
    std::uniform_int_distribution<int> d(0, 15);
    Vec v(n);
    for (auto& x : v) x = static_cast<float>(d(rng_)) / 16.f;
    return v;
  }
  std::mt19937 rng_{1234};
  Backend* cpu_ = CpuBackend();
};

TEST_F(CudaEmu, MemoryKernels) {
  Vec x(1000, 3.f);
  LaunchFill(x.data(), -2.5f, 999, nullptr);
  EXPECT_EQ(x[998], -2.5f);
  EXPECT_EQ(x[999], 3.f);
  std::vector<int32_t> xi(77, 1);
  LaunchFillI32(xi.data(), -7, 77, nullptr);
  EXPECT_EQ(xi, std::vector<int32_t>(77, -7));
  const int64_t rows = 37, cols = 29, lds = 41, ldd = 33;
  Vec src = Random(rows * lds), dst = Random(rows * ldd), want = dst;
  cpu_->Copy2D(want.data(), ldd, src.data(), lds, rows, cols, true);
  LaunchAddCopy2D(dst.data(), ldd, src.data(), lds, rows, cols, nullptr);
  EXPECT_EQ(dst, want);
  Vec g = Random(3001);
  std::vector<double> part(SumSquaresBlocks(3001));
  LaunchSumSquaresPartials(part.data(), g.data(), 3001, nullptr);
  double s = 0;
  for (double p : part) s += p;
  const double w = cpu_->SumSquares(g.data(), 3001);
  EXPECT_NEAR(s, w, 1e-9 * w);
}

TEST_F(CudaEmu, RouterScoresForwardBackward) {
  for (int64_t E : {8, 64, 256})
    for (bool sig : {true, false}) {
      const int64_t N = 19;
      Vec z = Random(N * E, 2.f), ds = Random(N * E), s(N * E), dz(N * E), gs(N * E), gdz(N * E);
      cpu_->RouterScores(s.data(), z.data(), N, E, sig);
      cpu_->RouterScoresBackward(dz.data(), ds.data(), s.data(), N, E, sig);
      LaunchRouterScores(gs.data(), z.data(), N, E, sig, nullptr);
      LaunchRouterScoresBackward(gdz.data(), ds.data(), s.data(), N, E, sig, nullptr);
      EXPECT_LT(Err(gs, s), 1e-6) << "E=" << E << " sigmoid=" << sig;
      EXPECT_LT(Err(gdz, dz), 1e-6) << "E=" << E << " sigmoid=" << sig;
    }
}

TEST_F(CudaEmu, RouterTopKMatchesCpuExactly) {
  struct Case {
    RouteShape r;
    bool bias = false, ties = false;
  };
  std::vector<Case> cases;
  auto add = [&](int64_t E, int64_t K, int64_t G, int64_t TG, bool norm, float scale, bool bias, bool ties) {
    Case c;
    c.r.E = E, c.r.K = K, c.r.n_group = G, c.r.topk_group = TG, c.r.normalize = norm, c.r.scale = scale;
    c.bias = bias, c.ties = ties;
    cases.push_back(c);
  };
  add(256, 8, 8, 4, true, 2.5f, true, false);  // DeepSeek-V3
  add(256, 8, 8, 4, true, 2.5f, true, true);
  add(128, 8, 1, 1, true, 1.f, false, false);  // Qwen3-MoE
  add(128, 8, 1, 1, false, .5f, false, true);
  add(40, 6, 4, 1, false, 1.f, false, true);   // one group kept
  add(8, 8, 1, 1, true, 1.f, false, false);    // K = E
  add(40, 3, 40, 5, false, 1.f, true, true);   // one expert per group (top-2 sum = -inf + x)
  for (const Case& c : cases) {
    SCOPED_TRACE("E=" + std::to_string(c.r.E) + " K=" + std::to_string(c.r.K) + " groups=" +
                 std::to_string(c.r.n_group) + " ties=" + std::to_string(c.ties));
    const int64_t N = 19, E = c.r.E, K = c.r.K;
    Vec s = c.ties ? Grid(N * E) : Random(N * E);
    if (!c.ties)
      for (auto& x : s) x = 1.f / (1.f + std::exp(-x));
    Vec bias = c.ties ? Grid(E) : Random(E, .1f);
    std::vector<int32_t> idx(N * K), gidx(N * K);
    Vec w(N * K), gw(N * K), dw = Random(N * K), ds = Random(N * E), gds = ds;
    const float* b = c.bias ? bias.data() : nullptr;
    cpu_->RouterTopK(idx.data(), w.data(), s.data(), b, N, c.r);
    cpu_->RouterTopKBackward(ds.data(), dw.data(), s.data(), idx.data(), N, c.r);
    LaunchRouterTopK(gidx.data(), gw.data(), s.data(), b, N, c.r, nullptr);
    LaunchRouterTopKBackward(gds.data(), dw.data(), s.data(), gidx.data(), N, c.r, nullptr);
    EXPECT_EQ(gidx, idx);
    EXPECT_LT(Err(gw, w), 1e-6);
    EXPECT_LT(Err(gds, ds), 1e-5);
    // Routing replay: the weights of given picks. The CPU's own picks give
    // RouterTopK's weights bit for bit; other picks (each token's reversed)
    // agree between the kernel and the CPU.
    Vec rw(N * K), grw(N * K);
    cpu_->RouterGateWeights(rw.data(), s.data(), idx.data(), N, c.r);
    EXPECT_EQ(rw, w);
    std::vector<int32_t> rev = idx;
    for (int64_t n = 0; n < N; ++n) std::reverse(rev.begin() + n * K, rev.begin() + (n + 1) * K);
    cpu_->RouterGateWeights(rw.data(), s.data(), rev.data(), N, c.r);
    LaunchRouterGateWeights(grw.data(), s.data(), rev.data(), N, c.r, nullptr);
    EXPECT_LT(Err(grw, rw), 1e-6);
  }
}

TEST_F(CudaEmu, MoePermuteIsStableLikeTheCpu) {
  for (int64_t E : {1, 7, 64}) {
    const int64_t N = 97, K = std::min<int64_t>(E, 8), R = N * K;
    std::vector<int32_t> idx(R);
    for (int64_t n = 0; n < N; ++n) {
      std::vector<int32_t> all(E);
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.begin() + std::max<int64_t>(K, E / 2), rng_);  // some experts get none
      for (int64_t k = 0; k < K; ++k) idx[n * K + k] = all[k];
    }
    std::vector<int64_t> off(E + 1), goff(E + 1, 0);
    std::vector<int32_t> tok(R), slot(R), gtok(R, -1), gslot(R, -1), counts(E);
    cpu_->MoePermute(off.data(), tok.data(), slot.data(), idx.data(), N, K, E);
    LaunchExpertCount(counts.data(), idx.data(), R, E, nullptr);
    LaunchExpertPlace(gtok.data(), gslot.data(), counts.data(), idx.data(), R, K, E, nullptr);
    for (int64_t e = 0; e < E; ++e) goff[e + 1] = goff[e] + counts[e];
    EXPECT_EQ(goff, off) << "E=" << E;
    EXPECT_EQ(gtok, tok) << "E=" << E;
    EXPECT_EQ(gslot, slot) << "E=" << E;
  }
}

TEST_F(CudaEmu, MoeCombineBackward) {
  const int64_t N = 15, K = 3, E = 9, D = 100, R = N * K;
  std::vector<int32_t> idx(R);
  for (int64_t r = 0; r < R; ++r) idx[r] = static_cast<int32_t>((r * 5 + r / K) % E);
  std::vector<int64_t> off(E + 1);
  std::vector<int32_t> tok(R), slot(R);
  cpu_->MoePermute(off.data(), tok.data(), slot.data(), idx.data(), N, K, E);
  Vec dout = Random(N * D), y = Random(R * D), rw = Random(R), dy(R * D), dws(R), gdy(R * D), gdws(R);
  cpu_->MoeCombineBackward(dy.data(), dws.data(), dout.data(), y.data(), rw.data(), tok.data(), slot.data(), R, D);
  LaunchMoeCombineBackward(gdy.data(), gdws.data(), dout.data(), y.data(), rw.data(), tok.data(), slot.data(), R, D,
                           nullptr);
  EXPECT_EQ(gdy, dy);
  EXPECT_LT(Err(gdws, dws), 1e-5);
}

TEST_F(CudaEmu, SampleRowsMatchesCpu) {
  const int64_t n = 3, V = 5003;
  Vec logits = Random(n * V, 3.f);
  logits[777] = 40.f, logits[4000] = 40.f;  // greedy tie: the lower index
  for (int64_t v = 0; v < V; ++v) logits[V + v] = std::round(logits[V + v] * 2.f) / 2.f;  // ties at the cuts
  logits[2 * V + 5] = -0.f, logits[2 * V + 6] = 0.f;
  std::vector<std::pair<std::string, SampleParams>> cases;
  SampleParams p;
  p.greedy = true;
  cases.push_back({"greedy", p});
  p = SampleParams();
  cases.push_back({"T=1", p});
  p.temperature = .7f, p.top_k = 50;
  cases.push_back({"T=0.7 top_k=50", p});
  p.top_k = 0, p.top_p = .9f;
  cases.push_back({"T=0.7 top_p=0.9", p});
  p.top_k = 40, p.top_p = .8f, p.temperature = 1.3f;
  cases.push_back({"T=1.3 top_k=40 top_p=0.8", p});
  p.top_k = 0, p.top_p = 1e-6f, p.temperature = 1.f;
  cases.push_back({"top_p=1e-6", p});
  std::uniform_real_distribution<double> ud(0, 1);
  for (const auto& [name, sp] : cases)
    for (int rep = 0; rep < 2; ++rep) {
      SCOPED_TRACE(name + " rep " + std::to_string(rep));
      std::vector<double> u(n);
      for (auto& x : u) x = ud(rng_);
      if (rep == 1) u[0] = 0.0, u[1] = 0.999999999;
      std::vector<int32_t> tok(n), gtok(n);
      Vec lp(n), slp(n), glp(n), gslp(n);
      cpu_->SampleRows(tok.data(), lp.data(), slp.data(), logits.data(), u.data(), n, V, sp);
      std::vector<double> mx(n), lse(n);
      Vec ki(n * V), ko(n * V);
      std::vector<int32_t> vi(n * V), vo(n * V), offs(n + 1);
      char temp[16];
      SampleScratch s;
      s.row_mx = mx.data(), s.row_lse = lse.data(), s.keys_in = ki.data(), s.keys_out = ko.data();
      s.vals_in = vi.data(), s.vals_out = vo.data(), s.offsets = offs.data(), s.temp = temp;
      s.temp_bytes = SampleSortTempBytes(n, V);
      LaunchSampleRows(gtok.data(), glp.data(), gslp.data(), logits.data(), u.data(), n, V, sp, s, nullptr);
      EXPECT_EQ(gtok, tok);
      EXPECT_LT(Err(glp, lp), 1e-5);
      EXPECT_LT(Err(gslp, slp), 1e-5);
      if (sp.greedy) {
        EXPECT_EQ(gtok[0], 777);
        break;
      }
    }
}

}  // namespace
}  // namespace zerorl::model::ops::cuda
