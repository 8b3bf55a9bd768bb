// Tests of language consistency, overlong and length penalties.
#include "reward/extra_terms.h"

#include <gtest/gtest.h>

namespace zerorl::reward {
namespace {

TEST(Language, ShareOfLetters) {
  EXPECT_DOUBLE_EQ(LanguageConsistency("hello world 123 + 4", "latin"), 1.0);
  EXPECT_DOUBLE_EQ(LanguageConsistency("ab\xE4\xBD\xA0\xE5\xA5\xBD", "latin"), 0.5);  // "ab你好"
  EXPECT_DOUBLE_EQ(LanguageConsistency("ab\xE4\xBD\xA0\xE5\xA5\xBD", "cjk"), 0.5);
  EXPECT_DOUBLE_EQ(LanguageConsistency("\xD0\xBF\xD1\x80\xD0\xB8", "cyrillic"), 1.0);  // "при"
  EXPECT_DOUBLE_EQ(LanguageConsistency("123 + 456", "latin"), 0.0);
  EXPECT_TRUE(ValidateScript("latin").ok());
  EXPECT_FALSE(ValidateScript("klingon").ok());
}

TEST(Overlong, DapoShape) {
  EXPECT_DOUBLE_EQ(OverlongPenalty(100, 1024, 64), 0.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(960, 1024, 64), 0.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(992, 1024, 64), -0.5);
  EXPECT_DOUBLE_EQ(OverlongPenalty(1024, 1024, 64), -1.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(2000, 1024, 64), -1.0);
}

TEST(Length, Penalty) {
  EXPECT_DOUBLE_EQ(LengthPenalty(100, 200, 0.01), 0.0);
  EXPECT_DOUBLE_EQ(LengthPenalty(300, 200, 0.01), -1.0);
  EXPECT_EQ(EstimateTokens("abcde"), 2);
}

}  // namespace
}  // namespace zerorl::reward
