// A small CPU emulation of the CUDA execution model, so the logic of the
// CUDA kernels (index math, warp/block collectives, barriers, tie-breaking)
// is checked against the CPU backend on machines without a GPU (CI, the
// 2-core dev box). gen_emu.py rewrites a .cu file into plain C++ on top of
// this header: `__shared__` becomes `static` (blocks run one at a time),
// `extern __shared__` the per-launch dynamic buffer, `K<<<g, b, s, st>>>(...)`
// EmuLaunch(g, b, s, st, K, ...), the cub sort a stable std::sort.
// EmuLaunch runs each block's threads as fibers (ucontext) on the calling
// thread, switching only at barriers: __syncthreads waits for every live
// thread of the block, __syncwarp for every live thread of the warp, and the
// warp shuffles / ballots exchange through per-thread slots between two warp
// barriers. A thread that returns drops out of its barriers (as an exited
// CUDA thread does); a barrier that can never complete aborts with a message.
// Each scheduling round runs a random half of the warps (fixed seed, so runs
// repeat), so warps drift apart by several barriers as on a GPU, and a
// missing barrier shows up as a read of a value not yet written or already
// overwritten (checked: dropping MoePermute's chunk barrier fails the test).
// Not emulated: memory-model subtleties beyond barriers, timing, occupancy,
// register or shared-memory limits (EmuLaunch only checks the 48 KiB dynamic
// shared memory and the block size).
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
using cudaStream_t = void*;
using cudaError_t = int;
constexpr int cudaSuccess = 0;
inline const char* cudaGetErrorString(int) { return "emu"; }
inline int cudaGetLastError() { return 0; }
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
inline dim3 threadIdx, blockIdx, blockDim, gridDim;
inline std::vector<double> g_xchg;  // per-thread exchange slots (8 bytes)
inline std::vector<char> g_dyn_smem;

#if defined(__x86_64__)
extern "C" void zrl_emu_switch(void** save_sp, void* to_sp);  // fiber_switch.cc
#define ZRL_EMU_FAST_SWITCH 1
#endif

namespace emu {
struct Fiber {
  ucontext_t ctx;
  void* sp = nullptr;  // saved stack pointer (fast switch)
  std::vector<char> stack;
  bool done = false;
};
struct Barrier {  // generation counting over the live threads of a group
  int live = 0, arrived = 0;
  long gen = 0;
};
inline ucontext_t g_sched;
inline void* g_sched_sp = nullptr;
inline std::vector<Fiber> g_fibers;
inline int g_cur = 0;
inline Barrier g_block;
inline std::vector<Barrier> g_warps;
inline std::function<void()> g_body;
inline std::mt19937 g_rng(12345);

inline void Yield() {
#ifdef ZRL_EMU_FAST_SWITCH
  zrl_emu_switch(&g_fibers[g_cur].sp, g_sched_sp);
#else
  swapcontext(&g_fibers[g_cur].ctx, &g_sched);
#endif
}
inline void Wait(Barrier& b) {
  const long gen = b.gen;
  if (++b.arrived == b.live) {
    b.arrived = 0;
    ++b.gen;
    return;
  }
  while (b.gen == gen) Yield();
}
inline void Drop(Barrier& b) {
  --b.live;
  if (b.arrived > 0 && b.arrived == b.live) {
    b.arrived = 0;
    ++b.gen;
  }
}
inline void Entry() {
  g_body();
  g_fibers[g_cur].done = true;
  Drop(g_warps[g_cur / 32]);
  Drop(g_block);
#ifdef ZRL_EMU_FAST_SWITCH
  void* dead = nullptr;
  zrl_emu_switch(&dead, g_sched_sp);  // never resumed
#endif
}  // (ucontext: returns to g_sched through uc_link)

// Prepares fiber t to start in Entry on its own stack.
inline void Start(Fiber& f) {
  f.done = false;
  if (f.stack.empty()) f.stack.resize(256 * 1024);
#ifdef ZRL_EMU_FAST_SWITCH
  // The first switch pops six zero registers and returns into Entry, with the
  // stack aligned as after a call (rsp % 16 == 8 at Entry's first instruction).
  auto top = reinterpret_cast<uintptr_t>(f.stack.data() + f.stack.size()) & ~uintptr_t{15};
  auto* sp = reinterpret_cast<void**>(top - 16);  // the return-address slot, 16-byte aligned
  sp[0] = reinterpret_cast<void*>(&Entry);
  sp[1] = nullptr;
  sp -= 6;
  for (int i = 0; i < 6; ++i) sp[i] = nullptr;
  f.sp = sp;
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack.data();
  f.ctx.uc_stack.ss_size = f.stack.size();
  f.ctx.uc_link = &g_sched;
  makecontext(&f.ctx, Entry, 0);
#endif
}
inline void Resume(Fiber& f) {
#ifdef ZRL_EMU_FAST_SWITCH
  zrl_emu_switch(&g_sched_sp, f.sp);
#else
  swapcontext(&g_sched, &f.ctx);
#endif
}
}  // namespace emu

inline void __syncthreads() { emu::Wait(emu::g_block); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::Wait(emu::g_warps[threadIdx.x / 32]); }
template <typename T>
T Xchg(T v, int src_lane) {
  const int t = threadIdx.x, w0 = t & ~31;
  std::memcpy(&g_xchg[t], &v, sizeof(T));
  __syncwarp();
  T r;
  std::memcpy(&r, &g_xchg[w0 + src_lane], sizeof(T));
  __syncwarp();
  return r;
}
template <typename T> T __shfl_xor_sync(unsigned, T v, int o) { return Xchg(v, (threadIdx.x & 31) ^ o); }
template <typename T> T __shfl_up_sync(unsigned, T v, int o) {
  const int lane = threadIdx.x & 31;
  return Xchg(v, lane >= o ? lane - o : lane);
}
inline unsigned __ballot_sync(unsigned, bool p) {
  const int t = threadIdx.x, w0 = t & ~31;
  g_xchg[t] = p ? 1.0 : 0.0;
  __syncwarp();
  unsigned m = 0;
  for (int i = 0; i < 32; ++i)
    if (g_xchg[w0 + i] != 0.0) m |= 1u << i;
  __syncwarp();
  return m;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline float atomicAdd(float* p, float v) { const float o = *p; *p = o + v; return o; }  // one OS thread
inline int atomicAdd(int* p, int v) { const int o = *p; *p = o + v; return o; }
inline int atomicMin(int* p, int v) { const int o = *p; if (v < o) *p = v; return o; }
inline long min(long a, long b) { return a < b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }

// Runs the grid block by block; each block's threads are fibers scheduled
// round-robin until all have returned.
template <typename K, typename... A>
void EmuLaunch(dim3 grid, dim3 block, size_t smem, cudaStream_t, K kernel, A... args) {
  gridDim = grid;
  blockDim = block;
  const unsigned T = block.x;
  if (T % 32 != 0 || T > 1024) {
    std::fprintf(stderr, "EMU: bad block size %u\n", T);
    std::abort();
  }
  if (smem > 48 * 1024) {
    std::fprintf(stderr, "EMU: dynamic shared memory %zu > 48 KiB\n", smem);
    std::abort();
  }
  g_xchg.assign(T, 0.0);
  emu::g_fibers.resize(T);
  emu::g_body = [&] { kernel(args...); };
  for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx) {
      blockIdx = dim3(bx, by, 0);
      g_dyn_smem.assign(smem + 16, 0x7f);
      emu::g_block = emu::Barrier{static_cast<int>(T), 0, 0};
      emu::g_warps.assign(T / 32, emu::Barrier{32, 0, 0});
      for (unsigned t = 0; t < T; ++t) emu::Start(emu::g_fibers[t]);
      // Each round runs a random half of the warps (in a shuffled order; the
      // lanes of a running warp in a shuffled order too), so some warps run
      // ahead by several barriers while others lag, as on a GPU: races that a
      // missing barrier allows show up.
      const unsigned W = T / 32;
      std::vector<unsigned> warps(W), order;
      std::iota(warps.begin(), warps.end(), 0u);
      std::vector<unsigned> stuck(T, 0);  // == epoch: resumed without progress since the last progress
      unsigned live = T, nstuck = 0, epoch = 1;
      while (live > 0) {
        std::shuffle(warps.begin(), warps.end(), emu::g_rng);
        order.clear();
        for (unsigned w : warps) {
          if (W > 1 && (emu::g_rng() & 1)) continue;
          const size_t at = order.size();
          for (unsigned l = 0; l < 32; ++l) order.push_back(w * 32 + l);
          std::shuffle(order.begin() + static_cast<long>(at), order.end(), emu::g_rng);
        }
        for (unsigned t : order) {
          if (emu::g_fibers[t].done) continue;
          const long before = emu::g_block.gen + emu::g_warps[t / 32].gen;
          emu::g_cur = static_cast<int>(t);
          threadIdx = dim3(t, 0, 0);
          emu::Resume(emu::g_fibers[t]);
          if (emu::g_fibers[t].done || emu::g_block.gen + emu::g_warps[t / 32].gen != before) {
            live -= emu::g_fibers[t].done;
            ++epoch;
            nstuck = 0;
          } else if (stuck[t] != epoch) {
            stuck[t] = epoch;
            ++nstuck;
          }
          if (live > 0 && nstuck == live) {
            std::fprintf(stderr, "EMU: barrier deadlock in block (%u, %u): %u threads wait forever\n", bx, by,
                         live);
            std::abort();
          }
        }
      }
    }
}
inline int EmuMemsetAsync(void* p, int v, size_t n, cudaStream_t) { std::memset(p, v, n); return 0; }
template <typename Kt, typename Vt, typename O>
int EmuSegSortDesc(void* temp, size_t& bytes, const Kt* ki, Kt* ko, const Vt* vi, Vt* vo, int n, int segs, const O* b,
                   const O* e, int, int, cudaStream_t) {
  if (!temp) { bytes = 16; return 0; }
  for (int s = 0; s < segs; ++s) {
    std::vector<int> ord(e[s] - b[s]);
    std::iota(ord.begin(), ord.end(), 0);
    std::stable_sort(ord.begin(), ord.end(), [&](int x, int y) { return ki[b[s] + x] > ki[b[s] + y]; });
    for (size_t i = 0; i < ord.size(); ++i) ko[b[s] + i] = ki[b[s] + ord[i]], vo[b[s] + i] = vi[b[s] + ord[i]];
  }
  (void)n;
  return 0;
}

