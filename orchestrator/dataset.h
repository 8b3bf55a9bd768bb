// Datasets for a run: JSONL loaders (GSM8K, MATH, countdown, code), train/eval
// splits, prompt templates, and the seeded epoch cursor that hands out prompts.
//
// Loading is strict: a line that is not a JSON object, or lacks the fields of its
// kind, is an INVALID_ARGUMENT naming the file and the 1-based line number. Blank
// lines are skipped. Prompt ids are "<stem>-<line>" (stable across reloads).
// Not thread-safe; the orchestrator owns one Dataset per run.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "zerorl/v1/common.pb.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl {

// Parses one JSONL file of `kind` into prompts with `question` and `answer` set
// (text is rendered later by RenderPrompt).
absl::StatusOr<std::vector<zerorl::v1::Prompt>> LoadJsonl(const std::string& path,
                                                          zerorl::v1::DatasetKind kind);

// Parses one JSON line (for tests and tools). `where` prefixes errors ("f.jsonl:3").
absl::StatusOr<zerorl::v1::Prompt> ParseExample(const std::string& line, zerorl::v1::DatasetKind kind,
                                                const std::string& where);

// The question text a countdown task is shown as (TinyZero's wording).
std::string CountdownQuestion(const zerorl::v1::CountdownTask& task);

// The R1-Zero template with "{question}" in it.
extern const char kR1ZeroTemplate[];

// Renders a chat conversation of one user turn (the tokenizer's chat template),
// ending where the assistant's reply begins.
using ChatRenderer = std::function<absl::StatusOr<std::string>(const std::string& user_message)>;

// Fills prompt->text from its question under the dataset's template. Custom
// templates may use {question}, and for countdown also {nums} (space-separated)
// and {target}. PROMPT_TEMPLATE_CHAT needs `chat` (FAILED_PRECONDITION without).
absl::Status RenderPrompt(const zerorl::v1::DatasetConfig& config, const ChatRenderer& chat,
                          zerorl::v1::Prompt* prompt);

// The train and eval splits of a run, rendered.
struct DatasetSplits {
  std::vector<zerorl::v1::Prompt> train;
  std::vector<zerorl::v1::Prompt> eval;
  std::vector<std::string> skipped;  // ids of the prompts too long to run, in file order
};

// The number of policy tokens of a rendered prompt, as the rollout worker will
// encode it (Tokenizer::EncodePrompt).
using PromptTokenCounter = std::function<int64_t(const std::string& text)>;

// What LoadDataset checks beyond the files themselves.
struct DatasetLimits {
  // Prompts of more than max_prompt_tokens tokens (by count_tokens) are
  // skipped, from both splits, and listed in DatasetSplits::skipped. No
  // counter, or max_prompt_tokens <= 0: nothing is skipped.
  PromptTokenCounter count_tokens;
  int64_t max_prompt_tokens = 0;
  // The train split must keep at least this many prompts (one step's worth);
  // else INVALID_ARGUMENT naming `min_train_key`.
  int64_t min_train_prompts = 1;
  std::string min_train_key = "rollout.prompts_per_step";
};

// Loads train_path (and eval_path, or holds out eval_fraction of train, chosen
// by `seed`), renders every prompt, drops the prompts `limits` finds too long
// (logging their count and ids). Relative paths resolve against `base_dir`
// when they do not exist as given. Errors name the offending file and line.
absl::StatusOr<DatasetSplits> LoadDataset(const zerorl::v1::DatasetConfig& config, uint64_t seed,
                                          const std::string& base_dir, const ChatRenderer& chat,
                                          const DatasetLimits& limits = {});

// Position in the train split: epoch number and index into that epoch's order.
struct DatasetCursor {
  int64_t epoch = 0;
  int64_t index = 0;
};

// Hands out train prompts in a per-epoch order (seeded shuffle of (seed, epoch),
// or file order). The same (seed, cursor) always yields the same prompts, which
// is what makes a resumed run continue exactly.
class PromptSampler {
 public:
  PromptSampler(const std::vector<zerorl::v1::Prompt>* train, uint64_t seed, bool shuffle);

  // The next `n` prompts, advancing the cursor (wrapping into new epochs).
  std::vector<zerorl::v1::Prompt> Next(int n);
  const DatasetCursor& cursor() const { return cursor_; }
  void set_cursor(const DatasetCursor& c);

 private:
  void BuildOrder();

  const std::vector<zerorl::v1::Prompt>* train_;
  uint64_t seed_;
  bool shuffle_;
  DatasetCursor cursor_;
  std::vector<int64_t> order_;  // permutation of [0, train.size()) for cursor_.epoch
};

}  // namespace zerorl
