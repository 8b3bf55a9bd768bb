// `zerorl bench weights`: weight publishing MB/s against raw TCP, and the
// learner's GRPO step time on the reference workload.
//
// For the reference model (../shared/bench/moe-bench.config.json, random init)
// and a ~100M-parameter random MoE: two rollout workers (RolloutService over a
// GenerationEngine each) listen on loopback in this process; the learner-side
// publisher pushes every tensor to both in parallel over UpdateWeights
// (chunked, CRC-32C checked, staged and swapped). The peer is a raw TCP
// loopback transfer of the same bytes to two receivers in parallel, measured in
// the same run. MB/s counts bytes delivered to all workers per wall second;
// each figure is the median of --repeats runs after one warm-up push. Beside
// MB/s it prints the process CPU time each transfer used (all threads, user +
// system): on a loaded machine wall-clock MB/s mostly measures the scheduler,
// CPU per transfer still compares the two.
//
// Machine-readable lines: weight_push_mb_per_s, tcp_raw_mb_per_s,
// weight_push_cpu_ms, tcp_raw_cpu_ms (reference model), the same with _100m,
// learner_step_seconds, learner_tokens_per_s.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>

#include "bench/bench.h"
#include "common/config.h"
#include "common/server.h"
#include "common/status.h"
#include "learner/grpo_trainer.h"
#include "learner/weight_publisher.h"
#include "rollout/generation_engine.h"
#include "rollout/rollout_service.h"
#include "weights/model_weights.h"

namespace zerorl::bench {
namespace {

using Clock = std::chrono::steady_clock;

// ~104M parameters: 32k vocabulary, hidden 512, 6 layers (1 dense + 5 MoE of 15 experts).
constexpr char k100MConfig[] = R"({"model_type": "deepseek_v3", "vocab_size": 32768, "hidden_size": 512,
  "intermediate_size": 2048, "moe_intermediate_size": 512, "num_hidden_layers": 6, "num_attention_heads": 8,
  "num_key_value_heads": 8, "q_lora_rank": null, "kv_lora_rank": 128, "qk_nope_head_dim": 32,
  "qk_rope_head_dim": 32, "v_head_dim": 64, "n_routed_experts": 15, "n_shared_experts": 1,
  "num_experts_per_tok": 4, "n_group": 1, "topk_group": 1, "topk_method": "noaux_tc", "scoring_func": "sigmoid",
  "norm_topk_prob": true, "routed_scaling_factor": 1.0, "first_k_dense_replace": 1, "moe_layer_freq": 1,
  "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 512,
  "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2})";

// CPU seconds used by this whole process so far (every thread, user + system).
double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Raw TCP: `receivers` loopback connections, each carrying `bytes` from one
// sender thread into a preallocated buffer, all at once. Returns MB/s over all.
// *cpu_seconds (optional): process CPU time spent inside the timed transfer.
double RawTcpMbPerS(const std::vector<const char*>& srcs, int64_t bytes, int64_t chunk, double* cpu_seconds) {
  const int n = static_cast<int>(srcs.size());
  std::vector<int> listeners(n), ports(n);
  for (int i = 0; i < n; ++i) {
    listeners[i] = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (::bind(listeners[i], reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(listeners[i], 1) != 0 ||
        ::getsockname(listeners[i], reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return 0;
    ports[i] = ntohs(a.sin_port);
  }
  std::vector<std::vector<char>> dst(n, std::vector<char>(bytes));
  std::vector<std::thread> threads;
  const double cpu0 = ProcessCpuSeconds();
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {  // receiver
      const int fd = ::accept(listeners[i], nullptr, nullptr);
      int64_t got = 0;
      while (got < bytes) {
        const ssize_t r = ::recv(fd, dst[i].data() + got, static_cast<size_t>(bytes - got), 0);
        if (r <= 0) break;
        got += r;
      }
      ::close(fd);
    });
    threads.emplace_back([&, i] {  // sender
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<uint16_t>(ports[i]));
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return;
      int64_t sent = 0;
      while (sent < bytes) {
        const ssize_t w = ::send(fd, srcs[i] + sent, static_cast<size_t>(std::min(chunk, bytes - sent)), 0);
        if (w <= 0) break;
        sent += w;
      }
      ::close(fd);
    });
  }
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (cpu_seconds != nullptr) *cpu_seconds = ProcessCpuSeconds() - cpu0;
  for (int fd : listeners) ::close(fd);
  return static_cast<double>(bytes) * n / secs / 1e6;
}

struct PushResult {
  double push = 0, raw = 0;             // MB/s
  double push_cpu_ms = 0, raw_cpu_ms = 0;  // process CPU per transfer (all threads)
  int64_t params = 0;
};

absl::StatusOr<PushResult> BenchModelPush(const model::ModelConfig& cfg, int workers, int64_t chunk, int repeats) {
  ZRL_ASSIGN_OR_RETURN(auto learner_model, model::Model::Create(cfg, 1));
  std::shared_ptr<const Tokenizer> tok = Tokenizer::CharVocabulary();
  const zerorl::v1::ServerConfig server = DefaultRunConfig().server();
  std::vector<std::unique_ptr<rollout::GenerationEngine>> engines;
  std::vector<std::unique_ptr<rollout::RolloutServiceImpl>> services;
  std::vector<ServerHandle> servers;
  std::vector<learner::PublishTarget> targets;
  for (int w = 0; w < workers; ++w) {
    ZRL_ASSIGN_OR_RETURN(auto m, model::Model::Create(cfg, 100 + w));
    engines.push_back(std::make_unique<rollout::GenerationEngine>(std::move(m), tok, rollout::GenerationEngine::Options{}));
    services.push_back(std::make_unique<rollout::RolloutServiceImpl>(engines.back().get(), "bench"));
    ZRL_ASSIGN_OR_RETURN(ServerHandle h, StartServer("127.0.0.1:0", {services.back().get()}, server, std::make_shared<AdminAuth>()));
    const std::string addr = "127.0.0.1:" + std::to_string(h.port);
    targets.push_back({addr, MakeChannel(addr, server)});
    servers.push_back(std::move(h));
  }
  const std::vector<WeightTensor> tensors = HostWeightTensors(*learner_model);
  ChunkOptions co;
  co.config_json = cfg.ToJson();
  co.chunk_bytes = chunk;
  PushResult r;
  r.params = learner_model->NumParams();
  std::vector<double> push, raw, push_cpu_ms, raw_cpu_ms;
  const std::vector<const char*> srcs(workers, reinterpret_cast<const char*>(learner_model->param_data()));
  for (int i = 0; i <= repeats; ++i) {  // i == 0 warms up (allocates the spare models)
    co.version = i + 1;
    const double c0 = ProcessCpuSeconds();
    const learner::PublishResult pr = PublishWeights(targets, tensors, co, std::chrono::minutes(5));
    const double push_cpu = ProcessCpuSeconds() - c0;
    if (!pr.errors.empty()) return absl::InternalError("weight push failed: " + pr.errors[0]);
    double tcp_cpu = 0;
    const double tcp = RawTcpMbPerS(srcs, r.params * 4, chunk, &tcp_cpu);
    if (i > 0) {
      push.push_back(pr.mb_per_s);
      raw.push_back(tcp);
      push_cpu_ms.push_back(push_cpu * 1e3);
      raw_cpu_ms.push_back(tcp_cpu * 1e3);
    }
  }
  for (auto& s : servers) s.Shutdown();
  r.push = Median(push);
  r.raw = Median(raw);
  r.push_cpu_ms = Median(push_cpu_ms);
  r.raw_cpu_ms = Median(raw_cpu_ms);
  return r;
}

// GRPO step on the reference workload: 16 sequences x 128 tokens (4 groups of 4,
// 32-token prompts, 96-token completions), one epoch, one micro-batch, AdamW.
absl::StatusOr<double> LearnerStepSeconds(const model::ModelConfig& cfg, int steps) {
  ZRL_ASSIGN_OR_RETURN(auto m, model::Model::Create(cfg, 1));
  zerorl::v1::RunConfig rc = DefaultRunConfig();
  rc.mutable_learner()->mutable_grpo()->set_micro_batch(16);
  rc.mutable_rollout()->mutable_sampling()->set_max_new_tokens(96);
  ZRL_ASSIGN_OR_RETURN(auto trainer, learner::GrpoTrainer::Create(std::move(m), nullptr,
                                                                  learner::TrainerOptionsFromConfig(rc)));
  std::mt19937_64 rng(7);
  auto tok = [&] { return static_cast<int32_t>(3 + rng() % (cfg.vocab_size - 3)); };
  std::vector<zerorl::v1::Group> groups(4);
  for (auto& g : groups) {
    for (int i = 0; i < 32; ++i) g.mutable_prompt()->add_token_ids(tok());
    for (int s = 0; s < 4; ++s) {
      auto* t = g.add_trajectories();
      for (int i = 0; i < 96; ++i) t->mutable_sample()->add_token_ids(tok());
      t->mutable_reward()->set_reward(static_cast<double>(s % 2));
    }
  }
  std::vector<double> secs;
  for (int i = 0; i <= steps; ++i) {
    const auto t0 = Clock::now();
    ZRL_RETURN_IF_ERROR(trainer->Step(groups).status());
    if (i > 0) secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return Median(secs);
}

}  // namespace

int BenchWeights(int argc, char** argv) {
  CLI::App app{"zerorl bench weights: weight push MB/s against raw TCP; learner step time"};
  std::string config_path = "../shared/bench/moe-bench.config.json";  // from the repository root
  int workers = 2, repeats = 3, steps = 3;
  int64_t chunk = 4 << 20;
  bool skip_100m = false, skip_learner = false;
  app.add_option("--config", config_path, "reference model config.json")->capture_default_str();
  app.add_option("--workers", workers, "rollout workers to push to")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--chunk-bytes", chunk, "UpdateWeights chunk size")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1} << 10, int64_t{1} << 30));
  app.add_option("--repeats", repeats, "timed pushes per model (median reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--steps", steps, "timed learner steps (median reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_flag("--skip-100m", skip_100m, "only the reference model");
  app.add_flag("--skip-learner", skip_learner, "no learner step timing (weight push only)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // usage errors exit 2, as every zerorl command
  }
  auto ref_cfg = model::LoadModelConfig(config_path);
  if (!ref_cfg.ok()) {
    std::fprintf(stderr, "bench weights: --config %s: %s (run from the repository root or pass --config)\n",
                 config_path.c_str(), std::string(ref_cfg.status().message()).c_str());
    return 1;
  }
  struct Row {
    std::string name, suffix;
    model::ModelConfig cfg;
  };
  std::vector<Row> rows = {{"reference", "", *ref_cfg}};
  if (!skip_100m) rows.push_back({"100M", "_100m", *model::ParseModelConfig(k100MConfig)});
  std::printf("%-10s %12s %10s %16s %14s %7s %14s %13s\n", "model", "params", "MB", "push MB/s", "raw TCP MB/s", "ratio",
              "push CPU ms", "raw CPU ms");
  std::vector<std::string> lines;
  for (const Row& row : rows) {
    auto r = BenchModelPush(row.cfg, workers, chunk, repeats);
    if (!r.ok()) {
      std::fprintf(stderr, "bench weights (%s): %s\n", row.name.c_str(), std::string(r.status().message()).c_str());
      return 1;
    }
    std::printf("%-10s %12lld %10.1f %16.1f %14.1f %7.2f %14.1f %13.1f\n", row.name.c_str(),
                static_cast<long long>(r->params), r->params * 4 / 1e6, r->push, r->raw, r->push / r->raw, r->push_cpu_ms,
                r->raw_cpu_ms);
    lines.push_back("weight_push_mb_per_s" + row.suffix + " " + std::to_string(r->push));
    lines.push_back("tcp_raw_mb_per_s" + row.suffix + " " + std::to_string(r->raw));
    lines.push_back("weight_push_cpu_ms" + row.suffix + " " + std::to_string(r->push_cpu_ms));
    lines.push_back("tcp_raw_cpu_ms" + row.suffix + " " + std::to_string(r->raw_cpu_ms));
  }
  if (skip_learner) {
    for (const std::string& l : lines) std::printf("%s\n", l.c_str());
    return 0;
  }
  auto step = LearnerStepSeconds(*ref_cfg, steps);
  if (!step.ok()) {
    std::fprintf(stderr, "bench weights (learner step): %s\n", std::string(step.status().message()).c_str());
    return 1;
  }
  std::printf("learner GRPO step, reference workload (16 x 128 tokens): %.3f s, %.0f tokens/s\n", *step,
              16 * 128 / *step);
  lines.push_back("learner_step_seconds " + std::to_string(*step));
  lines.push_back("learner_tokens_per_s " + std::to_string(16 * 128 / *step));
  for (const std::string& l : lines) std::printf("%s\n", l.c_str());
  return 0;
}

}  // namespace zerorl::bench
