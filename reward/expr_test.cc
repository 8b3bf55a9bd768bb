// Tests of the exact expression evaluator: arithmetic, LaTeX forms, budgets.
#include "reward/expr.h"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

namespace zerorl::reward {
namespace {

Rational Q(absl::string_view s) {
  auto r = Evaluate(s);
  EXPECT_TRUE(r.ok()) << s << ": " << r.status();
  if (!r.ok()) return {};
  EXPECT_TRUE(r->value.exact) << s;
  return r->value.q;
}

TEST(Expr, IntegerArithmeticAndPrecedence) {
  EXPECT_EQ(Q("1+2*3"), (Rational{7, 1}));
  EXPECT_EQ(Q("(1+2)*3"), (Rational{9, 1}));
  EXPECT_EQ(Q("2^3^2"), (Rational{512, 1}));
  EXPECT_EQ(Q("-2^2"), (Rational{-4, 1}));
  EXPECT_EQ(Q("10 - 4 - 3"), (Rational{3, 1}));
  EXPECT_EQ(Q("7/2"), (Rational{7, 2}));
  EXPECT_EQ(Q("2^-2"), (Rational{1, 4}));
}

TEST(Expr, DecimalsAreExact) {
  EXPECT_EQ(Q("0.1+0.2"), (Rational{3, 10}));
  EXPECT_EQ(Q(".5"), (Rational{1, 2}));
  EXPECT_EQ(Q("1.25"), (Rational{5, 4}));
}

TEST(Expr, LatexForms) {
  EXPECT_EQ(Q("\\frac{1}{2}"), (Rational{1, 2}));
  EXPECT_EQ(Q("\\frac12"), (Rational{1, 2}));
  EXPECT_EQ(Q("\\frac{3}{4}\\cdot 8"), (Rational{6, 1}));
  EXPECT_EQ(Q("3\\times 4"), (Rational{12, 1}));
  EXPECT_EQ(Q("12\\div 4"), (Rational{3, 1}));
  EXPECT_EQ(Q("\\sqrt{16}"), (Rational{4, 1}));
  EXPECT_EQ(Q("\\sqrt{\\frac{9}{4}}"), (Rational{3, 2}));
  EXPECT_EQ(Q("\\sqrt[3]{27}"), (Rational{3, 1}));
  EXPECT_EQ(Q("2(3+4)"), (Rational{14, 1}));
  EXPECT_EQ(Q("{2}^{10}"), (Rational{1024, 1}));
}

TEST(Expr, IrrationalsAreInexact) {
  auto r = Evaluate("2\\pi");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->value.exact);
  EXPECT_NEAR(r->value.approx, 6.283185307179586, 1e-12);
  auto s = Evaluate("\\sqrt3");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->value.exact);
  EXPECT_NEAR(s->value.approx, 1.7320508075688772, 1e-12);
}

TEST(Expr, NumbersEqualRules) {
  Number a = Evaluate("1/3")->value, b = Evaluate("0.333333333333")->value;
  EXPECT_FALSE(NumbersEqual(b, a, 1e-9));  // both exact: exact comparison
  Number pi = Evaluate("\\pi")->value, approx = Evaluate("3.14")->value;
  EXPECT_FALSE(NumbersEqual(approx, pi, 1e-9));
  Number root = Evaluate("\\sqrt{2}\\cdot\\sqrt{2}")->value, two = Evaluate("2")->value;
  EXPECT_TRUE(NumbersEqual(root, two, 1e-9));
}

TEST(Expr, Errors) {
  EXPECT_EQ(Evaluate("1/0").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Evaluate("1+").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Evaluate("abc").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Evaluate("\\sqrt{-4}").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Evaluate("(1+2").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Expr, PathologicalInputIsBoundedAndFast) {
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Evaluate("10^10^10^10").status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Evaluate("2^100000").status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Evaluate("9^4000").status().code(), absl::StatusCode::kOutOfRange);
  std::string deep(3000, '(');
  deep += "1" + std::string(3000, ')');
  EXPECT_EQ(Evaluate(deep).status().code(), absl::StatusCode::kResourceExhausted);
  std::string braces(50000, '{');
  EXPECT_EQ(Evaluate(braces).status().code(), absl::StatusCode::kResourceExhausted);
  std::string sum;
  for (int i = 0; i < 2000; ++i) sum += "1+";
  sum += "1";
  EXPECT_EQ(Evaluate(sum).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST(Expr, RecordsIntegerLiterals) {
  auto r = Evaluate("(25 + 3) * 4 - 7");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->integer_literals, (std::vector<int64_t>{25, 3, 4, 7}));
  EXPECT_FALSE(r->had_non_integer_literal);
}

}  // namespace
}  // namespace zerorl::reward
