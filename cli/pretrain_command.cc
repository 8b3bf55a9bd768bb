// `zerorl pretrain`: trains the small countdown base model (deepseek_v3 family,
// MoE, char vocabulary) on synthetic text, and writes the demo's task splits.
// `--task countdown` (the default) makes `make demo`'s base and splits,
// `--task countdown-hard` those of `make demo-hard`: 3–4 numbers, and a corpus
// of short searches (orchestrator/countdown_search.h) that often give up before
// they find a solution — the habit GRPO then turns into longer searches.
//
// The countdown corpus: for random two-number countdown tasks, the demo's prompt
//   "<bos>nums 3 8 target 5\n<think>"
// followed by a worked completion that computes every candidate correctly,
// concludes with the one that hits the target, then answers with one operator
// (orchestrator/countdown_tasks.h):
//   "3+8=11 8-3=5 3*8=24 so 8-3</think><answer>3*8</answer><eos>"
// The answer follows the think's conclusion only with probability
// --correct-fraction and is otherwise a wrong operator, so the base model knows
// the format, the arithmetic and which candidate is right, but mostly answers
// against its own reasoning — which GRPO then fixes. Loss is cross-entropy
// on the completion tokens. Deterministic in --seed on a given machine.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "common/status.h"
#include "model/model.h"
#include "model/optimizer.h"
#include "model/tokenizer.h"
#include "orchestrator/countdown_search.h"
#include "orchestrator/countdown_tasks.h"
#include "reward/countdown_checker.h"
#include "common/splitmix.h"

namespace zerorl {
namespace {

// The base architecture: a 4-layer deepseek_v3 MoE (MLA, 1 dense + 3 MoE
// layers of 8 routed experts top-2 plus a shared expert), ~1M parameters.
model::ModelConfig BaseConfig(int hidden, int layers, int max_positions) {
  model::ModelConfig c;
  c.family = model::ModelFamily::kDeepseekV3;
  c.vocab_size = 100;
  c.hidden_size = hidden;
  c.intermediate_size = 2 * hidden;
  c.moe_intermediate_size = hidden / 2;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.q_lora_rank = 0;
  c.kv_lora_rank = hidden / 4;
  c.qk_nope_head_dim = hidden / 8;
  c.qk_rope_head_dim = hidden / 8;
  c.v_head_dim = hidden / 4;
  c.n_routed_experts = 8;
  c.n_shared_experts = 1;
  c.num_experts_per_tok = 2;
  c.n_group = 1;
  c.topk_group = 1;
  c.scoring_func = model::ScoringFunc::kSigmoid;
  c.use_correction_bias = true;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 1.0;
  c.first_k_dense_replace = 1;
  c.rms_norm_eps = 1e-6;
  c.max_position_embeddings = max_positions;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

// The value of the expression between `open` and `close` in the completion if
// it is "x op y" over exactly the task's two numbers, else -1.
int64_t ExpressionValue(const std::string& completion, const zerorl::v1::CountdownTask& t, const std::string& open,
                        const std::string& close) {
  size_t a = completion.find(open);
  if (a == std::string::npos) return -1;
  a += open.size();
  size_t b = completion.find(close, a);
  if (b == std::string::npos) return -1;
  std::string e = completion.substr(a, b - a);
  size_t op = e.find_first_of("+-*", 1);
  if (op == std::string::npos) return -1;
  int64_t x = std::atoll(e.substr(0, op).c_str()), y = std::atoll(e.substr(op + 1).c_str());
  if (!((x == t.nums(0) && y == t.nums(1)) || (x == t.nums(1) && y == t.nums(0)))) return -1;
  const char o = e[op];
  if (o == '-') return x - y;
  return o == '+' ? x + y : x * y;
}

struct PretrainFlags {
  std::string task = "countdown";  // or "countdown-hard"
  std::string out_dir, tasks_dir;
  int steps = 1500, batch = 32, hidden = 128, layers = 4, max_num = 12, eval_size = 100, threads = 0;
  double lr = 3e-3, correct_fraction = 0.15, check_weight = 1;
  uint64_t seed = 1, split_seed = 7;
  // countdown-hard only
  int max_target = 50, tasks = 3000, train_size = 0, max_new_tokens = 80;
  SearchTraceOptions trace;

  bool hard() const { return task == "countdown-hard"; }
  SearchTaskOptions SearchOptions() const {
    SearchTaskOptions o;
    o.max_num = max_num;
    o.max_target = max_target;
    return o;
  }
};

// Parses and checks the flags. Returns the exit code when the command ends
// here (0 after --help, 2 on a usage error, with the reason on stderr).
std::optional<int> ParseFlags(int argc, char** argv, PretrainFlags* f) {
  CLI::App app{"Train the countdown base model on synthetic text; optionally write the task splits.",
               "zerorl pretrain"};
  app.add_option("--task", f->task, "countdown (make demo) or countdown-hard (make demo-hard)")
      ->check(CLI::IsMember({"countdown", "countdown-hard"}))
      ->capture_default_str();
  app.add_option("--out", f->out_dir, "checkpoint directory to write (config.json, model.safetensors)");
  app.add_option("--write-tasks", f->tasks_dir, "also write DIR/train.jsonl and DIR/eval.jsonl (the demo splits)");
  app.add_option("--steps", f->steps, "optimiser steps")->capture_default_str();
  app.add_option("--batch", f->batch, "sequences per step")->capture_default_str();
  app.add_option("--hidden", f->hidden, "hidden size (multiple of 32)")->capture_default_str();
  app.add_option("--layers", f->layers, "transformer layers (the first is dense)")->capture_default_str();
  app.add_option("--lr", f->lr, "peak learning rate (AdamW, cosine)")->capture_default_str();
  app.add_option("--max-num", f->max_num, "task numbers are drawn from [1, max-num] (countdown-hard: default 9)")
      ->capture_default_str();
  app.add_option("--correct-fraction", f->correct_fraction, "countdown: share of corpus answers that are right")
      ->capture_default_str();
  app.add_option("--eval-size", f->eval_size, "tasks held out for eval (with --write-tasks; countdown-hard: 200)")
      ->capture_default_str();
  app.add_option("--max-target", f->max_target, "countdown-hard: targets are in [1, max-target]")
      ->capture_default_str();
  app.add_option("--tasks", f->tasks, "countdown-hard: tasks generated; --eval-size of them are held out")
      ->capture_default_str();
  app.add_option("--train-size", f->train_size,
                 "keep only the first N of the remaining tasks as the train split (0 = all; the eval split, and "
                 "so the corpus, do not change with it)")
      ->capture_default_str();
  app.add_option("--continue-prob", f->trace.continue_prob,
                 "countdown-hard: the corpus's chance of another attempt after a miss")
      ->capture_default_str();
  app.add_option("--max-attempts", f->trace.max_attempts, "countdown-hard: the corpus's longest search")
      ->capture_default_str();
  app.add_option("--check-weight", f->check_weight,
                 "countdown-hard: loss weight of each check's verdict token (default 8; the verdict is one "
                 "token in ~30 and 6 in 7 are \"no\", so unweighted the base never learns to compare)");
  app.add_option("--seed", f->seed, "corpus and initialisation seed")->capture_default_str();
  app.add_option("--split-seed", f->split_seed, "seed of the train/eval split")->capture_default_str();
  app.add_option("--threads", f->threads, "CPU threads (0 = all)")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (f->hard()) {  // the hard task's own defaults
    if (app.count("--max-num") == 0) f->max_num = 9;
    if (app.count("--eval-size") == 0) f->eval_size = 200;
    if (app.count("--check-weight") == 0) f->check_weight = 8;
    f->max_new_tokens = 320;  // examples/countdown-hard/run.yaml's
  }
  if (f->out_dir.empty() && f->tasks_dir.empty()) {
    std::fprintf(stderr, "zerorl pretrain: nothing to do: give --out DIR and/or --write-tasks DIR\n");
    return 2;
  }
  if (f->hidden < 32 || f->hidden % 32 != 0 || f->layers < 2 || f->steps < 0 || f->batch < 1 || f->max_num < 2 ||
      f->correct_fraction < 0 || f->correct_fraction > 1) {
    std::fprintf(stderr,
                 "zerorl pretrain: need --hidden a multiple of 32, --layers >= 2, --batch >= 1, --max-num >= 2, "
                 "--correct-fraction in [0, 1]\n");
    return 2;
  }
  if (f->train_size < 0) {
    std::fprintf(stderr, "zerorl pretrain: --train-size must be >= 0\n");
    return 2;
  }
  if (f->hard() && (f->max_target < 2 || f->tasks <= f->eval_size || f->trace.continue_prob < 0 ||
                    f->trace.continue_prob > 1 || f->trace.max_attempts < 1 || f->max_num > 99 || f->check_weight <= 0)) {
    std::fprintf(stderr,
                 "zerorl pretrain: countdown-hard needs --max-target >= 2, --tasks > --eval-size, --continue-prob in "
                 "[0, 1], --max-attempts >= 1, --max-num <= 99, --check-weight > 0\n");
    return 2;
  }
  return std::nullopt;
}

// DIR/train.jsonl and DIR/eval.jsonl, the demo's task splits.
absl::Status WriteTaskSplits(const CountdownSplits& splits, const std::string& dir) {
  std::filesystem::create_directories(dir);
  for (const auto& [name, tasks] : {std::pair{"train", &splits.train}, std::pair{"eval", &splits.eval}}) {
    const std::string path = absl::StrCat(dir, "/", name, ".jsonl");
    ZRL_RETURN_IF_ERROR(WriteCountdownJsonl(path, *tasks));
    std::printf("wrote %s (%zu tasks)\n", path.c_str(), tasks->size());
  }
  return absl::OkStatus();
}

// The synthetic corpus (see the banner). countdown: uniformly random ordered
// pairs and operators over the whole range (the split only matters for RL; the
// base model sees arithmetic facts). countdown-hard: random tasks (never one of
// the eval split's) with a search trace each. Deterministic in the seed.
class Corpus {
 public:
  Corpus(const Tokenizer& tok, const PretrainFlags& f, const std::vector<zerorl::v1::CountdownTask>& held_out)
      : tok_(tok), f_(f), rng_(f.seed * 0x9E3779B97F4A7C15ULL + 11) {
    if (f.hard()) {
      for (const auto& t : held_out) held_out_.insert(t.SerializeAsString());
    }
  }

  // One example: BOS + prompt + completion + EOS; *prompt_len counts BOS and the
  // prompt. (*weights)[i] weighs the loss of predicting token i: 1, or
  // --check-weight for the verdict of a countdown-hard check ("y"/"n" of " yes."/" no.").
  void Next(std::vector<int32_t>* ids, int32_t* prompt_len, std::vector<float>* weights) {
    zerorl::v1::CountdownTask t;
    std::string completion;
    if (f_.hard()) {
      do {
        t = RandomSearchTask(f_.SearchOptions(), &rng_);
      } while (held_out_.count(t.SerializeAsString()));
      completion = SearchCompletion(t, f_.trace, &rng_);
    } else {
      t.add_nums(1 + static_cast<int64_t>(rng_.Below(f_.max_num)));
      t.add_nums(1 + static_cast<int64_t>(rng_.Below(f_.max_num)));
      const char op = kCountdownOps[rng_.Below(3)];
      t.set_target(ApplyCountdownOp(t.nums(0), t.nums(1), op));
      std::vector<char> right = CorrectCountdownOps(t), wrong;
      for (char o : kCountdownOps) {
        if (std::find(right.begin(), right.end(), o) == right.end()) wrong.push_back(o);
      }
      char answer = right[rng_.Below(right.size())];
      if (!wrong.empty() && rng_.Uniform() >= f_.correct_fraction) answer = wrong[rng_.Below(wrong.size())];
      completion = CountdownCompletion(t, answer);
    }
    ids->assign(1, tok_.bos_id());
    for (int32_t id : tok_.Encode(CountdownPromptText(t))) ids->push_back(id);
    *prompt_len = static_cast<int32_t>(ids->size());
    for (int32_t id : tok_.Encode(completion)) ids->push_back(id);
    ids->push_back(tok_.eos_id());
    weights->assign(ids->size(), 1.f);
    if (f_.hard() && f_.check_weight != 1) {
      for (const char* verdict : kSearchVerdicts) {
        for (size_t at = completion.find(verdict); at != std::string::npos; at = completion.find(verdict, at + 1)) {
          // the character vocabulary: one token per character
          (*weights)[*prompt_len + tok_.Encode(completion.substr(0, at + 1)).size()] =
              static_cast<float>(f_.check_weight);
        }
      }
    }
  }

 private:
  const Tokenizer& tok_;
  const PretrainFlags& f_;
  SplitMix64 rng_;
  std::set<std::string> held_out_;  // serialized eval tasks (countdown-hard)
};

// `batch` corpus examples as one right-padded [B, T] block; plen[b] is
// example b's prompt length, weights[b] its per-token loss weights.
model::TrainBatch NextBatch(Corpus* corpus, int batch, std::vector<int32_t>* plen,
                            std::vector<std::vector<float>>* weights) {
  std::vector<std::vector<int32_t>> seqs(batch);
  plen->assign(batch, 0);
  weights->assign(batch, {});
  int64_t T = 0;
  for (int b = 0; b < batch; ++b) {
    corpus->Next(&seqs[b], &(*plen)[b], &(*weights)[b]);
    T = std::max<int64_t>(T, seqs[b].size());
  }
  model::TrainBatch tb;
  tb.B = batch;
  tb.T = T;
  tb.tokens.assign(batch * T, 0);
  for (int b = 0; b < batch; ++b) {
    std::copy(seqs[b].begin(), seqs[b].end(), tb.tokens.begin() + b * T);
    tb.lengths.push_back(static_cast<int32_t>(seqs[b].size()));
  }
  return tb;
}

// dloss/dlogp [B, T-1] of the weighted mean NLL over completion targets only:
// position t predicts token t+1, a completion token when t+1 >= prompt length.
std::vector<float> CompletionGradient(const model::TrainBatch& tb, const std::vector<int32_t>& plen,
                                      const std::vector<std::vector<float>>& weights) {
  const int64_t T = tb.T;
  std::vector<float> dlogp(tb.B * (T - 1), 0.f);
  double total = 0;
  for (int b = 0; b < tb.B; ++b) {
    for (int64_t t = plen[b] - 1; t + 1 < static_cast<int64_t>(tb.lengths[b]); ++t) total += weights[b][t + 1];
  }
  for (int b = 0; b < tb.B; ++b) {
    for (int64_t t = plen[b] - 1; t + 1 < static_cast<int64_t>(tb.lengths[b]); ++t) {
      dlogp[b * (T - 1) + t] = static_cast<float>(-weights[b][t + 1] / total);
    }
  }
  return dlogp;
}

// One optimiser step on a fresh corpus batch: forward, backward, clip, AdamW,
// router-bias update. Returns the batch's mean completion NLL.
absl::StatusOr<double> TrainStep(int step, float lr, int batch, Corpus* corpus, model::AdamW* adam,
                                 model::Model* m) {
  std::vector<int32_t> plen;
  std::vector<std::vector<float>> weights;
  const model::TrainBatch tb = NextBatch(corpus, batch, &plen, &weights);
  std::vector<float> dlogp = CompletionGradient(tb, plen, weights);
  model::TrainOutput out;
  m->ZeroGrad();
  absl::Status st = m->TrainForward(tb, {}, &out);
  if (st.ok()) st = m->TrainBackward(dlogp.data());
  if (!st.ok()) return absl::Status(st.code(), absl::StrCat("step ", step, ": ", st.message()));
  double loss = 0;
  for (size_t i = 0; i < dlogp.size(); ++i) loss += dlogp[i] * out.logp[i];  // = -mean logp
  auto params = m->Parameters();
  model::ClipGradNorm(params, 1.0f);
  ZRL_RETURN_IF_ERROR(adam->Step(params, lr));
  m->UpdateRouterBias(0.001f);
  return loss;
}

// The whole pretraining run (AdamW, warmup + cosine), printing the loss's
// moving average every 100 steps.
absl::Status Pretrain(const PretrainFlags& f, const Tokenizer& tok, const std::vector<zerorl::v1::CountdownTask>& eval,
                      model::Model* m) {
  Corpus corpus(tok, f, eval);
  model::AdamWConfig adam_cfg;
  adam_cfg.weight_decay = 0.01f;
  model::AdamW adam(adam_cfg);
  model::LrSchedule sched;
  sched.peak_lr = static_cast<float>(f.lr);
  sched.warmup_steps = std::min(100, f.steps / 10);
  sched.total_steps = std::max(f.steps, 1);
  sched.min_lr_ratio = 0.05f;
  const auto t0 = std::chrono::steady_clock::now();
  double ema = 0;
  for (int step = 0; step < f.steps; ++step) {
    ZRL_ASSIGN_OR_RETURN(const double loss, TrainStep(step, sched.LrAt(step), f.batch, &corpus, &adam, m));
    ema = step == 0 ? loss : 0.95 * ema + 0.05 * loss;
    if (step % 100 == 0 || step + 1 == f.steps) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("step %5d/%d  loss %.4f  lr %.2e  %.1fs\n", step + 1, f.steps, ema, sched.LrAt(step), secs);
      std::fflush(stdout);
    }
  }
  return absl::OkStatus();
}

// Greedy accuracy on the eval split, as the demo's "before" number (printed;
// a generation failure prints nothing).
void PrintGreedyEval(model::Model& m, const Tokenizer& tok, const std::vector<zerorl::v1::CountdownTask>& eval,
                     const PretrainFlags& f) {
  if (eval.empty()) return;
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& t : eval) {
    std::vector<int32_t> ids{tok.bos_id()};
    for (int32_t id : tok.Encode(CountdownPromptText(t))) ids.push_back(id);
    prompts.push_back(std::move(ids));
  }
  model::SamplerParams greedy;
  greedy.greedy = true;
  auto gen_out = m.Generate(prompts, 1, greedy, f.seed, {tok.eos_id()}, f.max_new_tokens);  // run.yaml's
  if (!gen_out.ok()) return;
  if (f.hard()) {
    int correct = 0, formatted = 0;
    double attempts = 0, length = 0;
    reward::CountdownScores rules;
    rules.at_most_once = true;
    for (size_t i = 0; i < eval.size(); ++i) {
      const std::string text = tok.Decode((*gen_out)[i].tokens, true);
      const std::string verdict =
          reward::CheckCountdown(text, {eval[i].nums().begin(), eval[i].nums().end()}, eval[i].target(), rules)
              .verdict;
      correct += verdict == "correct";
      formatted += verdict == "correct" || verdict == "wrong";
      attempts += CountSearchAttempts(text);
      length += (*gen_out)[i].tokens.size();
    }
    std::printf("base greedy eval accuracy: %.1f%% (%d/%zu), well-formed %.1f%%, %.2f attempts and %.1f tokens "
                "per completion\n",
                100.0 * correct / eval.size(), correct, eval.size(), 100.0 * formatted / eval.size(),
                attempts / eval.size(), length / eval.size());
    return;
  }
  int correct = 0, formatted = 0, concluded = 0;
  for (size_t i = 0; i < eval.size(); ++i) {
    const std::string text = tok.Decode((*gen_out)[i].tokens, true);
    const int64_t v = ExpressionValue(text, eval[i], "<answer>", "</answer>");
    formatted += v >= 0 || text.find("</answer>") != std::string::npos;
    correct += v == eval[i].target();
    concluded += ExpressionValue(text, eval[i], " so ", "</think>") == eval[i].target();
  }
  std::printf("base greedy eval accuracy: %.1f%% (%d/%zu), well-formed %.1f%%, think concludes right %.1f%%\n",
              100.0 * correct / eval.size(), correct, eval.size(), 100.0 * formatted / eval.size(),
              100.0 * concluded / eval.size());
}

// The base model's checkpoint: create, pretrain, evaluate, save.
absl::Status TrainBaseModel(const PretrainFlags& f, const CountdownSplits& splits) {
  auto tok = Tokenizer::CharVocabulary();
  ZRL_ASSIGN_OR_RETURN(std::unique_ptr<model::Model> m,
                       model::Model::Create(BaseConfig(f.hidden, f.layers, f.hard() ? 512 : 256), f.seed));
  std::printf("model: deepseek_v3 MoE, %lld parameters (%.1f MB fp32)\n", static_cast<long long>(m->NumParams()),
              m->NumParams() * 4 / 1e6);
  ZRL_RETURN_IF_ERROR(Pretrain(f, *tok, splits.eval, m.get()));
  PrintGreedyEval(*m, *tok, splits.eval, f);
  std::filesystem::create_directories(f.out_dir);
  ZRL_RETURN_IF_ERROR(m->Save(f.out_dir));
  std::printf("wrote %s\n", f.out_dir.c_str());
  return absl::OkStatus();
}

}  // namespace

int PretrainCommand(int argc, char** argv) {
  PretrainFlags f;
  if (std::optional<int> exit_code = ParseFlags(argc, argv, &f)) return *exit_code;
  if (f.threads > 0) setenv("OPENBLAS_NUM_THREADS", std::to_string(f.threads).c_str(), 1);
  CountdownGenOptions gen;
  gen.count = 2;
  gen.max_num = f.max_num;
  CountdownSplits splits =
      SplitCountdownTasks(f.hard() ? GenerateSearchTasks(f.SearchOptions(), f.tasks, f.split_seed)
                                   : GenerateCountdownTasks(gen),
                          f.eval_size, f.split_seed);
  if (f.train_size > 0 && splits.train.size() > static_cast<size_t>(f.train_size)) splits.train.resize(f.train_size);
  absl::Status st;
  if (!f.tasks_dir.empty()) st = WriteTaskSplits(splits, f.tasks_dir);
  if (st.ok() && !f.out_dir.empty()) st = TrainBaseModel(f, splits);
  if (!st.ok()) {
    std::fprintf(stderr, "zerorl pretrain: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace zerorl
