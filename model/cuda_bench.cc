// BenchModelCuda: the whole Model on the CUDA backend (train and decode
// tokens/s, MFU), op-level cuBLAS GEMMs (bf16 vs fp32) and the decode
// attention kernel on the shapes of a model config, and the PyTorch peer on
// the same GPU when one is available; see cuda_bench.h.
#include "model/cuda_bench.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "model/bench_peer.h"
#include "model/model.h"
#include "model/ops/cuda/cuda_backend.h"
#include "model/ops/cuda/device_memory.h"
#include "model/optimizer.h"

namespace zerorl::model {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

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
  return Seconds(t0, Clock::now()) / reps;
}

std::string Mfu(double tflops, double peak) {
  if (peak <= 0) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f%%", 100.0 * tflops / peak);
  return b;
}

// ---- the whole model on the CUDA backend ----
struct ModelNumbers {
  double train_tps = 0, train_tflops = 0, decode_tps = 0, decode_tflops = 0, decode_top_p_tps = 0;
};

int BenchWholeModel(const ModelConfig& c, const CudaBenchOptions& o, ops::Backend* b16, double peak,
                    ModelNumbers* r) {
  auto created = Model::Create(c, 1, b16);
  if (!created.ok()) {
    std::fprintf(stderr, "zerorl bench model --device cuda: the model does not run: %s\n",
                 std::string(created.status().message()).c_str());
    return 1;
  }
  Model& m = **created;
  std::printf("model on cuda: %.2fM params (%.2f GiB fp32 weights)\n", m.NumParams() / 1e6,
              m.NumParams() * 4.0 / (1 << 30));

  // Train: forward + backward + clip + AdamW (as the CPU bench).
  std::mt19937 rng(5);
  TrainBatch b;
  b.B = o.batch;
  b.T = o.seq;
  b.lengths.assign(o.batch, static_cast<int32_t>(o.seq));
  for (int64_t i = 0; i < b.B * b.T; ++i) b.tokens.push_back(static_cast<int32_t>(rng() % c.vocab_size));
  std::vector<float> dlogp(b.B * (b.T - 1), -1.f / static_cast<float>(b.B * (b.T - 1)));
  AdamW opt({0.9f, 0.95f, 1e-8f, 0.01f});
  const auto params = m.Parameters();
  TrainOutput out;
  bool failed = false;
  auto step = [&] {
    m.ZeroGrad();
    absl::Status st = m.TrainForward(b, {}, &out);
    if (st.ok()) st = m.TrainBackward(dlogp.data());
    if (st.ok()) ClipGradNorm(params, 1.f);
    if (st.ok()) st = opt.Step(params, 1e-4f);
    if (!st.ok() && !failed) {
      std::fprintf(stderr, "zerorl bench model --device cuda: train step: %s\n", std::string(st.message()).c_str());
      failed = true;
    }
  };
  step();
  b16->Synchronize();
  auto t0 = Clock::now();
  for (int64_t s = 0; s < o.train_steps && !failed; ++s) step();
  b16->Synchronize();
  if (failed) return 1;
  const double train_s = Seconds(t0, Clock::now());
  r->train_tps = static_cast<double>(o.batch * o.seq * o.train_steps) / train_s;
  const double train_flops_tok = 3 * 2 * (MatmulMacsPerToken(c) + AttentionMacsPerToken(c, (o.seq + 1) / 2.0));
  r->train_tflops = r->train_tps * train_flops_tok / 1e12;
  std::printf("train  %lldx%lld, %lld steps: %.0f tokens/s, %.2f TFLOP/s model, MFU %s of bf16 peak\n",
              static_cast<long long>(o.batch), static_cast<long long>(o.seq), static_cast<long long>(o.train_steps),
              r->train_tps, r->train_tflops, Mfu(r->train_tflops, peak).c_str());

  // Decode: G samples of one prompt (shared prefill, device KV cache, device sampling).
  std::vector<int32_t> prompt;
  for (int64_t i = 0; i < o.prompt; ++i) prompt.push_back(static_cast<int32_t>(rng() % c.vocab_size));
  auto decode = [&](const SamplerParams& sp) {
    auto g = m.Generate({prompt}, o.samples, sp, 7, {}, o.new_tokens);
    if (!g.ok() && !failed) {
      std::fprintf(stderr, "zerorl bench model --device cuda: generate: %s\n", std::string(g.status().message()).c_str());
      failed = true;
    }
  };
  SamplerParams plain;  // temperature 1, no truncation (as the CPU bench)
  SamplerParams nucleus;
  nucleus.top_p = 0.95f;
  nucleus.top_k = 50;
  decode(plain);
  const int reps = 3;
  t0 = Clock::now();
  for (int i = 0; i < reps && !failed; ++i) decode(plain);
  const double dec_s = Seconds(t0, Clock::now()) / reps;
  decode(nucleus);
  t0 = Clock::now();
  decode(nucleus);
  const double dec_p_s = Seconds(t0, Clock::now());
  if (failed) return 1;
  r->decode_tps = static_cast<double>(o.samples * o.new_tokens) / dec_s;
  r->decode_top_p_tps = static_cast<double>(o.samples * o.new_tokens) / dec_p_s;
  const double dec_flops_tok = 2 * (MatmulMacsPerToken(c) + AttentionMacsPerToken(c, o.prompt + o.new_tokens / 2.0));
  r->decode_tflops = r->decode_tps * dec_flops_tok / 1e12;
  std::printf("decode %lld samples x %lld new (prompt %lld): %.0f tokens/s, %.3f TFLOP/s model, MFU %s; "
              "with top-k 50 / top-p 0.95: %.0f tokens/s\n",
              static_cast<long long>(o.samples), static_cast<long long>(o.new_tokens),
              static_cast<long long>(o.prompt), r->decode_tps, r->decode_tflops, Mfu(r->decode_tflops, peak).c_str(),
              r->decode_top_p_tps);
  auto mem = ops::CudaBackendMemoryStats(b16);
  if (mem.ok())
    std::printf("backend memory: %.2f GiB in use, %.2f GiB cached, peak %.2f GiB, %lld cudaMalloc calls\n",
                mem->in_use_bytes / double(1 << 30), mem->cached_bytes / double(1 << 30),
                mem->peak_bytes / double(1 << 30), static_cast<long long>(mem->cuda_mallocs));
  return 0;
}

// ---- the PyTorch peer on the same GPU ----
struct PeerResult {
  double train = 0, decode = 0;
  bool ok = false;
  std::string note;
};

// The first python3 whose torch sees a CUDA device ("" when none).
std::string TorchCudaPython() {
  for (const char* py : {"python3", "/usr/bin/python3"}) {
    const std::string cmd = std::string(py) +
                            " -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() and "
                            "hasattr(torch, \"set_default_device\") else 1)' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return py;
  }
  return "";
}

PeerResult RunTorchPeer(const CudaBenchOptions& o) {
  PeerResult r;
  if (!o.peer || o.config_path.empty()) {
    r.note = !o.peer ? "skipped (--no-peer)" : "skipped (no config file path to give it)";
    return r;
  }
  const std::string py = TorchCudaPython();
  if (py.empty()) {
    r.note = "skipped: no python3 with a CUDA-enabled torch (>= 2.0) here";
    return r;
  }
  // The CPU peer script, with CUDA as torch's default device and bf16 matmul
  // precision for fp32 tensors (cuBLAS FAST_16BF, the mode our bf16 GEMMs use).
  char path[] = "/tmp/zerorl_torch_cuda_peer_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) {
    r.note = "skipped: cannot write the peer wrapper";
    return r;
  }
  close(fd);
  {
    std::ofstream w(path);
    w << "import atexit, runpy, sys, torch\n"
         "torch.set_default_device('cuda')\n"
         "torch.set_float32_matmul_precision('medium')\n"
         "atexit.register(torch.cuda.synchronize)\n"
         "sys.argv = sys.argv[1:]\n"
         "runpy.run_path(sys.argv[0], run_name='__main__')\n";
  }
  std::ostringstream cmd;
  cmd << py << " " << path << " " << o.peer_script << " --config " << o.config_path << " --threads 4 --batch "
      << o.batch << " --seq " << o.seq << " --train-steps " << o.train_steps << " --samples " << o.samples
      << " --prompt " << o.prompt << " --new " << o.new_tokens << " 2>&1";
  const PeerRun run = RunBenchPeer(cmd.str());
  std::remove(path);
  if (!run.started) {
    r.note = "skipped: cannot start " + py;
    return r;
  }
  r.train = run.train;
  r.decode = run.decode;
  r.ok = run.exit_code == 0 && r.train > 0 && r.decode > 0;
  if (!r.ok) r.note = "failed (exit " + std::to_string(run.exit_code) + "): " + run.last_line;
  return r;
}

// ---- op level: GEMMs and decode attention ----
int BenchOps(const ModelConfig& c, int64_t tokens, int64_t decode_batch, int64_t decode_ctx, ops::Backend* f32,
             ops::Backend* b16, double peak) {
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
    const double t32 = Time([&] { f32->LinearForward(y->f32(), x->f32(), w->f32(), tokens, s.in, s.out); }, 5);
    const double t16 = Time([&] { b16->LinearForward(y->f32(), x->f32(), w->f32(), tokens, s.in, s.out); }, 5);
    if (t32 <= 0 || t16 <= 0) {
      std::fprintf(stderr, "zerorl bench model --device cuda: a CUDA error stopped the GEMM benchmark\n");
      return 1;
    }
    const double tf32 = flops / t32 / 1e12, tf16 = flops / t16 / 1e12;
    std::printf("%-16s %8lld %8lld %8lld  %10.1f %10.1f %6.2fx %6s\n", s.name, static_cast<long long>(tokens),
                static_cast<long long>(s.in), static_cast<long long>(s.out), tf32, tf16, tf16 / tf32,
                Mfu(tf16, peak).c_str());
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
  const double ta = Time([&] { b16->AttentionForward(seqs.data(), decode_batch, a); }, 20);
  if (ta <= 0) {
    std::fprintf(stderr, "zerorl bench model --device cuda: a CUDA error stopped the attention benchmark\n");
    return 1;
  }
  std::printf("decode attention (one layer): %lld seqs x %lld ctx, H=%lld Hkv=%lld dk=%lld dv=%lld: %.1f us, "
              "%.0f tokens/s, KV read %.0f GB/s\n",
              static_cast<long long>(decode_batch), static_cast<long long>(decode_ctx), static_cast<long long>(a.H),
              static_cast<long long>(a.Hkv), static_cast<long long>(a.dk), static_cast<long long>(a.dv), ta * 1e6,
              decode_batch / ta, kv_floats * 4.0 / ta / 1e9);
  return 0;
}

}  // namespace

int BenchModelCuda(const ModelConfig& c, const CudaBenchOptions& o) {
  if (absl::Status st = ops::CudaDeviceStatus(0); !st.ok()) {
    std::fprintf(stderr, "zerorl bench model --device cuda: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  if (o.batch < 1 || o.seq < 2 || o.train_steps < 1 || o.samples < 1 || o.prompt < 1 || o.new_tokens < 1) {
    std::fprintf(stderr, "zerorl bench model --device cuda: every size must be positive (seq >= 2)\n");
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
  std::printf("device: %s; dense bf16 peak %s\n", desc->c_str(),
              peak > 0 ? (std::to_string(peak) + " TFLOP/s").c_str() : "unknown (no MFU)");
  std::fflush(stdout);

  ModelNumbers r;
  const int rc = BenchWholeModel(c, o, b16->get(), peak, &r);
  std::fflush(stdout);
  if (rc != 0) return rc;
  std::printf("-- op level --\n");
  const int rc_ops = BenchOps(c, o.batch * o.seq, o.samples, o.prompt + o.new_tokens, f32->get(), b16->get(), peak);
  std::fflush(stdout);

  PeerResult peer = RunTorchPeer(o);
  if (peer.ok) {
    std::printf("PyTorch on the same GPU (eager, fp32 weights, bf16 matmul precision): train %.0f tokens/s, "
                "decode %.0f tokens/s\n", peer.train, peer.decode);
  } else {
    std::printf("PyTorch peer: %s\n", peer.note.c_str());
  }
  // Machine-readable lines.
  std::printf("cuda_train_tokens_per_s %.1f\ncuda_decode_tokens_per_s %.1f\ncuda_decode_top_p_tokens_per_s %.1f\n",
              r.train_tps, r.decode_tps, r.decode_top_p_tps);
  if (peak > 0)
    std::printf("cuda_train_mfu %.5f\ncuda_decode_mfu %.5f\n", r.train_tflops / peak, r.decode_tflops / peak);
  if (peer.ok)
    std::printf("torch_cuda_train_tokens_per_s %.1f\ntorch_cuda_decode_tokens_per_s %.1f\n"
                "cuda_train_ratio_vs_pytorch %.2f\ncuda_decode_ratio_vs_pytorch %.2f\n",
                peer.train, peer.decode, r.train_tps / peer.train, r.decode_tps / peer.decode);
  std::fflush(stdout);
  return rc_ops;
}

}  // namespace zerorl::model
