// The countdown task family (as TinyZero's Countdown): given numbers and a
// target, write an equation that uses each number exactly once and equals the
// target. Generates tasks, fixed seeded train/eval splits (written as JSONL
// {"nums": [...], "target": N}), and the worked-solution text the synthetic
// base model is pretrained on.
//
// With two numbers every task is enumerated: for each ordered pair (a, b) in
// [1, max_num]², the distinct targets a+b, |a-b| and a*b. With three or more
// numbers tasks are sampled: a random left-to-right combination of a shuffled
// draw. Deterministic for a given seed on every platform.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "zerorl/v1/common.pb.h"

namespace zerorl {

struct CountdownGenOptions {
  int count = 2;          // numbers per task, 2..4
  int max_num = 12;       // numbers are drawn from [1, max_num]
  int sampled_tasks = 2000;  // tasks drawn when count > 2 (count == 2 enumerates)
  uint64_t seed = 0;
};

struct CountdownSplits {
  std::vector<zerorl::v1::CountdownTask> train;
  std::vector<zerorl::v1::CountdownTask> eval;
};

// Every distinct task of the options (count == 2) or a seeded sample (count > 2).
std::vector<zerorl::v1::CountdownTask> GenerateCountdownTasks(const CountdownGenOptions& options);

// Shuffles the tasks with `seed` and holds out `eval_size` of them.
CountdownSplits SplitCountdownTasks(std::vector<zerorl::v1::CountdownTask> tasks, int eval_size, uint64_t seed);

// Writes tasks as JSONL, atomically (temporary file, then rename).
absl::Status WriteCountdownJsonl(const std::string& path, const std::vector<zerorl::v1::CountdownTask>& tasks);

// The binary operators a two-number solution may use, in trace order.
constexpr char kCountdownOps[] = {'+', '-', '*'};

// a op b, with '-' taken as larger minus smaller (the form traces and solutions use).
int64_t ApplyCountdownOp(int64_t a, int64_t b, char op);

// The expression for `op` over a two-number task, e.g. "8-3" or "3*8".
std::string CountdownExpression(const zerorl::v1::CountdownTask& task, char op);

// The worked completion of a two-number task: every candidate computed, a
// conclusion naming the (first) candidate that hits the target, then the chosen
// operator's expression as the answer:
//   "3+8=11 8-3=5 3*8=24 so 8-3</think><answer>3*8</answer>"
// (the prompt ends in "<think>"; no conclusion when nothing hits the target).
// `op` need not be correct: the base-model corpus deliberately answers against
// its own conclusion most of the time.
std::string CountdownCompletion(const zerorl::v1::CountdownTask& task, char op);

// The operators whose result equals the task's target.
std::vector<char> CorrectCountdownOps(const zerorl::v1::CountdownTask& task);

}  // namespace zerorl
