// Dataset loading, templates and the prompt sampler (see dataset.h).
#include "orchestrator/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/json.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/status.h"
#include "common/log.h"
#include "common/splitmix.h"

namespace zerorl {
namespace {

using json = nlohmann::json;
using zerorl::v1::DatasetKind;
using zerorl::v1::Prompt;

absl::Status Bad(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::StatusOr<std::string> StringField(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return Bad(where, absl::StrCat("missing \"", key, "\""));
  if (!it->is_string()) return Bad(where, absl::StrCat("\"", key, "\" must be a string"));
  return it->get<std::string>();
}

// The content of the last \boxed{...} in `s` (nested braces), or "".
std::string LastBoxed(const std::string& s) {
  size_t pos = s.rfind("\\boxed{");
  if (pos == std::string::npos) return "";
  size_t i = pos + 7;
  int depth = 1;
  std::string out;
  for (; i < s.size(); ++i) {
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth == 0) return out;
    out.push_back(s[i]);
  }
  return "";
}

std::string FileStem(const std::string& path) { return std::filesystem::path(path).stem().string(); }

}  // namespace

const char kR1ZeroTemplate[] =
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
    "</answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
    "</answer>. User: {question} Assistant: <think>";

std::string CountdownQuestion(const zerorl::v1::CountdownTask& task) {
  return absl::StrCat("Using the numbers [", absl::StrJoin(task.nums(), ", "), "], create an equation that equals ",
                      task.target(),
                      ". You can use basic arithmetic operations (+, -, *, /) and each number can only be used once.");
}

absl::StatusOr<Prompt> ParseExample(const std::string& line, DatasetKind kind, const std::string& where) {
  auto parsed = ParseJson(line);
  if (!parsed.ok()) return Bad(where, parsed.status().message());
  json j = std::move(*parsed);
  if (!j.is_object()) return Bad(where, "expected a JSON object");
  Prompt p;
  switch (kind) {
    case zerorl::v1::DATASET_KIND_GSM8K: {
      ZRL_ASSIGN_OR_RETURN(std::string q, StringField(j, "question", where));
      ZRL_ASSIGN_OR_RETURN(std::string a, StringField(j, "answer", where));
      size_t pos = a.rfind("####");
      if (pos == std::string::npos) return Bad(where, "\"answer\" has no \"#### N\" final answer");
      std::string gold(absl::StripAsciiWhitespace(a.substr(pos + 4)));
      gold = absl::StrReplaceAll(gold, {{",", ""}});
      if (gold.empty()) return Bad(where, "\"answer\" has an empty \"####\" final answer");
      p.set_question(q);
      p.mutable_answer()->set_math(gold);
      p.set_dataset("gsm8k");
      break;
    }
    case zerorl::v1::DATASET_KIND_MATH: {
      ZRL_ASSIGN_OR_RETURN(std::string q, StringField(j, "problem", where));
      std::string gold;
      if (j.contains("answer")) {
        if (j["answer"].is_string()) {
          gold = j["answer"].get<std::string>();
        } else if (j["answer"].is_number()) {
          gold = j["answer"].dump();
        } else {
          return Bad(where, "\"answer\" must be a string or a number");
        }
      } else if (j.contains("solution")) {
        ZRL_ASSIGN_OR_RETURN(std::string sol, StringField(j, "solution", where));
        gold = LastBoxed(sol);
        if (gold.empty()) return Bad(where, "\"solution\" has no \\boxed{...} answer and there is no \"answer\"");
      } else {
        return Bad(where, "missing \"answer\" or \"solution\"");
      }
      p.set_question(q);
      p.mutable_answer()->set_math(gold);
      p.set_dataset("math");
      break;
    }
    case zerorl::v1::DATASET_KIND_COUNTDOWN: {
      auto nums = j.find("nums");
      if (nums == j.end() || !nums->is_array() || nums->empty()) {
        return Bad(where, "\"nums\" must be a non-empty array of integers");
      }
      auto* task = p.mutable_answer()->mutable_countdown();
      for (const auto& n : *nums) {
        if (!n.is_number_integer()) return Bad(where, "\"nums\" must hold integers only");
        task->add_nums(n.get<int64_t>());
      }
      auto target = j.find("target");
      if (target == j.end() || !target->is_number_integer()) return Bad(where, "\"target\" must be an integer");
      task->set_target(target->get<int64_t>());
      p.set_question(CountdownQuestion(*task));
      p.set_dataset("countdown");
      break;
    }
    case zerorl::v1::DATASET_KIND_CODE: {
      ZRL_ASSIGN_OR_RETURN(std::string q, StringField(j, "question", where));
      auto io = j.find("input_output");
      if (io == j.end()) return Bad(where, "missing \"input_output\"");
      json tests;
      if (io->is_string()) {
        auto inner = ParseJson(io->get<std::string>());
        if (!inner.ok()) return Bad(where, absl::StrCat("\"input_output\": ", inner.status().message()));
        tests = std::move(*inner);
      } else {
        tests = *io;
      }
      if (!tests.is_object() || !tests.contains("inputs") || !tests.contains("outputs")) {
        return Bad(where, "\"input_output\" must be an object with \"inputs\" and \"outputs\"");
      }
      p.set_question(q);
      p.mutable_answer()->set_code_tests_json(tests.dump());
      p.set_dataset("code");
      break;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(where, ": dataset kind is not set"));
  }
  return p;
}

absl::StatusOr<std::vector<Prompt>> LoadJsonl(const std::string& path, DatasetKind kind) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("dataset file ", path, " cannot be opened"));
  std::vector<Prompt> out;
  std::string line;
  const std::string stem = FileStem(path);
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    ZRL_ASSIGN_OR_RETURN(Prompt p, ParseExample(line, kind, absl::StrCat(path, ":", lineno)));
    p.set_id(absl::StrCat(stem, "-", lineno));
    out.push_back(std::move(p));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat("dataset file ", path, " holds no examples"));
  return out;
}

absl::Status RenderPrompt(const zerorl::v1::DatasetConfig& config, const ChatRenderer& chat, Prompt* prompt) {
  std::string nums, target;
  if (prompt->answer().has_countdown()) {
    nums = absl::StrJoin(prompt->answer().countdown().nums(), " ");
    target = absl::StrCat(prompt->answer().countdown().target());
  }
  switch (config.template_()) {
    case zerorl::v1::PROMPT_TEMPLATE_RAW:
      prompt->set_text(prompt->question());
      return absl::OkStatus();
    case zerorl::v1::PROMPT_TEMPLATE_CHAT: {
      if (!chat) {
        return absl::FailedPreconditionError(
            "dataset.template: chat needs a tokenizer with a chat template (tokenizer.json model)");
      }
      ZRL_ASSIGN_OR_RETURN(std::string text, chat(prompt->question()));
      prompt->set_text(text);
      return absl::OkStatus();
    }
    case zerorl::v1::PROMPT_TEMPLATE_CUSTOM:
      if (config.template_text().find('{') == std::string::npos) {
        return absl::InvalidArgumentError("dataset.template_text: a custom template needs a {question} placeholder");
      }
      prompt->set_text(absl::StrReplaceAll(
          config.template_text(), {{"{question}", prompt->question()}, {"{nums}", nums}, {"{target}", target}}));
      return absl::OkStatus();
    case zerorl::v1::PROMPT_TEMPLATE_R1ZERO:
    default:
      prompt->set_text(absl::StrReplaceAll(kR1ZeroTemplate, {{"{question}", prompt->question()}}));
      return absl::OkStatus();
  }
}

absl::StatusOr<DatasetSplits> LoadDataset(const zerorl::v1::DatasetConfig& config, uint64_t seed,
                                          const std::string& base_dir, const ChatRenderer& chat,
                                          const DatasetLimits& limits) {
  auto resolve = [&](const std::string& p) {
    if (p.empty() || std::filesystem::exists(p) || base_dir.empty()) return p;
    std::string alt = (std::filesystem::path(base_dir) / p).string();
    return std::filesystem::exists(alt) ? alt : p;
  };
  if (config.train_path().empty()) return absl::InvalidArgumentError("dataset.train_path: not set");
  DatasetSplits splits;
  ZRL_ASSIGN_OR_RETURN(splits.train, LoadJsonl(resolve(config.train_path()), config.kind()));
  if (!config.eval_path().empty()) {
    ZRL_ASSIGN_OR_RETURN(splits.eval, LoadJsonl(resolve(config.eval_path()), config.kind()));
  } else if (config.eval_fraction() > 0) {
    if (config.eval_fraction() >= 1) return absl::InvalidArgumentError("dataset.eval_fraction: must be below 1");
    // Hold out a seeded random subset, keeping file order within each split.
    std::vector<int64_t> idx(splits.train.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
    SplitMix64 rng(seed ^ 0x65766131ULL);
    ShuffleInPlace(&idx, &rng);
    size_t n_eval = std::max<size_t>(1, static_cast<size_t>(config.eval_fraction() * idx.size()));
    if (n_eval >= idx.size()) return absl::InvalidArgumentError("dataset.eval_fraction: leaves no training examples");
    std::vector<bool> is_eval(idx.size(), false);
    for (size_t i = 0; i < n_eval; ++i) is_eval[idx[i]] = true;
    std::vector<Prompt> train;
    for (size_t i = 0; i < splits.train.size(); ++i) {
      (is_eval[i] ? splits.eval : train).push_back(std::move(splits.train[i]));
    }
    splits.train = std::move(train);
  }
  for (auto* split : {&splits.train, &splits.eval}) {
    for (auto& p : *split) ZRL_RETURN_IF_ERROR(RenderPrompt(config, chat, &p));
  }
  if (limits.count_tokens && limits.max_prompt_tokens > 0) {
    for (auto* split : {&splits.train, &splits.eval}) {
      std::vector<Prompt> kept;
      for (auto& p : *split) {
        if (limits.count_tokens(p.text()) > limits.max_prompt_tokens) {
          splits.skipped.push_back(p.id());
        } else {
          kept.push_back(std::move(p));
        }
      }
      *split = std::move(kept);
    }
  }
  if (!splits.skipped.empty()) {
    constexpr size_t kShown = 20;
    std::vector<std::string> shown(splits.skipped.begin(),
                                   splits.skipped.begin() + std::min(kShown, splits.skipped.size()));
    ZLOG(WARNING) << "dataset: skipped " << splits.skipped.size() << " prompt(s) longer than "
                  << limits.max_prompt_tokens << " tokens (dataset.max_prompt_tokens, or the model's positions "
                  << "less rollout.sampling.max_new_tokens): " << absl::StrJoin(shown, ", ")
                  << (splits.skipped.size() > kShown ? absl::StrCat(" and ", splits.skipped.size() - kShown, " more")
                                                     : "");
  }
  if (static_cast<int64_t>(splits.train.size()) < limits.min_train_prompts) {
    return absl::InvalidArgumentError(absl::StrCat(
        limits.min_train_key, ": ", limits.min_train_prompts, " prompts per step, but the train split of ",
        config.train_path(), " holds ", splits.train.size(), " prompt(s)",
        splits.skipped.empty() ? "" : absl::StrCat(" (", splits.skipped.size(), " skipped as too long)")));
  }
  return splits;
}

PromptSampler::PromptSampler(const std::vector<Prompt>* train, uint64_t seed, bool shuffle)
    : train_(train), seed_(seed), shuffle_(shuffle) {
  BuildOrder();
}

void PromptSampler::BuildOrder() {
  order_.resize(train_->size());
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<int64_t>(i);
  if (shuffle_) {
    SplitMix64 rng(seed_ * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(cursor_.epoch) + 1);
    ShuffleInPlace(&order_, &rng);
  }
}

void PromptSampler::set_cursor(const DatasetCursor& c) {
  cursor_ = c;
  BuildOrder();
}

std::vector<Prompt> PromptSampler::Next(int n) {
  std::vector<Prompt> out;
  if (train_->empty()) return out;
  for (int i = 0; i < n; ++i) {
    if (cursor_.index >= static_cast<int64_t>(order_.size())) {
      ++cursor_.epoch;
      cursor_.index = 0;
      BuildOrder();
    }
    out.push_back((*train_)[order_[cursor_.index++]]);
  }
  return out;
}

}  // namespace zerorl
