// `zerorl generate`: load an HF checkpoint directory (config.json, safetensors,
// tokenizer.json if present — else the built-in character vocabulary), sample
// a completion of a prompt, print it (or, with --json, one object with the
// token ids and their logprobs). --prompt TEXT becomes ids as rollout and the
// learner make them (Tokenizer::EncodePrompt: BOS, when the tokenizer has one,
// then the text), so a checkpoint sees the prompt it was trained on;
// --prompt-ids are used exactly as given.
//
// Lengths are checked before any work: the prompt's tokens plus
// --max-new-tokens must fit the model's max_position_embeddings (a prompt of
// more than 64 bytes per position is refused before tokenizing); --threads is
// 0..1024. A violation is a usage error
// (exit 2) naming the flag; a model that does not load (NaN weights included)
// exits 1.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <sstream>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/config.h"
#include "model/device.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace zerorl {
namespace {

// No tokenizer we load merges more than this many bytes into one token on
// average over a long text (BPE vocabularies top out near 16-byte tokens).
constexpr int64_t kMaxPromptBytesPerPosition = 64;

bool ParseIds(const std::string& s, std::vector<int32_t>* out) {
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      long v = std::stol(item, &used);
      if (used != item.size() || v < 0 || v > INT32_MAX) return false;
      out->push_back(static_cast<int32_t>(v));
    } catch (...) {
      return false;
    }
  }
  return !out->empty();
}

}  // namespace

int GenerateCommand(int argc, char** argv) {
  CLI::App app{"Sample a completion from an HF checkpoint directory.", "zerorl generate"};
  std::string dir, prompt, prompt_ids;
  int64_t max_new = 64, top_k = 0, samples = 1;
  double temperature = 1.0, top_p = 1.0;
  uint64_t seed = 0;
  int threads = 0;
  bool greedy = false, as_json = false;
  app.add_option("--model", dir, "checkpoint directory (config.json + model.safetensors)")->required();
  auto* p_text = app.add_option("--prompt", prompt, "prompt text (tokenizer.json, or the char vocabulary)");
  auto* p_ids = app.add_option("--prompt-ids", prompt_ids, "prompt token ids, comma-separated");
  p_text->excludes(p_ids);
  app.add_option("--max-new-tokens", max_new, "tokens to generate at most")->capture_default_str();
  auto* g = app.add_flag("--greedy", greedy, "argmax decoding");
  app.add_option("--temperature", temperature, "sampling temperature")->capture_default_str()->excludes(g);
  app.add_option("--top-p", top_p, "nucleus sampling mass (1 = off)")->capture_default_str()->excludes(g);
  app.add_option("--top-k", top_k, "sample among the k most likely (0 = off)")->capture_default_str()->excludes(g);
  app.add_option("--seed", seed, "sampling seed (same seed, same tokens)")->capture_default_str();
  app.add_option("--samples", samples, "completions of the prompt (one shared prefill)")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0 = all)")->capture_default_str();
  std::string device = "cpu";
  app.add_option("--device", device, "cpu, cuda or cuda:N (the model and its KV cache on that GPU)")
      ->capture_default_str();
  app.add_flag("--json", as_json, "print one JSON object per completion with ids and logprobs");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (prompt.empty() && prompt_ids.empty()) {
    std::fprintf(stderr, "zerorl generate: give --prompt TEXT or --prompt-ids 1,2,3\n");
    return 2;
  }
  if (max_new < 1 || samples < 1 || !(temperature > 0) || !(top_p > 0 && top_p <= 1) || top_k < 0) {
    std::fprintf(stderr,
                 "zerorl generate: need --max-new-tokens >= 1, --samples >= 1, --temperature > 0, "
                 "--top-p in (0, 1], --top-k >= 0\n");
    return 2;
  }
  if (auto s = ValidateThreads(threads, "--threads"); !s.ok()) {
    std::fprintf(stderr, "zerorl generate: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (threads > 0) model::ops::SetCpuThreads(threads);
  auto backend = model::BackendForDevice(device, "--device");
  if (!backend.ok()) {
    std::fprintf(stderr, "zerorl generate: %s\n", std::string(backend.status().message()).c_str());
    return 2;
  }
  auto m = model::Model::Load(dir, *backend);
  if (!m.ok()) {
    std::fprintf(stderr, "zerorl generate: %s\n", std::string(m.status().message()).c_str());
    return 1;
  }
  const model::ModelConfig& cfg = (*m)->config();
  const int64_t positions = cfg.max_position_embeddings;
  if (max_new >= positions) {
    std::fprintf(stderr,
                 "zerorl generate: --max-new-tokens %lld leaves no room for a prompt in the model's %lld positions\n",
                 static_cast<long long>(max_new), static_cast<long long>(positions));
    return 2;
  }
  // A byte-level tokenizer makes at most one token per byte, and tokenizing
  // megabytes only to refuse them costs minutes and gigabytes: refuse early
  // what cannot fit. (The exact check follows on the token count.)
  if (!prompt.empty() && static_cast<int64_t>(prompt.size()) > kMaxPromptBytesPerPosition * positions) {
    std::fprintf(stderr, "zerorl generate: --prompt of %zu bytes cannot fit the model's %lld positions\n",
                 prompt.size(), static_cast<long long>(positions));
    return 2;
  }
  struct stat st;
  const bool has_tok = stat((dir + "/tokenizer.json").c_str(), &st) == 0;
  std::unique_ptr<Tokenizer> tok;
  if (has_tok) {
    auto t = Tokenizer::Load(dir);
    if (!t.ok()) {
      std::fprintf(stderr, "zerorl generate: %s\n", std::string(t.status().message()).c_str());
      return 1;
    }
    tok = std::move(*t);
  } else {
    tok = Tokenizer::CharVocabulary();
  }
  std::vector<int32_t> ids;
  if (!prompt_ids.empty()) {
    if (!ParseIds(prompt_ids, &ids)) {
      std::fprintf(stderr, "zerorl generate: --prompt-ids must be comma-separated non-negative integers\n");
      return 2;
    }
  } else {
    ids = tok->EncodePrompt(prompt);  // BOS + text: the ids rollout and learner give the policy
    if (ids.empty()) {
      std::fprintf(stderr, "zerorl generate: the prompt encodes to no tokens\n");
      return 2;
    }
  }
  if (static_cast<int64_t>(ids.size()) + max_new > positions) {
    std::fprintf(stderr,
                 "zerorl generate: the prompt (%zu tokens) + --max-new-tokens %lld exceeds the model's %lld positions\n",
                 ids.size(), static_cast<long long>(max_new), static_cast<long long>(positions));
    return 2;
  }
  for (int32_t id : ids)
    if (id >= cfg.vocab_size) {
      std::fprintf(stderr, "zerorl generate: prompt token %d is outside the model's vocabulary of %lld%s\n", id,
                   static_cast<long long>(cfg.vocab_size), has_tok ? "" : " (no tokenizer.json: char vocabulary)");
      return 2;
    }
  std::vector<int32_t> stop;
  for (int64_t e : cfg.eos_token_ids) stop.push_back(static_cast<int32_t>(e));
  if (tok->eos_id() >= 0 && tok->eos_id() < cfg.vocab_size) stop.push_back(tok->eos_id());
  model::SamplerParams sp;
  sp.greedy = greedy;
  sp.temperature = static_cast<float>(temperature);
  sp.top_p = static_cast<float>(top_p);
  sp.top_k = top_k;
  auto r = (*m)->Generate({ids}, samples, sp, seed, stop, max_new);
  if (!r.ok()) {
    std::fprintf(stderr, "zerorl generate: %s\n", std::string(r.status().message()).c_str());
    return 1;
  }
  for (const auto& s : *r) {
    std::string text = tok->Decode(s.tokens);
    if (as_json) {
      nlohmann::json j = {{"prompt_ids", ids},
                          {"tokens", s.tokens},
                          {"logprobs", s.logprobs},
                          {"sampling_logprobs", s.sampling_logprobs},
                          {"finish_reason", s.finish == model::FinishReason::kStop ? "stop" : "length"},
                          {"text", text}};
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::printf("%s\n", text.c_str());
    }
  }
  return 0;
}

}  // namespace zerorl
