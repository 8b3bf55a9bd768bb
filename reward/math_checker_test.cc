// Tests of the math checker: one block per extraction, normalisation and
// equivalence category, positive and negative; GSM8K gold answers; budgets.
#include "reward/math_checker.h"

#include <chrono>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include "absl/strings/ascii.h"
#include <nlohmann/json.hpp>

namespace zerorl::reward {
namespace {

bool Eq(absl::string_view pred, absl::string_view gold) {
  auto r = Equivalent(pred, gold);
  EXPECT_TRUE(r.ok()) << pred << " vs " << gold << ": " << r.status();
  return r.ok() && *r;
}

TEST(MathExtract, Boxed) {
  EXPECT_EQ(ExtractAnswer("so \\boxed{\\frac{1}{2}} and", {"boxed"}), "\\frac{1}{2}");
  EXPECT_EQ(ExtractAnswer("\\boxed{1} then \\boxed{2}", {"boxed"}), "2");
  EXPECT_EQ(ExtractAnswer("\\boxed{\\{1,2\\}}", {"boxed"}), "\\{1,2\\}");
  EXPECT_EQ(ExtractAnswer("\\fbox{7}", {"boxed"}), "7");
  EXPECT_EQ(ExtractAnswer("\\boxed 5$", {"boxed"}), "5");
  EXPECT_EQ(ExtractAnswer("\\boxed{unclosed", {"boxed"}), std::nullopt);
  EXPECT_EQ(ExtractAnswer("nothing here", {"boxed"}), std::nullopt);
}

TEST(MathExtract, OtherExtractors) {
  EXPECT_EQ(ExtractAnswer("<think>x</think><answer> 42 </answer>", {"answer_tag"}), "42");
  EXPECT_EQ(ExtractAnswer("work\n#### 1,234\n", {"gsm8k"}), "1,234");
  EXPECT_EQ(ExtractAnswer("So The answer is: 17. Done", {"the_answer_is"}), "17");
  EXPECT_EQ(ExtractAnswer("the answer is \\boxed{3}.", {"the_answer_is"}), "3");
  // Order matters: the first extractor that matches wins.
  EXPECT_EQ(ExtractAnswer("<answer>1</answer> \\boxed{2}", {"answer_tag", "boxed"}), "1");
  EXPECT_EQ(ExtractAnswer("<answer>1</answer> \\boxed{2}", {"boxed", "answer_tag"}), "2");
  EXPECT_EQ(ExtractAnswer("#### 5", {"boxed"}), std::nullopt);
}

TEST(MathNormalize, ThousandsSeparators) {
  EXPECT_EQ(Normalize("7,425,000"), "7425000");
  EXPECT_EQ(Normalize("1 000"), "1000");
  EXPECT_EQ(Normalize("1\\,000"), "1000");
  EXPECT_EQ(Normalize("1{,}000"), "1000");
  EXPECT_TRUE(Eq("12,345.5", "12345.5"));
  EXPECT_FALSE(Eq("1,000", "1"));
  EXPECT_EQ(Normalize("1,2"), "1,2");  // not a thousands group: a list
}

TEST(MathNormalize, CurrencyPercentDegrees) {
  EXPECT_TRUE(Eq("\\$18", "18"));
  EXPECT_TRUE(Eq("$18.00", "18"));
  EXPECT_TRUE(Eq("50\\%", "50"));
  EXPECT_TRUE(Eq("30^\\circ", "30"));
  EXPECT_TRUE(Eq("30^{\\circ}", "30"));
  EXPECT_FALSE(Eq("\\$180", "18"));
  EXPECT_FALSE(Eq("5\\%", "50"));
}

TEST(MathNormalize, UnitsAndText) {
  EXPECT_TRUE(Eq("18 dollars", "18"));
  EXPECT_TRUE(Eq("5\\text{ cm}", "5"));
  EXPECT_TRUE(Eq("5 \\text{cm}^2", "5"));
  EXPECT_TRUE(Eq("\\text{12 eggs per day}", "12"));
  EXPECT_FALSE(Eq("2 or 3", "2"));  // hedging is not a unit
  EXPECT_FALSE(Eq("5 \\text{ or } 500", "5"));
  EXPECT_FALSE(Eq("5x", "5"));
}

TEST(MathNormalize, FracForms) {
  EXPECT_TRUE(Eq("\\dfrac{1}{2}", "0.5"));
  EXPECT_TRUE(Eq("\\tfrac{3}{4}", "\\frac{3}{4}"));
  EXPECT_TRUE(Eq("\\frac12", "\\frac{1}{2}"));
  EXPECT_TRUE(Eq("\\sqrt3", "\\sqrt{3}"));
  EXPECT_TRUE(Eq("\\left(\\frac{1}{2}\\right)", "1/2"));
  EXPECT_FALSE(Eq("\\frac{1}{3}", "0.33"));
}

TEST(MathNormalize, Assignment) {
  EXPECT_TRUE(Eq("x = 5", "5"));
  EXPECT_TRUE(Eq("n=12", "12"));
  EXPECT_FALSE(Eq("x = 6", "5"));
  EXPECT_FALSE(Eq("x <= 5", "5"));
}

TEST(MathEquivalence, NoLenientHacks) {
  EXPECT_TRUE(Eq("5", "5"));
  EXPECT_TRUE(Eq("5.0", "5"));
  EXPECT_FALSE(Eq("500", "5"));
  EXPECT_FALSE(Eq("0.05", "5"));
  EXPECT_FALSE(Eq("50", "5"));
  EXPECT_FALSE(Eq("-5", "5"));
  EXPECT_FALSE(Eq("3.14", "\\pi"));
  EXPECT_TRUE(Eq("\\pi", "\\pi"));
  EXPECT_TRUE(Eq("2\\pi", "\\pi \\cdot 2"));
  EXPECT_TRUE(Eq("3.14159265358979323", "\\pi"));  // within rel_tol 1e-9
}

TEST(MathEquivalence, Expressions) {
  EXPECT_TRUE(Eq("\\frac{\\sqrt{3}}{2}", "\\sqrt{3}/2"));
  EXPECT_TRUE(Eq("2^{10}", "1024"));
  EXPECT_TRUE(Eq("(3+4)\\times 2", "14"));
  EXPECT_FALSE(Eq("2^{10}", "1000"));
}

TEST(MathEquivalence, TuplesSetsIntervals) {
  EXPECT_TRUE(Eq("(1, 2)", "(1,2)"));
  EXPECT_FALSE(Eq("(2, 1)", "(1,2)"));
  EXPECT_TRUE(Eq("\\{2, 1\\}", "\\{1,2\\}"));
  EXPECT_TRUE(Eq("2, 1", "1, 2"));
  EXPECT_FALSE(Eq("1, 2, 3", "1, 2"));
  EXPECT_TRUE(Eq("[0, \\frac{1}{2})", "[0, 0.5)"));
  EXPECT_FALSE(Eq("(0, 0.5]", "[0, 0.5)"));
  EXPECT_FALSE(Eq("(1,2)", "\\{1,2\\}"));
}

TEST(MathEquivalence, TextAnswers) {
  EXPECT_TRUE(Eq("\\text{B}", "B"));
  EXPECT_FALSE(Eq("C", "B"));
  EXPECT_FALSE(Eq("", "5"));
}

TEST(MathCheck, VerdictsAndMultipleBoxed) {
  EXPECT_EQ(CheckMath("so \\boxed{18}", "18").verdict, MathVerdict::kCorrect);
  EXPECT_EQ(CheckMath("so \\boxed{19}", "18").verdict, MathVerdict::kWrong);
  EXPECT_EQ(CheckMath("no idea", "18").verdict, MathVerdict::kNoAnswer);
  EXPECT_EQ(CheckMath("\\boxed{18}", "She makes 9 * 2 = $18.\n#### 18").verdict, MathVerdict::kCorrect);
  MathCheckOptions all;
  all.all_boxed_equal = true;
  EXPECT_EQ(CheckMath("\\boxed{17} or \\boxed{18}", "18").verdict, MathVerdict::kCorrect);  // last wins
  EXPECT_EQ(CheckMath("\\boxed{17} or \\boxed{18}", "18", all).verdict, MathVerdict::kWrong);
  EXPECT_EQ(CheckMath("\\boxed{18} so \\boxed{18.0}", "18", all).verdict, MathVerdict::kCorrect);
  // A quoted answer is cut at a character boundary, never inside one (the
  // detail is a proto string: a split "\xC3\xA9" would fail to serialise).
  auto split = CheckMath("\\boxed{" + std::string(63, 'a') + "\xC3\xA9} or \\boxed{18}", "18", all);
  EXPECT_EQ(split.verdict, MathVerdict::kWrong);
  EXPECT_EQ(split.detail, "boxed answers disagree: \"" + std::string(63, 'a') + "\"");
}

TEST(MathCheck, PathologicalInputGivesErrorFast) {
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(CheckMath("\\boxed{10^10^10^10}", "5").verdict, MathVerdict::kError);
  std::string nested = "\\boxed{" + std::string(100000, '{') + std::string(100000, '}') + "}";
  EXPECT_EQ(CheckMath(nested, "5").verdict, MathVerdict::kError);
  std::string unclosed = "\\boxed{" + std::string(100000, '{');
  EXPECT_NE(CheckMath(unclosed, "5").verdict, MathVerdict::kCorrect);
  std::string many;
  for (int i = 0; i < 20000; ++i) many += "\\boxed{1}";
  MathCheckOptions all;
  all.all_boxed_equal = true;
  EXPECT_EQ(CheckMath(many, "1", all).verdict, MathVerdict::kCorrect);
  std::string open_boxes;
  for (int i = 0; i < 20000; ++i) open_boxes += "\\boxed{";
  EXPECT_NE(CheckMath(open_boxes, "1", all).verdict, MathVerdict::kCorrect);
  EXPECT_NE(CheckMath(open_boxes, "1").verdict, MathVerdict::kCorrect);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

// Every GSM8K test gold answer, boxed, scores correct; with the number changed, wrong.
TEST(MathCheck, Gsm8kGoldAnswers) {
  // The whole test set where ../shared holds it, else the committed first 32 lines.
  std::ifstream in(ZERORL_SOURCE_DIR "/../shared/data/gsm8k/test.jsonl");
  int expected_lines = 1319;
  if (!in) {
    in.open(ZERORL_SOURCE_DIR "/tests/fixtures/gsm8k/test.jsonl");
    expected_lines = 32;
  }
  ASSERT_TRUE(in.is_open()) << "tests/fixtures/gsm8k/test.jsonl is missing";
  int n = 0, correct = 0, rejected = 0;
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    std::string answer = j.at("answer").get<std::string>();
    std::string gold = answer.substr(answer.rfind("####") + 4);
    gold = std::string(absl::StripAsciiWhitespace(gold));
    ++n;
    if (CheckMath("The total is \\boxed{" + gold + "}.", answer).verdict == MathVerdict::kCorrect) {
      ++correct;
    } else {
      ADD_FAILURE() << "gold not accepted: " << gold;
    }
    // Change the number: add 1 to the last digit (9 -> 0 carries a wrong digit in).
    std::string changed = gold;
    size_t d = changed.find_last_of("0123456789");
    changed[d] = changed[d] == '9' ? '8' : static_cast<char>(changed[d] + 1);
    if (CheckMath("The total is \\boxed{" + changed + "}.", answer).verdict == MathVerdict::kWrong) {
      ++rejected;
    } else {
      ADD_FAILURE() << "changed answer accepted: " << changed << " for " << gold;
    }
  }
  EXPECT_EQ(n, expected_lines);
  EXPECT_EQ(correct, n);
  EXPECT_EQ(rejected, n);
}

}  // namespace
}  // namespace zerorl::reward
