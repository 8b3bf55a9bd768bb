// `zerorl bench model`: train tokens/s (forward + backward + AdamW on a B x T
// batch) and decode tokens/s (G samples of one prompt with a KV cache) for any
// config, against the same workloads in PyTorch (bench/peers/moe_bench_torch.py
// under /usr/bin/python3, same thread count) measured in the same run, plus the
// machine's sgemm GFLOP/s as the roof and the model FLOP utilisation against it.
// For MLA models also: the KV cache per token in the latent and the expanded
// layout (and the same for DeepSeek-V3's own shape, from its config.json
// numbers, no weights), how many sequences of the long-context case fit a
// --kv-budget-mb, and a long-context decode (G samples of a 256-token prompt,
// 256 new tokens) in both layouts against PyTorch's same-run figure.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "model/bench_peer.h"
#include "model/cuda_bench.h"
#include "model/model.h"
#include "model/optimizer.h"

namespace zerorl::bench {
namespace {

using model::ModelConfig;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double SgemmGflops() {
  const int64_t n = 1024;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), cm(n * n);
  auto* ops = model::ops::CpuBackend();
  ops->Gemm(false, true, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, cm.data(), n);
  const int reps = 6;
  auto t0 = Clock::now();
  for (int r = 0; r < reps; ++r) ops->Gemm(false, true, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, cm.data(), n);
  return 2.0 * n * n * n * reps / Seconds(t0, Clock::now()) / 1e9;
}

// DeepSeek-V3's config.json (deepseek-ai/DeepSeek-V3), the keys that size the
// model; rope_scaling (YaRN) is left out: it does not change the cache size.
constexpr char kDeepseekV3Json[] = R"({"model_type": "deepseek_v3", "vocab_size": 129280, "hidden_size": 7168,
  "intermediate_size": 18432, "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_attention_heads": 128,
  "num_key_value_heads": 128, "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64, "v_head_dim": 128, "n_routed_experts": 256, "n_shared_experts": 1,
  "num_experts_per_tok": 8, "n_group": 8, "topk_group": 4, "topk_method": "noaux_tc", "scoring_func": "sigmoid",
  "norm_topk_prob": true, "routed_scaling_factor": 2.5, "first_k_dense_replace": 3, "moe_layer_freq": 1,
  "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000, "max_position_embeddings": 163840,
  "tie_word_embeddings": false, "attention_bias": false, "bos_token_id": 0, "eos_token_id": 1})";

// Tokens per second of G samples of `prompt`, max_new tokens each (one warm-up run, then `reps`).
double DecodeTokensPerS(model::Model& m, const std::vector<int32_t>& prompt, int samples, int max_new, int reps) {
  model::SamplerParams sp;
  auto decode = [&] {
    auto r = m.Generate({prompt}, samples, sp, 7, {}, max_new);
    if (!r.ok()) {
      std::fprintf(stderr, "zerorl bench model: %s\n", std::string(r.status().message()).c_str());
      std::abort();
    }
  };
  decode();
  const auto t0 = Clock::now();
  for (int r = 0; r < reps; ++r) decode();
  return static_cast<double>(samples) * max_new * reps / Seconds(t0, Clock::now());
}

struct PeerResult {
  double train = 0, decode = 0;
  bool ok = false;
  std::string error;
};

PeerResult RunPeer(const std::string& cmd) {
  PeerResult r;
  const model::PeerRun run = model::RunBenchPeer(cmd);
  if (!run.started) {
    r.error = "cannot start python";
    return r;
  }
  r.train = run.train;
  r.decode = run.decode;
  r.ok = run.exit_code == 0 && (r.train > 0 || r.decode > 0);
  if (!r.ok) r.error = "the PyTorch peer failed (exit " + std::to_string(run.exit_code) + ")";
  return r;
}

}  // namespace

int BenchModel(int argc, char** argv) {
  CLI::App app{"Model train and decode tokens/s against PyTorch on the same threads.", "zerorl bench model"};
  std::string config_path = "../shared/bench/moe-bench.config.json";
  std::string peer_script = "bench/peers/moe_bench_torch.py";
  int threads = 2, batch = 16, seq = 128, train_steps = 4, samples = 16, prompt_len = 32, new_tokens = 64;
  bool no_peer = false;
  int long_prompt = 256, long_new = 256, long_samples = 16;
  int64_t kv_budget_mb = 1024;
  app.add_option("--config", config_path, "HF config.json of the model to benchmark")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads for us and for PyTorch")->capture_default_str();
  app.add_option("--batch", batch, "train: sequences per step")->capture_default_str();
  app.add_option("--seq", seq, "train: tokens per sequence")->capture_default_str();
  app.add_option("--train-steps", train_steps, "train: timed steps (after one warm-up step)")->capture_default_str();
  app.add_option("--samples", samples, "decode: samples of the one prompt")->capture_default_str();
  app.add_option("--prompt", prompt_len, "decode: prompt tokens")->capture_default_str();
  app.add_option("--new", new_tokens, "decode: new tokens per sample")->capture_default_str();
  app.add_option("--peer-script", peer_script, "the PyTorch peer")->capture_default_str();
  app.add_flag("--no-peer", no_peer, "skip the PyTorch peer");
  app.add_option("--long-prompt", long_prompt, "long-context decode: prompt tokens (0: skip the case)")
      ->capture_default_str();
  app.add_option("--long-new", long_new, "long-context decode: new tokens per sample")->capture_default_str();
  app.add_option("--long-samples", long_samples, "long-context decode: samples")->capture_default_str();
  app.add_option("--kv-budget-mb", kv_budget_mb, "max_sequences_in_budget: the KV-cache budget, MiB")
      ->capture_default_str();
  std::string device = "cpu";  // cuda: the whole model on the GPU (model/cuda_bench.h); exit 2 without a device
  app.add_option("--device", device, "cpu, or cuda")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (threads < 1 || batch < 1 || seq < 2 || train_steps < 1 || samples < 1 || prompt_len < 1 || new_tokens < 1 ||
      long_prompt < 0 || long_new < 1 || long_samples < 1 || kv_budget_mb < 1) {
    std::fprintf(stderr, "zerorl bench model: every size must be positive (seq >= 2)\n");
    return 2;
  }
  auto config = model::LoadModelConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "zerorl bench model: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (device == "cuda") {
    model::CudaBenchOptions o;
    o.batch = batch;
    o.seq = seq;
    o.train_steps = train_steps;
    o.samples = samples;
    o.prompt = prompt_len;
    o.new_tokens = new_tokens;
    o.config_path = config_path;
    o.peer_script = peer_script;
    o.peer = !no_peer;
    return model::BenchModelCuda(*config, o);
  }
  if (device != "cpu") {
    std::fprintf(stderr, "zerorl bench model: --device must be cpu or cuda, got \"%s\"\n", device.c_str());
    return 2;
  }
  model::ops::SetCpuThreads(threads);
  const ModelConfig& c = *config;
  auto created = model::Model::Create(c, 1);
  if (!created.ok()) {
    std::fprintf(stderr, "zerorl bench model: %s\n", std::string(created.status().message()).c_str());
    return 1;
  }
  model::Model& m = **created;
  std::printf("zerorl bench model: %s, %.2fM params, %d threads\n", config_path.c_str(), m.NumParams() / 1e6, threads);
  const double roof = SgemmGflops();
  std::printf("sgemm roof (OpenBLAS 1024^3, %d threads): %.1f GFLOP/s\n", threads, roof);
  std::printf("sgemm_gflops %.2f\n", roof);

  // ---- train: forward + backward + clip + AdamW ----
  std::mt19937 rng(5);
  model::TrainBatch b;
  b.B = batch;
  b.T = seq;
  b.lengths.assign(batch, seq);
  for (int64_t i = 0; i < b.B * b.T; ++i) b.tokens.push_back(static_cast<int32_t>(rng() % c.vocab_size));
  std::vector<float> dlogp(b.B * (b.T - 1), -1.f / static_cast<float>(b.B * (b.T - 1)));
  model::AdamW opt({0.9f, 0.95f, 1e-8f, 0.01f});
  auto params = m.Parameters();
  model::TrainOutput out;
  auto step = [&] {
    m.ZeroGrad();
    if (!m.TrainForward(b, {}, &out).ok() || !m.TrainBackward(dlogp.data()).ok()) std::abort();
    model::ClipGradNorm(params, 1.f);
    if (!opt.Step(params, 1e-4f).ok()) std::abort();
  };
  step();
  auto t0 = Clock::now();
  for (int s = 0; s < train_steps; ++s) step();
  const double train_s = Seconds(t0, Clock::now());
  const double train_tps = static_cast<double>(batch) * seq * train_steps / train_s;
  const double train_flops_per_tok =
      3 * 2 * (MatmulMacsPerToken(c) + AttentionMacsPerToken(c, (seq + 1) / 2.0));
  const double train_gflops = train_tps * train_flops_per_tok / 1e9;
  std::printf("train  %dx%d, %d steps: %.0f tokens/s, %.1f GFLOP/s model, MFU %.0f%% of sgemm roof\n", batch, seq,
              train_steps, train_tps, train_gflops, 100 * train_gflops / roof);

  // ---- decode: G samples of one prompt, shared prefill, KV cache (latent for MLA) ----
  std::vector<int32_t> prompt;
  for (int i = 0; i < prompt_len; ++i) prompt.push_back(static_cast<int32_t>(rng() % c.vocab_size));
  const double dec_tps = DecodeTokensPerS(m, prompt, samples, new_tokens, 3);
  const double dec_flops_per_tok =
      2 * (MatmulMacsPerToken(c) + AttentionMacsPerToken(c, prompt_len + new_tokens / 2.0));
  const double dec_gflops = dec_tps * dec_flops_per_tok / 1e9;
  std::printf("decode %d samples x %d new (prompt %d): %.0f tokens/s, %.1f GFLOP/s model, MFU %.0f%%\n", samples,
              new_tokens, prompt_len, dec_tps, dec_gflops, 100 * dec_gflops / roof);
  std::printf("train_tokens_per_s %.1f\n", train_tps);
  std::printf("decode_tokens_per_s %.1f\n", dec_tps);
  std::printf("train_mfu %.3f\ndecode_mfu %.3f\n", train_gflops / roof, dec_gflops / roof);
  std::fflush(stdout);

  // ---- KV cache: bytes per token, sequences per budget, long-context decode ----
  const int64_t kv_latent = model::KvCacheBytesPerToken(c, true), kv_expanded = model::KvCacheBytesPerToken(c, false);
  std::printf("kv_bytes_per_token_latent %lld\nkv_bytes_per_token_expanded %lld\n", static_cast<long long>(kv_latent),
              static_cast<long long>(kv_expanded));
  std::printf("kv_latent_over_expanded %.4f (1/%.1f)\n", static_cast<double>(kv_latent) / kv_expanded,
              static_cast<double>(kv_expanded) / kv_latent);
  const int64_t seq_tokens = static_cast<int64_t>(long_prompt) + long_new;
  std::printf("max_sequences_in_budget %lld (latent; expanded %lld) for %lld MiB at %lld tokens per sequence\n",
              static_cast<long long>((kv_budget_mb << 20) / (seq_tokens * kv_latent)),
              static_cast<long long>((kv_budget_mb << 20) / (seq_tokens * kv_expanded)),
              static_cast<long long>(kv_budget_mb), static_cast<long long>(seq_tokens));
  auto v3 = model::ParseModelConfig(kDeepseekV3Json);
  if (!v3.ok()) {
    std::fprintf(stderr, "zerorl bench model: DeepSeek-V3 shape: %s\n", std::string(v3.status().message()).c_str());
    return 1;
  }
  const int64_t v3_latent = model::KvCacheBytesPerToken(*v3, true), v3_expanded = model::KvCacheBytesPerToken(*v3, false);
  std::printf("deepseek_v3_kv_bytes_per_token_latent %lld\ndeepseek_v3_kv_bytes_per_token_expanded %lld\n",
              static_cast<long long>(v3_latent), static_cast<long long>(v3_expanded));
  std::printf("deepseek_v3_kv_latent_over_expanded %.5f (1/%.1f)\n", static_cast<double>(v3_latent) / v3_expanded,
              static_cast<double>(v3_expanded) / v3_latent);
  double long_tps = 0;
  if (long_prompt > 0) {
    std::vector<int32_t> long_p;
    for (int i = 0; i < long_prompt; ++i) long_p.push_back(static_cast<int32_t>(rng() % c.vocab_size));
    long_tps = DecodeTokensPerS(m, long_p, long_samples, long_new, 2);
    std::printf("long_decode_tokens_per_s %.1f (%d samples x %d new, prompt %d)\n", long_tps, long_samples, long_new,
                long_prompt);
    if (c.is_mla()) {  // the same workloads on the expanded cache, to measure the latent one
      m.set_mla_cache(model::MlaCache::kExpanded);
      const double dec_exp = DecodeTokensPerS(m, prompt, samples, new_tokens, 3);
      const double long_exp = DecodeTokensPerS(m, long_p, long_samples, long_new, 2);
      m.set_mla_cache(model::MlaCache::kLatent);
      std::printf("decode_tokens_per_s_expanded %.1f\nlong_decode_tokens_per_s_expanded %.1f\n", dec_exp, long_exp);
    }
  }
  std::fflush(stdout);

  if (no_peer) return 0;
  std::ostringstream cmd;
  cmd << "/usr/bin/python3 " << peer_script << " --config " << config_path << " --threads " << threads
      << " --batch " << batch << " --seq " << seq << " --train-steps " << train_steps << " --samples " << samples
      << " --prompt " << prompt_len << " --new " << new_tokens;
  PeerResult peer = RunPeer(cmd.str());
  if (!peer.ok) {
    std::printf("peer: %s (command: %s)\n", peer.error.c_str(), cmd.str().c_str());
    return 1;
  }
  std::printf("PyTorch (same workloads, %d threads): train %.0f tokens/s, decode %.0f tokens/s\n", threads,
              peer.train, peer.decode);
  std::printf("peer_train_tokens_per_s %.1f\npeer_decode_tokens_per_s %.1f\n", peer.train, peer.decode);
  std::printf("train_ratio_vs_pytorch %.2f\ndecode_ratio_vs_pytorch %.2f\n", train_tps / peer.train,
              dec_tps / peer.decode);
  if (long_prompt > 0) {
    std::ostringstream long_cmd;
    long_cmd << "/usr/bin/python3 " << peer_script << " --config " << config_path << " --threads " << threads
             << " --train-steps 0 --samples " << long_samples << " --prompt " << long_prompt << " --new " << long_new;
    PeerResult lp = RunPeer(long_cmd.str());
    if (!lp.ok || lp.decode <= 0) {
      std::printf("peer (long context): %s (command: %s)\n", lp.error.c_str(), long_cmd.str().c_str());
      return 1;
    }
    std::printf("peer_long_decode_tokens_per_s %.1f\nlong_decode_ratio_vs_pytorch %.2f\n", lp.decode,
                long_tps / lp.decode);
  }
  return 0;
}

}  // namespace zerorl::bench
