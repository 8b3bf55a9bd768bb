// Countdown with search: the task of `make demo-hard` (examples/countdown-hard)
// and the search traces its base model is pretrained on.
//
// A task has 3 or 4 numbers in [1, max_num] and a target that a chain of
// + - * over all of them, in the order given, reaches: e.g. nums 3 7 2,
// target 23 = (3*7)+2. '-' takes the smaller value from the larger. The
// reward's checker (at_most_once) accepts any equation that uses each number at
// most once, with + - * / (TinyZero's rules); the generated chains are a subset.
//
// The search is systematic: attempt i (a label 'a', 'b', ...) puts the
// operators of row i of a fixed table — the base-3 digits of i over + - * —
// between the numbers; 9 rows for 3 numbers, 26 for 4 (*** left out). Each
// attempt is written step by step, then checked against the target, restated
// beside the result so the check is a local comparison:
//   "c: 3*7=21 21+2=23 vs 23 yes.</think><answer>(3*7)+2</answer>"
// A trace starts at a random row and goes on to the next (wrapping round)
// until an attempt hits or the search gives up, answering with its last
// attempt (a well-formed miss). After each miss it goes on with probability
// `continue_prob`, so most traces make one to three attempts: the base model
// knows how to search and check, but stops before it has found a solution more
// often than not. Greedy decoding of a longer search never repeats an attempt:
// the next label, and so the next row, follows from the last.
//
// Deterministic for a given seed on every platform (SplitMix64).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/splitmix.h"
#include "zerorl/v1/common.pb.h"

namespace zerorl {

struct SearchTaskOptions {
  int min_count = 3;    // numbers per task
  int max_count = 4;
  int max_num = 9;      // numbers are drawn from [1, max_num]
  int max_target = 50;  // targets are in [1, max_target] and not one of the numbers
};

// The rows of the operator table for `count` numbers: 9 for 3, 26 for 4.
int SearchRows(int count);
// Row `row`'s operators, e.g. "+*" (count - 1 of them).
std::string SearchRowOps(int count, int row);

// One random task.
zerorl::v1::CountdownTask RandomSearchTask(const SearchTaskOptions& options, SplitMix64* rng);

// `count` distinct tasks (numbers and target), seeded.
std::vector<zerorl::v1::CountdownTask> GenerateSearchTasks(const SearchTaskOptions& options, int count,
                                                           uint64_t seed);

// One attempt: row `row` of the table over the task's numbers.
struct SearchAttempt {
  struct Step {
    int64_t left, right;  // as written: the larger first for '-'
    char op;              // '+', '-' or '*'
    int64_t value;        // the running value after this step
  };
  int row = 0;
  std::vector<Step> steps;
  std::string expression;  // the chain with the numbers once each: "(3*7)+2"
  int64_t target = 0;
  bool hit = false;  // the last value is the target

  // "c: 3*7=21 21+2=23 vs 23 yes." / "... vs 26 no."
  std::string Text() const;
};

SearchAttempt MakeSearchAttempt(const zerorl::v1::CountdownTask& task, int row);

struct SearchTraceOptions {
  double continue_prob = 0.4;  // after a miss, the chance of another attempt
  int max_attempts = 8;        // a search gives up after this many
};

// A whole completion (it follows a prompt that ends in "<think>"): attempts
// from a random row on until one hits or the search gives up, then the answer.
// *attempts (if not null) receives the number of attempts, *solved whether the
// answer hits the target.
std::string SearchCompletion(const zerorl::v1::CountdownTask& task, const SearchTraceOptions& options,
                             SplitMix64* rng, int* attempts = nullptr, bool* solved = nullptr);

// The verdicts that close an attempt: what examples/countdown-hard/run.yaml's
// text counter `attempts` counts.
inline constexpr const char* kSearchVerdicts[] = {" no.", " yes."};

// The attempts in a completion: its verdicts.
int CountSearchAttempts(const std::string& completion);

// The demos' prompt (run.yaml's dataset.template_text), e.g.
// "nums 3 7 2 target 23\n<think>".
std::string CountdownPromptText(const zerorl::v1::CountdownTask& task);

}  // namespace zerorl
