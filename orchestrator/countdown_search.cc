// Countdown with search: tasks and traces (see countdown_search.h).
#include "orchestrator/countdown_search.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace zerorl {

using zerorl::v1::CountdownTask;

namespace {

constexpr char kOps[] = {'+', '-', '*'};

std::vector<int64_t> Numbers(const CountdownTask& task) { return {task.nums().begin(), task.nums().end()}; }

}  // namespace

int SearchRows(int count) {
  int rows = 1;
  for (int i = 1; i < count; ++i) rows *= 3;
  return count == 4 ? rows - 1 : rows;  // 4 numbers: *** left out (26 labels a..z)
}

std::string SearchRowOps(int count, int row) {
  std::string ops(count - 1, '+');
  for (int i = count - 2; i >= 0; --i, row /= 3) ops[i] = kOps[row % 3];
  return ops;
}

SearchAttempt MakeSearchAttempt(const CountdownTask& task, int row) {
  const std::vector<int64_t> nums = Numbers(task);
  const std::string ops = SearchRowOps(static_cast<int>(nums.size()), row);
  SearchAttempt a;
  a.row = row;
  a.target = task.target();
  int64_t acc = nums[0];
  a.expression = absl::StrCat(nums[0]);
  for (size_t i = 1; i < nums.size(); ++i) {
    const char op = ops[i - 1];
    const int64_t x = nums[i];
    const std::string prev = i == 1 ? a.expression : absl::StrCat("(", a.expression, ")");
    SearchAttempt::Step s{acc, x, op, 0};
    if (op == '+') {
      s.value = acc + x;
      a.expression = absl::StrCat(prev, "+", x);
    } else if (op == '*') {
      s.value = acc * x;
      a.expression = absl::StrCat(prev, "*", x);
    } else if (acc >= x) {
      s.value = acc - x;
      a.expression = absl::StrCat(prev, "-", x);
    } else {  // the smaller from the larger
      s = {x, acc, op, x - acc};
      a.expression = absl::StrCat(x, "-", prev);
    }
    a.steps.push_back(s);
    acc = s.value;
  }
  a.hit = acc == task.target();
  return a;
}

std::string SearchAttempt::Text() const {
  std::vector<std::string> parts;
  for (const Step& s : steps) parts.push_back(absl::StrCat(s.left, std::string(1, s.op), s.right, "=", s.value));
  return absl::StrCat(std::string(1, static_cast<char>('a' + row)), ": ", absl::StrJoin(parts, " "), " vs ", target,
                      hit ? " yes." : " no.");
}

CountdownTask RandomSearchTask(const SearchTaskOptions& o, SplitMix64* rng) {
  for (;;) {
    const int count = o.min_count + static_cast<int>(rng->Below(o.max_count - o.min_count + 1));
    CountdownTask task;
    for (int i = 0; i < count; ++i) task.add_nums(1 + static_cast<int64_t>(rng->Below(o.max_num)));
    task.set_target(0);
    const int row = static_cast<int>(rng->Below(SearchRows(count)));
    const SearchAttempt a = MakeSearchAttempt(task, row);
    const int64_t t = a.steps.back().value;
    const std::vector<int64_t> nums = Numbers(task);
    if (t < 1 || t > o.max_target || std::find(nums.begin(), nums.end(), t) != nums.end()) continue;
    task.set_target(t);
    return task;
  }
}

std::vector<CountdownTask> GenerateSearchTasks(const SearchTaskOptions& options, int count, uint64_t seed) {
  SplitMix64 rng(seed ^ 0x7365617263ULL);
  std::set<std::pair<std::vector<int64_t>, int64_t>> seen;
  std::vector<CountdownTask> out;
  for (int tries = 0; static_cast<int>(out.size()) < count && tries < count * 50; ++tries) {
    CountdownTask t = RandomSearchTask(options, &rng);
    if (seen.insert({Numbers(t), t.target()}).second) out.push_back(std::move(t));
  }
  return out;
}

std::string SearchCompletion(const CountdownTask& task, const SearchTraceOptions& options, SplitMix64* rng,
                             int* attempts, bool* solved) {
  const int rows = SearchRows(task.nums_size());
  const int start = static_cast<int>(rng->Below(rows));
  std::vector<std::string> think;
  SearchAttempt last;
  for (int n = 0; n < std::min(options.max_attempts, rows); ++n) {
    last = MakeSearchAttempt(task, (start + n) % rows);
    think.push_back(last.Text());
    if (last.hit || rng->Uniform() >= options.continue_prob) break;
  }
  if (attempts != nullptr) *attempts = static_cast<int>(think.size());
  if (solved != nullptr) *solved = last.hit;
  return absl::StrCat(absl::StrJoin(think, " "), "</think><answer>", last.expression, "</answer>");
}

int CountSearchAttempts(const std::string& completion) {
  int n = 0;
  for (const char* verdict : kSearchVerdicts) {
    for (size_t at = completion.find(verdict); at != std::string::npos; at = completion.find(verdict, at + 1)) ++n;
  }
  return n;
}

std::string CountdownPromptText(const CountdownTask& task) {
  return absl::StrCat("nums ", absl::StrJoin(task.nums(), " "), " target ", task.target(), "\n<think>");
}

}  // namespace zerorl
