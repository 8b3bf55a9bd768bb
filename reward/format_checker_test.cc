// Tests of the R1-Zero format checker, strict and lenient, and ThinkText.
#include "reward/format_checker.h"

#include <gtest/gtest.h>

namespace zerorl::reward {
namespace {

TEST(Format, LenientAcceptsTemplate) {
  EXPECT_TRUE(CheckFormat("<think> a </think> <answer> 5 </answer>", false).ok);
  EXPECT_TRUE(CheckFormat(" reasoning </think>\n<answer>5</answer>", false).ok);  // prompt ended with <think>
  EXPECT_TRUE(CheckFormat("x </think> then <answer>5</answer> bye", false).ok);
}

TEST(Format, RejectsBadTags) {
  EXPECT_FALSE(CheckFormat("<think> a </think>", false).ok);
  EXPECT_FALSE(CheckFormat("<answer>5</answer> </think>", false).ok);
  EXPECT_FALSE(CheckFormat("a </think><answer>5</answer><answer>6</answer>", false).ok);
  EXPECT_FALSE(CheckFormat("a </think></think><answer>5</answer>", false).ok);
  EXPECT_FALSE(CheckFormat("a </think><answer>  </answer>", false).ok);
  EXPECT_FALSE(CheckFormat("<think><think> a </think><answer>1</answer>", false).ok);
}

TEST(Format, StrictRejectsStrayText) {
  EXPECT_TRUE(CheckFormat("<think> a </think>\n<answer> 5 </answer>\n", true).ok);
  EXPECT_FALSE(CheckFormat("x </think> then <answer>5</answer>", true).ok);
  EXPECT_FALSE(CheckFormat("a </think><answer>5</answer> bye", true).ok);
  EXPECT_FALSE(CheckFormat("hi <think> a </think><answer>5</answer>", true).ok);
}

TEST(Format, ThinkText) {
  EXPECT_EQ(ThinkText("<think>abc</think><answer>1</answer>"), "abc");
  EXPECT_EQ(ThinkText("abc</think><answer>1</answer>"), "abc");
  EXPECT_EQ(ThinkText("abc<answer>1</answer>"), "abc");
}

}  // namespace
}  // namespace zerorl::reward
