// Exact rational expression evaluator shared by the math and countdown checkers.
//
// Grammar (plain or LaTeX): integers, decimals (".5" too), + - * / ^, ( ) { },
// \frac{a}{b} (also \frac12), \sqrt{x} / \sqrt[n]{x} / \sqrt3, \cdot, \times, \div,
// \pi, and implicit multiplication before "(", "{", "\frac", "\sqrt", "\pi".
// Exponents are right-associative: 2^3^2 = 2^9.
//
// Values are exact rationals (__int128 numerator/denominator, reduced) while they
// fit; irrational results (\pi, non-square roots, fractional powers) and results
// whose numerator or denominator exceed 128 bits become inexact doubles, which
// the math checker compares with a relative tolerance. Every evaluation runs
// under a work budget (tokens, nesting depth, exponent size, input length), so
// "10^10^10^10" or 100k nested braces return an error fast instead of hanging
// or allocating. Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zerorl::reward {

// A reduced fraction num/den with den > 0.
struct Rational {
  __int128 num = 0;
  __int128 den = 1;
  bool operator==(const Rational& o) const { return num == o.num && den == o.den; }
  double ToDouble() const { return static_cast<double>(num) / static_cast<double>(den); }
  std::string ToString() const;  // "3", "-7/2"
};

struct Number {
  bool exact = true;   // q holds the value exactly
  Rational q;          // valid when exact
  double approx = 0;   // always set (the double nearest the value)
};

struct ExprOptions {
  bool latex = true;             // accept \frac, \sqrt, \pi, \cdot, \times, \div, { }
  bool decimals = true;          // accept "1.5", ".5"
  bool power = true;             // accept "^"
  bool implicit_multiply = true; // "2\pi", "3(4+1)"
  int max_input_chars = 4096;    // longer input: RESOURCE_EXHAUSTED
  int max_tokens = 4096;         // work budget in tokens: RESOURCE_EXHAUSTED
  int max_depth = 64;            // nesting of parentheses/braces/operators: RESOURCE_EXHAUSTED
  int max_exponent = 4096;       // |integer exponent| evaluated; larger: OUT_OF_RANGE unless trivial
};

struct EvalResult {
  Number value;
  std::vector<int64_t> integer_literals;  // every integer literal, in order of appearance
  bool had_non_integer_literal = false;   // a decimal literal or \pi appeared
};

// Evaluates `text` (the whole string must be one expression).
// INVALID_ARGUMENT: not an expression / division by zero / sqrt of a negative;
// OUT_OF_RANGE: the value overflows a double; RESOURCE_EXHAUSTED: budget exceeded.
absl::StatusOr<EvalResult> Evaluate(absl::string_view text, const ExprOptions& options = {});

// Equal exactly when both are exact; otherwise |a-b| <= rel_tol * max(1, |b|).
bool NumbersEqual(const Number& a, const Number& b, double rel_tol);

}  // namespace zerorl::reward
