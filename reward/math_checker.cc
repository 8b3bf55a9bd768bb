// Math checker: extraction, normalisation and equivalence (rules in math_checker.h).
#include "reward/math_checker.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "reward/expr.h"

namespace zerorl::reward {
namespace {

constexpr size_t kMaxAnswerChars = 1000;

// At most `max_bytes` bytes of `s`, cut at a UTF-8 character boundary: details
// and extracted answers go into proto string fields, which must be UTF-8.
std::string Utf8Prefix(absl::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  size_t n = max_bytes;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // s[n] continues a character
  return std::string(s.substr(0, n));
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// A boxed argument longer than this is not searched further: it is an error
// verdict anyway (> kMaxAnswerChars), and the cap keeps scans linear overall.
constexpr size_t kMaxBraceScan = 4 * kMaxAnswerChars;

// Position just after the brace matching the '{' at `open`, or npos when it is
// unmatched; kTooLong when no match lies within `limit` chars.
constexpr size_t kTooLong = absl::string_view::npos - 1;
size_t MatchBrace(absl::string_view s, size_t open, size_t limit = absl::string_view::npos) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (i - open > limit) return kTooLong;
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {
      ++i;  // an escaped brace (\{ \}) belongs to the content
      continue;
    }
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth == 0) return i + 1;
  }
  return absl::string_view::npos;
}

// The argument of a boxed command whose name ends at `after` ("\boxed{5}", "\boxed 5").
// Sets *end to the position after it. nullopt when malformed.
std::optional<std::string> BoxArgument(absl::string_view s, size_t after, size_t* end) {
  size_t i = after;
  while (i < s.size() && s[i] == ' ') ++i;
  if (i >= s.size()) return std::nullopt;
  if (s[i] == '{') {
    size_t close = MatchBrace(s, i, kMaxBraceScan);
    if (close == absl::string_view::npos) return std::nullopt;
    if (close == kTooLong) {  // reported as an over-long answer
      *end = i + kMaxBraceScan;
      return std::string(s.substr(i + 1, kMaxBraceScan));
    }
    *end = close;
    return std::string(s.substr(i + 1, close - i - 2));
  }
  if (i == after) return std::nullopt;  // "\boxedx" is another command
  size_t j = i;
  while (j < s.size() && s[j] != ' ' && s[j] != '$' && s[j] != '\n') ++j;
  *end = j;
  return std::string(s.substr(i, j - i));
}

std::optional<std::string> LastBoxed(absl::string_view s) {
  // Last occurrence of each name before `before`; each re-searched only once passed (linear overall).
  size_t b = s.rfind("\\boxed"), f = s.rfind("\\fbox");
  while (b != absl::string_view::npos || f != absl::string_view::npos) {
    bool use_b = f == absl::string_view::npos || (b != absl::string_view::npos && b > f);
    size_t p = use_b ? b : f;
    size_t end;
    if (auto arg = BoxArgument(s, p + (use_b ? 6 : 5), &end)) return arg;
    if (use_b) {
      b = p == 0 ? absl::string_view::npos : s.rfind("\\boxed", p - 1);
    } else {
      f = p == 0 ? absl::string_view::npos : s.rfind("\\fbox", p - 1);
    }
  }
  return std::nullopt;
}

std::optional<std::string> LastAnswerTag(absl::string_view s) {
  size_t open = s.rfind("<answer>");
  if (open == absl::string_view::npos) return std::nullopt;
  size_t close = s.find("</answer>", open);
  if (close == absl::string_view::npos) return std::nullopt;
  return std::string(absl::StripAsciiWhitespace(s.substr(open + 8, close - open - 8)));
}

std::optional<std::string> Gsm8kMarker(absl::string_view s) {
  size_t p = s.rfind("####");
  if (p == absl::string_view::npos) return std::nullopt;
  absl::string_view rest = s.substr(p + 4);
  rest = rest.substr(0, rest.find('\n'));
  rest = absl::StripAsciiWhitespace(rest);
  if (rest.empty()) return std::nullopt;
  return std::string(rest);
}

std::optional<std::string> TheAnswerIs(absl::string_view s) {
  static constexpr absl::string_view kPhrase = "the answer is";
  // Case-insensitive reverse search without copying the completion.
  size_t found = absl::string_view::npos;
  for (size_t i = s.size() >= kPhrase.size() ? s.size() - kPhrase.size() + 1 : 0; i-- > 0;) {
    if ((s[i] == 't' || s[i] == 'T') && absl::EqualsIgnoreCase(s.substr(i, kPhrase.size()), kPhrase)) {
      found = i;
      break;
    }
  }
  if (found == absl::string_view::npos) return std::nullopt;
  absl::string_view rest = s.substr(found + kPhrase.size());
  rest = rest.substr(0, rest.find('\n'));
  size_t stop = rest.find(". ");
  if (stop != absl::string_view::npos) rest = rest.substr(0, stop);
  rest = absl::StripAsciiWhitespace(rest);
  absl::ConsumePrefix(&rest, ":");
  rest = absl::StripAsciiWhitespace(rest);
  if (rest.empty()) return std::nullopt;
  if (auto boxed = LastBoxed(rest)) return boxed;
  return std::string(rest);
}

// Replaces every \cmd{X} (cmd in `cmds`) with X.
void UnwrapCommands(std::string* s, std::initializer_list<absl::string_view> cmds) {
  for (absl::string_view cmd : cmds) {
    size_t from = 0;
    while (true) {
      size_t p = absl::string_view(*s).find(cmd, from);
      if (p == std::string::npos) break;
      size_t open = p + cmd.size();
      while (open < s->size() && (*s)[open] == ' ') ++open;
      if (open >= s->size() || (*s)[open] != '{') {
        from = p + 1;
        continue;
      }
      size_t close = MatchBrace(*s, open);
      if (close == std::string::npos || close == kTooLong) break;
      std::string inner = s->substr(open + 1, close - open - 2);
      s->replace(p, close - p, inner);
      from = p;
    }
  }
}

// "7,425,000" / "1 000" -> "7425000" / "1000" (groups of exactly three digits).
void RemoveThousandsSeparators(std::string* s) {
  std::string out;
  out.reserve(s->size());
  size_t i = 0;
  const std::string& in = *s;
  while (i < in.size()) {
    bool starts = IsDigit(in[i]) && (i == 0 || (!IsDigit(in[i - 1]) && in[i - 1] != '.'));
    if (!starts) {
      out.push_back(in[i++]);
      continue;
    }
    size_t j = i;
    while (j < in.size() && IsDigit(in[j])) ++j;
    size_t lead = j - i;
    size_t k = j;
    int groups = 0;
    char sep = 0;
    if (lead <= 3) {
      while (k + 3 < in.size() + 0 && (in[k] == ',' || in[k] == ' ') && (sep == 0 || in[k] == sep) &&
             IsDigit(in[k + 1]) && IsDigit(in[k + 2]) && IsDigit(in[k + 3]) &&
             (k + 4 >= in.size() || !IsDigit(in[k + 4]))) {
        sep = in[k];
        k += 4;
        ++groups;
      }
    }
    if (groups == 0) {
      out.append(in, i, j - i);
      i = j;
      continue;
    }
    for (size_t t = i; t < k; ++t) {
      if (in[t] != sep) out.push_back(in[t]);
    }
    i = k;
  }
  *s = std::move(out);
}

bool IsHedgeWord(absl::string_view w) {
  static constexpr absl::string_view kHedges[] = {"or", "and", "to", "plus", "minus", "times", "over", "divided",
                                                   "is", "not", "pm", "mp", "equals", "than", "but", "nor", "vs"};
  for (absl::string_view h : kHedges) {
    if (absl::EqualsIgnoreCase(w, h)) return true;
  }
  return false;
}

// "18 dollars" -> "18": only when the head has no plain-letter words and the
// tail is unit-like words (letters, ^, digits after ^, /, ., -) with no hedge word.
void StripTrailingUnits(std::string* s) {
  size_t p = std::string::npos;
  for (size_t i = 1; i < s->size(); ++i) {
    if (IsAlpha((*s)[i]) && (*s)[i - 1] == ' ') {
      p = i;
      break;
    }
  }
  if (p == std::string::npos) return;
  // Head: letters only inside backslash commands.
  for (size_t i = 0; i < p; ++i) {
    if ((*s)[i] == '\\') {
      while (i + 1 < p && IsAlpha((*s)[i + 1])) ++i;
    } else if (IsAlpha((*s)[i])) {
      return;
    }
  }
  if (absl::StripAsciiWhitespace(absl::string_view(*s).substr(0, p)).empty()) return;
  absl::string_view tail = absl::string_view(*s).substr(p);
  for (char c : tail) {
    if (!(IsAlpha(c) || c == ' ' || c == '^' || c == '/' || c == '.' || c == '-' || c == '\'' || IsDigit(c))) return;
  }
  size_t start = 0;
  while (start < tail.size()) {
    size_t end = tail.find(' ', start);
    if (end == absl::string_view::npos) end = tail.size();
    absl::string_view w = tail.substr(start, end - start);
    if (!w.empty() && (IsHedgeWord(w) || IsDigit(w[0]))) return;
    start = end + 1;
  }
  s->resize(p);
  while (!s->empty() && s->back() == ' ') s->pop_back();
}

// "x = 5" -> "5"; "\theta=30" -> "30". Not for <=, >=, !=.
void StripVariableAssignment(std::string* s) {
  size_t eq = s->rfind('=');
  if (eq == std::string::npos || eq == 0) return;
  char before = (*s)[eq - 1];
  if (before == '<' || before == '>' || before == '!') return;
  size_t first_eq = s->find('=');
  absl::string_view lhs = absl::StripAsciiWhitespace(absl::string_view(*s).substr(0, first_eq));
  if (lhs.empty() || lhs.size() > 12) return;
  if (!(IsAlpha(lhs[0]) || lhs[0] == '\\')) return;
  for (char c : lhs) {
    if (!(IsAlpha(c) || IsDigit(c) || c == '_' || c == '\\' || c == '{' || c == '}' || c == '\'')) return;
  }
  *s = std::string(absl::StripAsciiWhitespace(absl::string_view(*s).substr(eq + 1)));
}

struct Structured {
  enum Kind { kScalar, kOrdered, kUnordered } kind = kScalar;
  char open = 0, close = 0;
  std::vector<std::string> items;
};

std::vector<std::string> SplitTopLevel(absl::string_view s) {
  std::vector<std::string> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    if (c == ',' && depth == 0) {
      parts.emplace_back(absl::StripAsciiWhitespace(s.substr(start, i - start)));
      start = i + 1;
    }
  }
  parts.emplace_back(absl::StripAsciiWhitespace(s.substr(start)));
  return parts;
}

// Whether the bracket at 0 closes exactly at the last char.
bool OuterPairWraps(absl::string_view s) {
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') {
      if (--depth == 0 && i + 1 != s.size()) return false;
    }
  }
  return depth == 0;
}

Structured Structure(const std::string& norm) {
  Structured st;
  absl::string_view s = norm;
  if (absl::StartsWith(s, "\\{") && absl::EndsWith(s, "\\}") && s.size() >= 4) {
    st.kind = Structured::kUnordered;
    st.items = SplitTopLevel(s.substr(2, s.size() - 4));
    return st;
  }
  if (s.size() >= 2 && (s.front() == '(' || s.front() == '[') && (s.back() == ')' || s.back() == ']') &&
      OuterPairWraps(s)) {
    auto items = SplitTopLevel(s.substr(1, s.size() - 2));
    if (items.size() >= 2) {
      st.kind = Structured::kOrdered;
      st.open = s.front();
      st.close = s.back();
      st.items = std::move(items);
      return st;
    }
  }
  auto items = SplitTopLevel(s);
  if (items.size() >= 2) {
    st.kind = Structured::kUnordered;
    st.items = std::move(items);
    return st;
  }
  st.items = {norm};
  return st;
}

std::string WithoutSpaces(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != ' ') out.push_back(c);
  }
  return out;
}

absl::StatusOr<bool> ScalarEqual(const std::string& pred, const std::string& gold, double tol) {
  ExprOptions opts;
  auto g = Evaluate(gold, opts);
  auto p = Evaluate(pred, opts);
  auto is_budget = [](const absl::Status& s) {
    return s.code() == absl::StatusCode::kResourceExhausted || s.code() == absl::StatusCode::kOutOfRange;
  };
  if (!p.ok() && is_budget(p.status())) return p.status();
  if (g.ok() && p.ok()) return NumbersEqual(p->value, g->value, tol);
  if (g.ok() != p.ok()) return false;  // a number never equals a non-number
  return WithoutSpaces(pred) == WithoutSpaces(gold);
}

}  // namespace

const char* MathVerdictName(MathVerdict v) {
  switch (v) {
    case MathVerdict::kCorrect: return "correct";
    case MathVerdict::kWrong: return "wrong";
    case MathVerdict::kNoAnswer: return "no_answer";
    case MathVerdict::kError: return "error";
  }
  return "error";
}

absl::Status ValidateExtractors(const std::vector<std::string>& extractors) {
  for (const auto& e : extractors) {
    if (e != "boxed" && e != "answer_tag" && e != "gsm8k" && e != "the_answer_is") {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown extractor \"", e, "\" (boxed, answer_tag, gsm8k, the_answer_is)"));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> ExtractAllBoxed(absl::string_view text) {
  std::vector<std::string> out;
  size_t from = 0;
  // Next occurrence of each name at or after `from`, searched again only once passed: linear overall.
  size_t b = text.find("\\boxed"), f = text.find("\\fbox");
  while (from < text.size()) {
    if (b != absl::string_view::npos && b < from) b = text.find("\\boxed", from);
    if (f != absl::string_view::npos && f < from) f = text.find("\\fbox", from);
    size_t p = std::min(b, f);
    if (p == absl::string_view::npos) break;
    size_t name_len = p == b ? 6 : 5;
    size_t end = 0;
    if (auto arg = BoxArgument(text, p + name_len, &end)) {
      out.push_back(std::move(*arg));
      from = end;
    } else {
      from = p + name_len;
    }
  }
  return out;
}

std::optional<std::string> ExtractAnswer(absl::string_view completion, const std::vector<std::string>& extractors) {
  for (const auto& e : extractors) {
    std::optional<std::string> r;
    if (e == "boxed") {
      r = LastBoxed(completion);
    } else if (e == "answer_tag") {
      r = LastAnswerTag(completion);
    } else if (e == "gsm8k") {
      r = Gsm8kMarker(completion);
    } else if (e == "the_answer_is") {
      r = TheAnswerIs(completion);
    }
    if (r && !absl::StripAsciiWhitespace(*r).empty()) return r;
  }
  return std::nullopt;
}

std::string Normalize(absl::string_view answer) {
  std::string s(absl::StripAsciiWhitespace(answer));
  if (absl::StartsWith(s, "\\boxed") || absl::StartsWith(s, "\\fbox")) {
    if (auto inner = LastBoxed(s)) s = *inner;
  }
  UnwrapCommands(&s, {"\\text", "\\textbf", "\\textrm", "\\mathrm", "\\mathbf", "\\mbox", "\\boxed"});
  s = absl::StrReplaceAll(s, {{"\\left", ""},
                              {"\\right", ""},
                              {"\\displaystyle", ""},
                              {"\\!", ""},
                              {"^{\\circ}", ""},
                              {"^\\circ", ""},
                              {"\\circ", ""},
                              {"\xC2\xB0", ""},  // °
                              {"\\$", ""},
                              {"$", ""},
                              {"\\%", ""},
                              {"%", ""},
                              {"\xE2\x82\xAC", ""},  // €
                              {"\xC2\xA3", ""},      // £
                              {"\\dfrac", "\\frac"},
                              {"\\tfrac", "\\frac"},
                              {"{,}", ","},
                              {"\\,", " "},
                              {"\\;", " "},
                              {"\\:", " "},
                              {"\\ ", " "},
                              {"~", " "},
                              {"\t", " "},
                              {"\n", " "}});
  // Collapse runs of spaces.
  std::string collapsed;
  for (char c : s) {
    if (c == ' ' && (collapsed.empty() || collapsed.back() == ' ')) continue;
    collapsed.push_back(c);
  }
  s = std::string(absl::StripAsciiWhitespace(collapsed));
  while (!s.empty() && s.back() == '.') {
    s.pop_back();
    s = std::string(absl::StripAsciiWhitespace(s));
  }
  StripVariableAssignment(&s);
  RemoveThousandsSeparators(&s);
  StripTrailingUnits(&s);
  while (!s.empty() && s.back() == '.') s.pop_back();
  return std::string(absl::StripAsciiWhitespace(s));
}

absl::StatusOr<bool> Equivalent(absl::string_view pred_raw, absl::string_view gold_raw, double rel_tolerance) {
  std::string pred = Normalize(pred_raw), gold = Normalize(gold_raw);
  if (pred.empty()) return false;
  Structured ps = Structure(pred), gs = Structure(gold);
  if (ps.kind != gs.kind || ps.items.size() != gs.items.size()) return false;
  if (ps.kind == Structured::kScalar) return ScalarEqual(pred, gold, rel_tolerance);
  if (ps.kind == Structured::kOrdered) {
    if (ps.open != gs.open || ps.close != gs.close) return false;
    for (size_t i = 0; i < ps.items.size(); ++i) {
      auto eq = ScalarEqual(Normalize(ps.items[i]), Normalize(gs.items[i]), rel_tolerance);
      if (!eq.ok() || !*eq) return eq;
    }
    return true;
  }
  // Multiset matching (answers have few elements; quadratic is fine, capped by the length budget).
  std::vector<bool> used(gs.items.size(), false);
  for (const auto& p : ps.items) {
    bool matched = false;
    for (size_t j = 0; j < gs.items.size() && !matched; ++j) {
      if (used[j]) continue;
      auto eq = ScalarEqual(Normalize(p), Normalize(gs.items[j]), rel_tolerance);
      if (!eq.ok()) return eq.status();
      if (*eq) used[j] = matched = true;
    }
    if (!matched) return false;
  }
  return true;
}

MathCheckResult CheckMath(absl::string_view completion, absl::string_view gold, const MathCheckOptions& options) {
  MathCheckResult r;
  std::string gold_text(gold);
  if (gold.find("####") != absl::string_view::npos) {
    if (auto g = Gsm8kMarker(gold)) gold_text = *g;
  }
  auto pred = ExtractAnswer(completion, options.extractors);
  if (!pred) {
    r.verdict = MathVerdict::kNoAnswer;
    r.detail = "no answer found";
    return r;
  }
  if (pred->size() > kMaxAnswerChars) {
    r.verdict = MathVerdict::kError;
    r.extracted = Utf8Prefix(*pred, 64) + "...";
    r.detail = absl::StrCat("answer longer than ", kMaxAnswerChars, " chars");
    return r;
  }
  r.extracted = *pred;
  if (options.all_boxed_equal) {
    auto boxes = ExtractAllBoxed(completion);
    for (size_t i = 0; i + 1 < boxes.size() && i < 64; ++i) {
      auto same = Equivalent(boxes[i], *pred, options.rel_tolerance);
      if (!same.ok() || !*same) {
        r.verdict = MathVerdict::kWrong;
        r.detail = absl::StrCat("boxed answers disagree: \"", Utf8Prefix(boxes[i], 64), "\"");
        return r;
      }
    }
  }
  auto eq = Equivalent(*pred, gold_text, options.rel_tolerance);
  if (!eq.ok()) {
    r.verdict = MathVerdict::kError;
    r.detail = std::string(eq.status().message());
    return r;
  }
  r.verdict = *eq ? MathVerdict::kCorrect : MathVerdict::kWrong;
  if (!*eq) r.detail = absl::StrCat("expected ", Normalize(gold_text), ", got ", Normalize(*pred));
  return r;
}

}  // namespace zerorl::reward
