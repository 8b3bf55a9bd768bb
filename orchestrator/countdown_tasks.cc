// Countdown task generation, splits and solution text (see countdown_tasks.h).
#include "orchestrator/countdown_tasks.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/splitmix.h"

namespace zerorl {

using zerorl::v1::CountdownTask;

int64_t ApplyCountdownOp(int64_t a, int64_t b, char op) {
  switch (op) {
    case '+':
      return a + b;
    case '-':
      return a > b ? a - b : b - a;
    default:
      return a * b;
  }
}

std::string CountdownExpression(const CountdownTask& task, char op) {
  int64_t a = task.nums(0), b = task.nums(1);
  if (op == '-' && b > a) std::swap(a, b);
  return absl::StrCat(a, std::string(1, op), b);
}

std::string CountdownCompletion(const CountdownTask& task, char op) {
  std::vector<std::string> steps;
  for (char o : kCountdownOps) {
    steps.push_back(absl::StrCat(CountdownExpression(task, o), "=", ApplyCountdownOp(task.nums(0), task.nums(1), o)));
  }
  const std::vector<char> right = CorrectCountdownOps(task);
  const std::string conclusion = right.empty() ? "" : absl::StrCat(" so ", CountdownExpression(task, right[0]));
  return absl::StrCat(absl::StrJoin(steps, " "), conclusion, "</think><answer>", CountdownExpression(task, op),
                      "</answer>");
}

std::vector<char> CorrectCountdownOps(const CountdownTask& task) {
  std::vector<char> ops;
  if (task.nums_size() != 2) return ops;
  for (char o : kCountdownOps) {
    if (ApplyCountdownOp(task.nums(0), task.nums(1), o) == task.target()) ops.push_back(o);
  }
  return ops;
}

std::vector<CountdownTask> GenerateCountdownTasks(const CountdownGenOptions& options) {
  std::vector<CountdownTask> out;
  if (options.count == 2) {
    for (int a = 1; a <= options.max_num; ++a) {
      for (int b = 1; b <= options.max_num; ++b) {
        std::set<int64_t> targets;
        for (char o : kCountdownOps) targets.insert(ApplyCountdownOp(a, b, o));
        for (int64_t t : targets) {
          if (t <= 0) continue;  // a - a: zero is no target
          CountdownTask task;
          task.add_nums(a);
          task.add_nums(b);
          task.set_target(t);
          out.push_back(std::move(task));
        }
      }
    }
    return out;
  }
  SplitMix64 rng(options.seed ^ 0x636f756e74ULL);
  std::set<std::pair<std::vector<int64_t>, int64_t>> seen;
  for (int tries = 0; static_cast<int>(out.size()) < options.sampled_tasks && tries < options.sampled_tasks * 20;
       ++tries) {
    std::vector<int64_t> nums;
    for (int i = 0; i < options.count; ++i) nums.push_back(1 + static_cast<int64_t>(rng.Below(options.max_num)));
    std::vector<int64_t> order = nums;
    ShuffleInPlace(&order, &rng);
    int64_t acc = order[0];
    for (size_t i = 1; i < order.size(); ++i) acc = ApplyCountdownOp(acc, order[i], kCountdownOps[rng.Below(3)]);
    if (acc <= 0 || !seen.insert({nums, acc}).second) continue;
    CountdownTask task;
    for (int64_t n : nums) task.add_nums(n);
    task.set_target(acc);
    out.push_back(std::move(task));
  }
  return out;
}

CountdownSplits SplitCountdownTasks(std::vector<CountdownTask> tasks, int eval_size, uint64_t seed) {
  SplitMix64 rng(seed ^ 0x73706c6974ULL);
  ShuffleInPlace(&tasks, &rng);
  CountdownSplits s;
  const size_t n_eval = std::min<size_t>(std::max(eval_size, 0), tasks.size());
  s.eval.assign(tasks.begin(), tasks.begin() + n_eval);
  s.train.assign(tasks.begin() + n_eval, tasks.end());
  return s;
}

absl::Status WriteCountdownJsonl(const std::string& path, const std::vector<CountdownTask>& tasks) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write ", tmp));
    for (const auto& t : tasks) {
      out << "{\"nums\": [" << absl::StrJoin(t.nums(), ", ") << "], \"target\": " << t.target() << "}\n";
    }
    if (!out.flush()) return absl::DataLossError(absl::StrCat("writing ", tmp, " failed"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("renaming ", tmp, " to ", path, " failed"));
  }
  return absl::OkStatus();
}

}  // namespace zerorl
