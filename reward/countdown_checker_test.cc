// Tests of the countdown checker: number use, exact evaluation, scores.
#include "reward/countdown_checker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace zerorl::reward {
namespace {

TEST(Countdown, Correct) {
  auto r = CheckCountdown("<think>..</think><answer>(25 - 1) * 3 + 4</answer>", {1, 3, 4, 25}, 76);
  EXPECT_EQ(r.verdict, "correct");
  EXPECT_DOUBLE_EQ(r.score, 1.0);
  EXPECT_EQ(CheckCountdown("<answer>(3/2)*4 = 6</answer>", {2, 3, 4}, 6).verdict, "correct");
}

TEST(Countdown, WellFormedButWrong) {
  auto r = CheckCountdown("<answer>1 + 3 + 4 + 25</answer>", {1, 3, 4, 25}, 76);
  EXPECT_EQ(r.verdict, "wrong");
  EXPECT_DOUBLE_EQ(r.score, 0.1);
}

TEST(Countdown, NumberMisuse) {
  EXPECT_EQ(CheckCountdown("<answer>25*3+1</answer>", {1, 3, 4, 25}, 76).verdict, "invalid");       // 4 unused
  EXPECT_EQ(CheckCountdown("<answer>25*3+1+1</answer>", {1, 3, 25}, 77).verdict, "invalid");        // 1 twice
  EXPECT_EQ(CheckCountdown("<answer>76</answer>", {1, 3, 4, 25}, 76).verdict, "invalid");           // not given
  EXPECT_EQ(CheckCountdown("<answer>2**3</answer>", {2, 3}, 8).verdict, "invalid");                 // no powers
  EXPECT_EQ(CheckCountdown("<answer>__import__('os')</answer>", {1}, 1).verdict, "invalid");        // no eval
  EXPECT_EQ(CheckCountdown("<answer>1.5*2</answer>", {2}, 3).verdict, "invalid");
  EXPECT_EQ(CheckCountdown("<answer>4/(2-2)</answer>", {2, 2, 4}, 1).verdict, "invalid");           // div by zero
  EXPECT_DOUBLE_EQ(CheckCountdown("<answer>25*3+1</answer>", {1, 3, 4, 25}, 76).score, 0.0);
}

TEST(Countdown, AtMostOnceAcceptsASubsetButNoNumberTwice) {
  CountdownScores s;
  s.at_most_once = true;
  EXPECT_EQ(CheckCountdown("<answer>25*3+1</answer>", {1, 3, 4, 25}, 76, s).verdict, "correct");  // 4 unused
  EXPECT_EQ(CheckCountdown("<answer>(7+2)*3</answer>", {3, 7, 2, 5}, 27, s).verdict, "correct");
  auto twice = CheckCountdown("<answer>25*3+1+1</answer>", {1, 3, 25}, 77, s);
  EXPECT_EQ(twice.verdict, "invalid");
  EXPECT_THAT(twice.detail, testing::HasSubstr("not a subset of"));
  EXPECT_EQ(CheckCountdown("<answer>3*4</answer>", {3, 5}, 12, s).verdict, "invalid");  // 4 not given
  EXPECT_EQ(CheckCountdown("<answer>3*5</answer>", {3, 5, 9}, 16, s).verdict, "wrong");
}

TEST(Countdown, NoAnswerAndCustomScores) {
  CountdownScores s{2.0, 0.5, -1.0};
  EXPECT_EQ(CheckCountdown("I think 76", {1}, 76, s).verdict, "no_answer");
  EXPECT_DOUBLE_EQ(CheckCountdown("I think 76", {1}, 76, s).score, -1.0);
  EXPECT_DOUBLE_EQ(CheckCountdown("<answer>1+2</answer>", {1, 2}, 3, s).score, 2.0);
  EXPECT_DOUBLE_EQ(CheckCountdown("<answer>1+2</answer>", {1, 2}, 4, s).score, 0.5);
}

}  // namespace
}  // namespace zerorl::reward
