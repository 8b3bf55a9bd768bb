// Countdown with search: tasks within bounds and solvable by a row of the
// table, traces whose rows follow each other, whose arithmetic is right, whose
// checks match the target, and whose answers the reward's checker scores as
// the trace says (correct after a hit, a well-formed miss after giving up).
#include "orchestrator/countdown_search.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_split.h"
#include "reward/countdown_checker.h"

namespace zerorl {
namespace {

using zerorl::v1::CountdownTask;

CountdownTask Task(std::vector<int64_t> nums, int64_t target) {
  CountdownTask t;
  for (int64_t n : nums) t.add_nums(n);
  t.set_target(target);
  return t;
}

reward::CountdownResult Check(const std::string& completion, const CountdownTask& t) {
  reward::CountdownScores s;
  s.at_most_once = true;
  return reward::CheckCountdown(completion, {t.nums().begin(), t.nums().end()}, t.target(), s);
}

TEST(CountdownSearchTest, TheTableHasEveryOperatorRowOnce) {
  EXPECT_EQ(SearchRows(3), 9);
  EXPECT_EQ(SearchRows(4), 26);
  EXPECT_EQ(SearchRowOps(3, 0), "++");
  EXPECT_EQ(SearchRowOps(3, 5), "-*");
  EXPECT_EQ(SearchRowOps(4, 25), "**-");
  std::set<std::string> rows;
  for (int r = 0; r < SearchRows(4); ++r) rows.insert(SearchRowOps(4, r));
  EXPECT_EQ(rows.size(), 26u);
  EXPECT_EQ(rows.count("***"), 0u);
}

TEST(CountdownSearchTest, TasksAreDistinctWithinBoundsAndSolvableByARow) {
  SearchTaskOptions o;
  const auto tasks = GenerateSearchTasks(o, 500, 3);
  ASSERT_EQ(tasks.size(), 500u);
  EXPECT_EQ(tasks[7].DebugString(), GenerateSearchTasks(o, 500, 3)[7].DebugString());  // seeded
  std::set<std::string> keys;
  std::map<int, int> by_count;
  for (const auto& t : tasks) {
    ASSERT_GE(t.nums_size(), o.min_count);
    ASSERT_LE(t.nums_size(), o.max_count);
    ++by_count[t.nums_size()];
    for (int64_t n : t.nums()) {
      EXPECT_GE(n, 1);
      EXPECT_LE(n, o.max_num);
      EXPECT_NE(n, t.target());
    }
    EXPECT_GE(t.target(), 1);
    EXPECT_LE(t.target(), o.max_target);
    keys.insert(t.DebugString());
    bool solved = false;
    for (int r = 0; r < SearchRows(t.nums_size()) && !solved; ++r) {
      const SearchAttempt a = MakeSearchAttempt(t, r);
      solved = a.hit;
      if (a.hit) {
        EXPECT_EQ(Check("<answer>" + a.expression + "</answer>", t).verdict, "correct") << a.expression;
      }
    }
    EXPECT_TRUE(solved) << t.DebugString();
  }
  EXPECT_EQ(keys.size(), tasks.size());
  EXPECT_GT(by_count[3], 150);
  EXPECT_GT(by_count[4], 150);
}

TEST(CountdownSearchTest, AttemptTextAndExpression) {
  const CountdownTask t = Task({3, 7, 2}, 23);
  const SearchAttempt hit = MakeSearchAttempt(t, 6);  // "*+"
  EXPECT_EQ(hit.Text(), "g: 3*7=21 21+2=23 vs 23 yes.");
  EXPECT_EQ(hit.expression, "(3*7)+2");
  const SearchAttempt minus = MakeSearchAttempt(t, 4);  // "--": 7-3=4, 4-2=2
  EXPECT_EQ(minus.Text(), "e: 7-3=4 4-2=2 vs 23 no.");
  EXPECT_EQ(minus.expression, "(7-3)-2");
  const SearchAttempt larger = MakeSearchAttempt(Task({2, 3, 9}, 4), 4);  // 3-2=1, then 9-1=8
  EXPECT_EQ(larger.Text(), "e: 3-2=1 9-1=8 vs 4 no.");
  EXPECT_EQ(larger.expression, "9-(3-2)");
  EXPECT_EQ(Check("<answer>9-(3-2)</answer>", Task({2, 3, 9}, 8)).verdict, "correct");
  EXPECT_EQ(Check("<answer>" + minus.expression + "</answer>", t).verdict, "wrong");
  EXPECT_EQ(CountSearchAttempts(minus.Text() + " " + hit.Text() + "</think><answer>x</answer>"), 2);
  EXPECT_EQ(CountSearchAttempts("no. yes"), 0);
}

// Every attempt of a trace re-derived from its text: consecutive rows (wrapping
// round), the row's operators, right arithmetic, the right check.
void ExpectTraceConsistent(const std::string& completion, const CountdownTask& t, int attempts, bool solved) {
  const size_t end = completion.find("</think>");
  ASSERT_NE(end, std::string::npos) << completion;
  const int rows = SearchRows(t.nums_size());
  int seen = 0, first_row = -1;
  bool last_hit = false;
  for (absl::string_view attempt : absl::StrSplit(completion.substr(0, end), '.', absl::SkipWhitespace())) {
    std::vector<std::string> words = absl::StrSplit(attempt, ' ', absl::SkipWhitespace());
    ASSERT_EQ(words.size(), static_cast<size_t>(t.nums_size()) + 3) << completion;  // label, n-1 steps, vs, T, verdict
    ASSERT_EQ(words[0].size(), 2u) << completion;
    const int row = words[0][0] - 'a';
    if (first_row < 0) first_row = row;
    EXPECT_EQ(row, (first_row + seen) % rows) << completion;
    const std::string ops = SearchRowOps(t.nums_size(), row);
    const std::string verdict = words.back();
    ASSERT_TRUE(verdict == "yes" || verdict == "no") << completion;
    EXPECT_EQ(words[words.size() - 3], "vs");
    EXPECT_EQ(words[words.size() - 2], std::to_string(t.target()));
    int64_t value = 0;
    for (int i = 0; i + 1 < t.nums_size(); ++i) {
      const std::string& w = words[1 + i];  // "a op b=c"
      const size_t op = w.find_first_of("+-*", 1), eq = w.find('=');
      ASSERT_TRUE(op != std::string::npos && eq != std::string::npos) << w;
      EXPECT_EQ(w[op], ops[i]) << completion;
      const int64_t a = std::stoll(w.substr(0, op)), b = std::stoll(w.substr(op + 1, eq - op - 1));
      const int64_t c = std::stoll(w.substr(eq + 1));
      EXPECT_EQ(c, w[op] == '+' ? a + b : w[op] == '-' ? a - b : a * b) << w;
      EXPECT_GE(c, 0) << w;
      value = c;
    }
    last_hit = value == t.target();
    EXPECT_EQ(verdict == "yes", last_hit) << completion;
    ++seen;
  }
  EXPECT_EQ(seen, attempts);
  EXPECT_EQ(last_hit, solved);
  EXPECT_EQ(Check(completion, t).verdict, solved ? "correct" : "wrong") << completion;
}

TEST(CountdownSearchTest, TracesAreShortSystematicSearches) {
  SearchTaskOptions o;
  SearchTraceOptions trace;  // continue_prob 0.4, up to 8 attempts
  SplitMix64 rng(11);
  std::map<int, int> histogram;
  int solved_count = 0;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    const CountdownTask t = RandomSearchTask(o, &rng);
    int attempts = 0;
    bool solved = false;
    const std::string c = SearchCompletion(t, trace, &rng, &attempts, &solved);
    ASSERT_NO_FATAL_FAILURE(ExpectTraceConsistent(c, t, attempts, solved));
    ++histogram[attempts];
    solved_count += solved;
  }
  // Short searches: mostly one to three attempts, a thin tail up to the cap.
  EXPECT_GT(histogram[1] + histogram[2] + histogram[3], n * 0.85);
  EXPECT_GT(histogram[1], n * 0.45);
  EXPECT_GT(histogram[4] + histogram[5] + histogram[6] + histogram[7] + histogram[8], 0);
  EXPECT_LE(histogram.rbegin()->first, trace.max_attempts);
  // ...so they stop before a solution more often than not.
  EXPECT_GT(solved_count, n * 0.05);
  EXPECT_LT(solved_count, n * 0.45);
}

TEST(CountdownSearchTest, PromptText) {
  EXPECT_EQ(CountdownPromptText(Task({3, 7, 2, 5}, 27)), "nums 3 7 2 5 target 27\n<think>");
  EXPECT_EQ(CountdownPromptText(Task({3, 8}, 5)), "nums 3 8 target 5\n<think>");
}

}  // namespace
}  // namespace zerorl
