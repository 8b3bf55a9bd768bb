// Countdown generation: every two-number task solvable, splits fixed by seed.
#include "orchestrator/countdown_tasks.h"

#include <gtest/gtest.h>

#include <set>

namespace zerorl {
namespace {

TEST(CountdownTasksTest, TwoNumberTasksAreEnumeratedAndSolvable) {
  CountdownGenOptions o;
  o.count = 2;
  o.max_num = 5;
  auto tasks = GenerateCountdownTasks(o);
  EXPECT_GT(tasks.size(), 50u);
  std::set<std::string> keys;
  for (const auto& t : tasks) {
    ASSERT_EQ(t.nums_size(), 2);
    EXPECT_FALSE(CorrectCountdownOps(t).empty());
    EXPECT_GT(t.target(), 0);
    keys.insert(t.DebugString());
  }
  EXPECT_EQ(keys.size(), tasks.size());
}

TEST(CountdownTasksTest, CompletionTraceAndExpression) {
  zerorl::v1::CountdownTask t;
  t.add_nums(3);
  t.add_nums(8);
  t.set_target(5);
  EXPECT_EQ(CountdownCompletion(t, '-'), "3+8=11 8-3=5 3*8=24 so 8-3</think><answer>8-3</answer>");
  EXPECT_EQ(CountdownCompletion(t, '*'), "3+8=11 8-3=5 3*8=24 so 8-3</think><answer>3*8</answer>");
  EXPECT_EQ(CorrectCountdownOps(t), std::vector<char>{'-'});
  t.set_target(7);  // nothing hits it: no conclusion
  EXPECT_EQ(CountdownCompletion(t, '+'), "3+8=11 8-3=5 3*8=24</think><answer>3+8</answer>");
  EXPECT_TRUE(CorrectCountdownOps(t).empty());
}

TEST(CountdownTasksTest, SplitsAreSeededAndDisjoint) {
  CountdownGenOptions o;
  o.max_num = 6;
  auto a = SplitCountdownTasks(GenerateCountdownTasks(o), 20, 1);
  auto b = SplitCountdownTasks(GenerateCountdownTasks(o), 20, 1);
  ASSERT_EQ(a.eval.size(), 20u);
  for (size_t i = 0; i < a.eval.size(); ++i) EXPECT_EQ(a.eval[i].DebugString(), b.eval[i].DebugString());
  std::set<std::string> train;
  for (const auto& t : a.train) train.insert(t.DebugString());
  for (const auto& t : a.eval) EXPECT_EQ(train.count(t.DebugString()), 0u);
}

TEST(CountdownTasksTest, ThreeNumberTasksAreSampled) {
  CountdownGenOptions o;
  o.count = 3;
  o.sampled_tasks = 100;
  o.seed = 3;
  auto tasks = GenerateCountdownTasks(o);
  EXPECT_EQ(tasks.size(), 100u);
  for (const auto& t : tasks) EXPECT_EQ(t.nums_size(), 3);
}

}  // namespace
}  // namespace zerorl
