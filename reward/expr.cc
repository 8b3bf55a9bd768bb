// Recursive-descent evaluator over exact rationals with a double fallback.
// See expr.h for the grammar and the budget rules.
#include "reward/expr.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace zerorl::reward {
namespace {

using i128 = __int128;

i128 Gcd(i128 a, i128 b) {
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  while (b != 0) {
    i128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

std::string I128ToString(i128 v) {
  if (v == 0) return "0";
  bool neg = v < 0;
  unsigned __int128 u = neg ? -(unsigned __int128)v : (unsigned __int128)v;
  std::string s;
  while (u > 0) {
    s.push_back(static_cast<char>('0' + static_cast<int>(u % 10)));
    u /= 10;
  }
  if (neg) s.push_back('-');
  return std::string(s.rbegin(), s.rend());
}

Number Inexact(double d) {
  Number n;
  n.exact = false;
  n.approx = d;
  return n;
}

// Builds num/den reduced; falls back to inexact when den is zero-safe but reduction fails.
Number MakeExact(i128 num, i128 den) {
  if (den < 0) {
    if (num == std::numeric_limits<i128>::min() || den == std::numeric_limits<i128>::min()) {
      return Inexact(static_cast<double>(num) / static_cast<double>(den));
    }
    num = -num;
    den = -den;
  }
  i128 g = Gcd(num, den);
  if (g > 1) {
    num /= g;
    den /= g;
  }
  Number n;
  n.q = {num, den};
  n.approx = n.q.ToDouble();
  return n;
}

Number Add(const Number& a, const Number& b, bool negate_b) {
  if (a.exact && b.exact) {
    i128 g = Gcd(a.q.den, b.q.den);
    i128 bd = b.q.den / g, ad = a.q.den / g, t1, t2, num, den;
    i128 bn = negate_b ? -b.q.num : b.q.num;
    if (!__builtin_mul_overflow(a.q.num, bd, &t1) && !__builtin_mul_overflow(bn, ad, &t2) &&
        !__builtin_add_overflow(t1, t2, &num) && !__builtin_mul_overflow(a.q.den, bd, &den)) {
      return MakeExact(num, den);
    }
  }
  return Inexact(negate_b ? a.approx - b.approx : a.approx + b.approx);
}

Number Mul(const Number& a, const Number& b) {
  if (a.exact && b.exact) {
    i128 g1 = Gcd(a.q.num, b.q.den), g2 = Gcd(b.q.num, a.q.den);
    if (g1 == 0) g1 = 1;
    if (g2 == 0) g2 = 1;
    i128 num, den;
    if (!__builtin_mul_overflow(a.q.num / g1, b.q.num / g2, &num) &&
        !__builtin_mul_overflow(a.q.den / g2, b.q.den / g1, &den)) {
      return MakeExact(num, den);
    }
  }
  return Inexact(a.approx * b.approx);
}

absl::StatusOr<Number> Div(const Number& a, const Number& b) {
  if ((b.exact && b.q.num == 0) || (!b.exact && b.approx == 0)) {
    return absl::InvalidArgumentError("division by zero");
  }
  if (b.exact) {
    Number inv = b;
    std::swap(inv.q.num, inv.q.den);
    if (inv.q.den < 0) {
      inv.q.num = -inv.q.num;
      inv.q.den = -inv.q.den;
    }
    inv.approx = 1.0 / b.approx;
    return Mul(a, inv);
  }
  return Inexact(a.approx / b.approx);
}

// Integer square root of v >= 0, or -1 when v is not a perfect square.
i128 ExactSqrt(i128 v) {
  if (v < 0) return -1;
  i128 r = static_cast<i128>(std::sqrt(static_cast<long double>(v)));
  for (i128 c = (r > 2 ? r - 2 : 0); c <= r + 2; ++c) {
    i128 sq;
    if (!__builtin_mul_overflow(c, c, &sq) && sq == v) return c;
  }
  return -1;
}

class Parser {
 public:
  Parser(absl::string_view s, const ExprOptions& o, EvalResult* out) : s_(s), o_(o), out_(out) {}

  absl::StatusOr<Number> ParseAll() {
    auto v = ParseSum();
    if (!v.ok()) return v;
    SkipSpace();
    if (pos_ != s_.size()) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected \"", s_.substr(pos_, 12), "\" at offset ", pos_));
    }
    return v;
  }

 private:
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n')) ++pos_;
  }
  bool Peek(const char* lit) {
    SkipSpace();
    size_t n = std::strlen(lit);
    if (s_.substr(pos_, n) != lit) return false;
    // A command like \pi must not be a prefix of a longer command (\pit).
    if (lit[0] == '\\' && pos_ + n < s_.size() && std::isalpha(static_cast<unsigned char>(s_[pos_ + n])) &&
        std::isalpha(static_cast<unsigned char>(lit[n - 1]))) {
      return false;
    }
    return true;
  }
  bool Eat(const char* lit) {
    if (!Peek(lit)) return false;
    pos_ += std::strlen(lit);
    return true;
  }
  absl::Status Tick() {
    if (++tokens_ > o_.max_tokens) return absl::ResourceExhaustedError("expression exceeds the token budget");
    return absl::OkStatus();
  }
  struct DepthGuard {
    explicit DepthGuard(int* d) : d_(d) { ++*d_; }
    ~DepthGuard() { --*d_; }
    int* d_;
  };

  absl::StatusOr<Number> ParseSum() {
    DepthGuard g(&depth_);
    if (depth_ > o_.max_depth) return absl::ResourceExhaustedError("expression nested too deeply");
    auto lhs = ParseProduct();
    if (!lhs.ok()) return lhs;
    Number acc = *lhs;
    while (true) {
      bool minus;
      if (Eat("+")) {
        minus = false;
      } else if (Eat("-")) {
        minus = true;
      } else {
        break;
      }
      if (auto s = Tick(); !s.ok()) return s;
      auto rhs = ParseProduct();
      if (!rhs.ok()) return rhs;
      acc = Add(acc, *rhs, minus);
    }
    return acc;
  }

  bool StartsPrimaryForImplicit() {
    if (!o_.implicit_multiply) return false;
    return Peek("(") || (o_.latex && (Peek("{") || Peek("\\frac") || Peek("\\sqrt") || Peek("\\pi")));
  }

  absl::StatusOr<Number> ParseProduct() {
    auto lhs = ParseUnary();
    if (!lhs.ok()) return lhs;
    Number acc = *lhs;
    while (true) {
      int op;  // 0 mul, 1 div
      if (Eat("*")) {
        op = 0;
      } else if (Eat("/")) {
        op = 1;
      } else if (o_.latex && (Eat("\\cdot") || Eat("\\times"))) {
        op = 0;
      } else if (o_.latex && Eat("\\div")) {
        op = 1;
      } else if (StartsPrimaryForImplicit()) {
        op = 0;
      } else {
        break;
      }
      if (auto s = Tick(); !s.ok()) return s;
      auto rhs = ParseUnary();
      if (!rhs.ok()) return rhs;
      if (op == 0) {
        acc = Mul(acc, *rhs);
      } else {
        auto q = Div(acc, *rhs);
        if (!q.ok()) return q;
        acc = *q;
      }
    }
    return acc;
  }

  absl::StatusOr<Number> ParseUnary() {
    DepthGuard g(&depth_);
    if (depth_ > o_.max_depth) return absl::ResourceExhaustedError("expression nested too deeply");
    if (auto s = Tick(); !s.ok()) return s;
    if (Eat("-")) {
      auto v = ParseUnary();
      if (!v.ok()) return v;
      return Mul(MakeExact(-1, 1), *v);
    }
    if (Eat("+")) return ParseUnary();
    return ParsePower();
  }

  absl::StatusOr<Number> ParsePower() {
    auto base = ParsePrimary(/*single=*/false);
    if (!base.ok()) return base;
    if (!o_.power || !Eat("^")) return base;
    if (auto s = Tick(); !s.ok()) return s;
    absl::StatusOr<Number> exp;
    SkipSpace();
    if (pos_ < s_.size() && (s_[pos_] == '-' || s_[pos_] == '+')) {
      exp = ParseUnary();
    } else {
      DepthGuard g(&depth_);
      if (depth_ > o_.max_depth) return absl::ResourceExhaustedError("expression nested too deeply");
      exp = ParsePower();  // right-associative
    }
    if (!exp.ok()) return exp;
    return Pow(*base, *exp);
  }

  absl::StatusOr<Number> Pow(const Number& b, const Number& e) {
    if (e.exact && e.q.den == 1) {
      i128 n = e.q.num;
      if (b.exact && (b.q.num == 1 && b.q.den == 1)) return b;
      if (b.exact && b.q.num == 0) {
        if (n < 0) return absl::InvalidArgumentError("division by zero");
        return n == 0 ? MakeExact(1, 1) : b;
      }
      if (b.exact && b.q.num == -1 && b.q.den == 1) return MakeExact(n % 2 == 0 ? 1 : -1, 1);
      if (n > o_.max_exponent || n < -o_.max_exponent) {
        return absl::OutOfRangeError("exponent too large");
      }
      bool neg = n < 0;
      if (neg) n = -n;
      Number result = MakeExact(1, 1), sq = b;
      while (n > 0) {
        if (n & 1) result = Mul(result, sq);
        n >>= 1;
        if (n > 0) sq = Mul(sq, sq);
        if (!std::isfinite(result.approx) || !std::isfinite(sq.approx)) {
          return absl::OutOfRangeError("value too large");
        }
      }
      if (neg) return Div(MakeExact(1, 1), result);
      return result;
    }
    if (b.approx < 0) return absl::InvalidArgumentError("fractional power of a negative number");
    double r = std::pow(b.approx, e.approx);
    if (!std::isfinite(r)) return absl::OutOfRangeError("value too large");
    // Exact rational roots of perfect squares: 4^(1/2) = 2.
    if (b.exact && e.exact && e.q.num == 1 && e.q.den == 2) return Sqrt(b);
    return Inexact(r);
  }

  absl::StatusOr<Number> Sqrt(const Number& v) {
    if (v.approx < 0) return absl::InvalidArgumentError("square root of a negative number");
    if (v.exact) {
      i128 n = ExactSqrt(v.q.num), d = ExactSqrt(v.q.den);
      if (n >= 0 && d > 0) return MakeExact(n, d);
    }
    return Inexact(std::sqrt(v.approx));
  }

  // A LaTeX macro argument: {expr}, or a single digit / single command when malformed (\frac12).
  absl::StatusOr<Number> ParseArg() {
    SkipSpace();
    if (Peek("{")) return ParsePrimary(false);
    return ParsePrimary(/*single=*/true);
  }

  absl::StatusOr<Number> ParseNumber(bool single) {
    size_t start = pos_;
    bool dot = false;
    if (single) {
      ++pos_;
    } else {
      while (pos_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) || (s_[pos_] == '.' && !dot))) {
        if (s_[pos_] == '.') {
          if (!o_.decimals) break;
          // "5." at the end (a sentence period) is not a decimal point.
          if (pos_ + 1 >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[pos_ + 1]))) break;
          dot = true;
        }
        ++pos_;
      }
    }
    absl::string_view lit = s_.substr(start, pos_ - start);
    if (lit.empty() || lit == ".") return absl::InvalidArgumentError("expected a number");
    i128 num = 0, den = 1;
    bool overflow = false;
    bool frac = false;
    for (char c : lit) {
      if (c == '.') {
        frac = true;
        continue;
      }
      if (__builtin_mul_overflow(num, 10, &num) || __builtin_add_overflow(num, c - '0', &num)) overflow = true;
      if (frac && __builtin_mul_overflow(den, 10, &den)) overflow = true;
    }
    if (dot) out_->had_non_integer_literal = true;
    if (!dot && !overflow && num <= std::numeric_limits<int64_t>::max()) {
      out_->integer_literals.push_back(static_cast<int64_t>(num));
    } else if (!dot) {
      out_->had_non_integer_literal = true;  // an integer too large to record
    }
    if (overflow) return Inexact(std::strtod(std::string(lit).c_str(), nullptr));
    return MakeExact(num, den);
  }

  absl::StatusOr<Number> ParsePrimary(bool single) {
    DepthGuard g(&depth_);
    if (depth_ > o_.max_depth) return absl::ResourceExhaustedError("expression nested too deeply");
    if (auto s = Tick(); !s.ok()) return s;
    SkipSpace();
    if (pos_ >= s_.size()) return absl::InvalidArgumentError("expression ends early");
    char c = s_[pos_];
    if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && o_.decimals)) return ParseNumber(single);
    if (!single && (Eat("(") || (o_.latex && Eat("{")))) {
      char close = s_[pos_ - 1] == '(' ? ')' : '}';
      auto v = ParseSum();
      if (!v.ok()) return v;
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != close) {
        return absl::InvalidArgumentError(absl::StrCat("missing '", std::string(1, close), "'"));
      }
      ++pos_;
      return v;
    }
    if (single && Peek("{")) return ParsePrimary(false);
    if (o_.latex) {
      if (Eat("\\frac")) {
        auto a = ParseArg();
        if (!a.ok()) return a;
        auto b = ParseArg();
        if (!b.ok()) return b;
        return Div(*a, *b);
      }
      if (Eat("\\sqrt")) {
        if (Eat("[")) {
          auto n = ParseSum();
          if (!n.ok()) return n;
          if (!Eat("]")) return absl::InvalidArgumentError("missing ']' in \\sqrt[n]");
          auto x = ParseArg();
          if (!x.ok()) return x;
          auto inv = Div(MakeExact(1, 1), *n);
          if (!inv.ok()) return inv;
          if (x->approx < 0) return absl::InvalidArgumentError("root of a negative number");
          Number r = Inexact(std::pow(x->approx, inv->approx));
          // Exact when the rounded root reproduces x exactly (cube root of 27 = 3).
          if (x->exact && n->exact && n->q.den == 1 && n->q.num > 0 && n->q.num <= 64) {
            Number cand = MakeExact(static_cast<i128>(std::llround(r.approx)), 1);
            auto back = Pow(cand, *n);
            if (back.ok() && back->exact && back->q == x->q) return cand;
          }
          return r;
        }
        auto x = ParseArg();
        if (!x.ok()) return x;
        return Sqrt(*x);
      }
      if (Eat("\\pi")) {
        out_->had_non_integer_literal = true;
        return Inexact(M_PI);
      }
    }
    return absl::InvalidArgumentError(absl::StrCat("unexpected \"", s_.substr(pos_, 12), "\" at offset ", pos_));
  }

  absl::string_view s_;
  const ExprOptions& o_;
  EvalResult* out_;
  size_t pos_ = 0;
  int tokens_ = 0;
  int depth_ = 0;
};

}  // namespace

std::string Rational::ToString() const {
  if (den == 1) return I128ToString(num);
  return absl::StrCat(I128ToString(num), "/", I128ToString(den));
}

absl::StatusOr<EvalResult> Evaluate(absl::string_view text, const ExprOptions& options) {
  if (static_cast<int>(text.size()) > options.max_input_chars) {
    return absl::ResourceExhaustedError(absl::StrCat("expression longer than ", options.max_input_chars, " chars"));
  }
  EvalResult out;
  Parser p(text, options, &out);
  auto v = p.ParseAll();
  if (!v.ok()) return v.status();
  if (!std::isfinite(v->approx)) return absl::OutOfRangeError("value too large");
  out.value = *v;
  return out;
}

bool NumbersEqual(const Number& a, const Number& b, double rel_tol) {
  if (a.exact && b.exact) return a.q == b.q;
  return std::fabs(a.approx - b.approx) <= rel_tol * std::max(1.0, std::fabs(b.approx));
}

}  // namespace zerorl::reward
