// Pre-tokenizer steps: regex Split (PCRE2, UTF + UCP, JIT when available) with HF's
// split behaviours, ByteLevel mapping, Digits; a Sequence applies them in order, each to
// every piece the previous one produced (as HF tokenizers does).
#include "model/tokenizer_pretok.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "model/tokenizer_unicode.h"

namespace zerorl::tokenizer_internal {

// One step: appends the pieces of `piece` to `out`.
class PreTokenStep {
 public:
  virtual ~PreTokenStep() = default;
  virtual void Apply(const std::string& piece, std::vector<std::string>* out) const = 0;
};

namespace {

using json = nlohmann::json;

// GPT-2's pattern, used by ByteLevel when use_regex is true.
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// A span of the piece and whether it was a delimiter (a match, or a non-match when inverted).
struct Span {
  size_t begin, end;
  bool delim;
};

// Applies HF's SplitDelimiterBehavior to the spans covering `piece`; empty pieces are dropped.
void Emit(const std::string& piece, const std::vector<Span>& spans, Behavior behavior,
          std::vector<std::string>* out) {
  std::vector<std::pair<size_t, size_t>> parts;
  for (size_t k = 0; k < spans.size(); ++k) {
    const Span& s = spans[k];
    switch (behavior) {
      case Behavior::kRemoved:
        if (!s.delim) parts.push_back({s.begin, s.end});
        break;
      case Behavior::kIsolated:
        parts.push_back({s.begin, s.end});
        break;
      case Behavior::kMergedWithPrevious:
        if (s.delim && !parts.empty() && !spans[k - 1].delim) {
          parts.back().second = s.end;
        } else {
          parts.push_back({s.begin, s.end});
        }
        break;
      case Behavior::kMergedWithNext:
        if (k > 0 && spans[k - 1].delim && !s.delim) {
          parts.back().second = s.end;
        } else {
          parts.push_back({s.begin, s.end});
        }
        break;
      case Behavior::kContiguous:
        if (s.delim && k > 0 && spans[k - 1].delim) {
          parts.back().second = s.end;
        } else {
          parts.push_back({s.begin, s.end});
        }
        break;
    }
  }
  for (const auto& [b, e] : parts) {
    if (e > b) out->push_back(piece.substr(b, e - b));
  }
}

// Turns the sorted, disjoint `matches` into spans covering [0, size).
std::vector<Span> Cover(size_t size, const std::vector<std::pair<size_t, size_t>>& matches, bool invert) {
  std::vector<Span> spans;
  size_t at = 0;
  for (const auto& [b, e] : matches) {
    if (b > at) spans.push_back({at, b, invert});
    spans.push_back({b, e, !invert});
    at = e;
  }
  if (at < size) spans.push_back({at, size, invert});
  return spans;
}

class RegexSplit final : public PreTokenStep {
 public:
  ~RegexSplit() override { pcre2_code_free(code_); }

  static absl::StatusOr<std::unique_ptr<RegexSplit>> Make(const std::string& pattern, bool literal,
                                                          Behavior behavior, bool invert,
                                                          const std::string& where) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    // PCRE2_LITERAL (a String pattern) does not accept PCRE2_UCP, and needs no classes.
    const uint32_t options =
        PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     options, &err, &offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return absl::InvalidArgumentError(absl::StrCat(where, ": bad regex at offset ", offset, ": ",
                                                     reinterpret_cast<const char*>(msg)));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
    auto step = std::unique_ptr<RegexSplit>(new RegexSplit());
    step->code_ = code;
    step->behavior_ = behavior;
    step->invert_ = invert;
    return step;
  }

  void Apply(const std::string& piece, std::vector<std::string>* out) const override {
    Emit(piece, Cover(piece.size(), Matches(piece), invert_), behavior_, out);
  }

  // Non-empty, non-overlapping matches, left to right (empty matches are skipped).
  std::vector<std::pair<size_t, size_t>> Matches(const std::string& s) const {
    std::vector<std::pair<size_t, size_t>> matches;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t start = 0;
    while (start < s.size()) {
      const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start, 0, md, nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[1] > ov[0]) {
        matches.push_back({ov[0], ov[1]});
        start = ov[1];
      } else {
        bool valid = false;
        start = ov[0] + Utf8Length(s, ov[0], &valid);
      }
    }
    pcre2_match_data_free(md);
    return matches;
  }

 private:
  RegexSplit() = default;
  pcre2_code* code_ = nullptr;
  Behavior behavior_ = Behavior::kIsolated;
  bool invert_ = false;
};

class ByteLevelStep final : public PreTokenStep {
 public:
  ByteLevelStep(bool add_prefix_space, std::unique_ptr<RegexSplit> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}

  void Apply(const std::string& piece, std::vector<std::string>* out) const override {
    const ByteAlphabet& alphabet = ByteAlphabet::Get();
    std::string text = add_prefix_space_ && (piece.empty() || piece[0] != ' ') ? " " + piece : piece;
    if (regex_ == nullptr) {
      out->push_back(alphabet.Encode(text));
      return;
    }
    std::vector<std::string> parts;
    regex_->Apply(text, &parts);
    for (const std::string& p : parts) out->push_back(alphabet.Encode(p));
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<RegexSplit> regex_;
};

// HF Digits: ASCII digits isolated one by one (individual_digits) or as contiguous runs.
class DigitsStep final : public PreTokenStep {
 public:
  explicit DigitsStep(bool individual) : individual_(individual) {}

  void Apply(const std::string& piece, std::vector<std::string>* out) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    for (size_t i = 0; i < piece.size(); ++i) {
      if (piece[i] < '0' || piece[i] > '9') continue;
      if (!individual_ && !matches.empty() && matches.back().second == i) {
        matches.back().second = i + 1;
      } else {
        matches.push_back({i, i + 1});
      }
    }
    Emit(piece, Cover(piece.size(), matches, false), Behavior::kIsolated, out);
  }

 private:
  bool individual_;
};

absl::StatusOr<bool> OptionalBool(const json& j, const char* key, bool fallback, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": expected a boolean"));
  return it->get<bool>();
}

absl::StatusOr<Behavior> ParseBehavior(const json& j, const std::string& where) {
  const auto it = j.find("behavior");
  if (it == j.end() || !it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".behavior: expected a string"));
  }
  const std::string b = *it;
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat(where, ".behavior: unknown value \"", b, "\""));
}

absl::Status ParseStep(const json& j, const std::string& where, std::vector<std::unique_ptr<PreTokenStep>>* steps,
                       bool* byte_level) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object with a string \"type\""));
  }
  const std::string type = j["type"];
  if (type == "Sequence") {
    const auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".pretokenizers: expected an array"));
    }
    for (size_t k = 0; k < it->size(); ++k) {
      absl::Status st = ParseStep((*it)[k], absl::StrCat(where, ".pretokenizers[", k, "]"), steps, byte_level);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }
  if (type == "Split") {
    const auto pat = j.find("pattern");
    std::string pattern;
    bool literal = false;
    if (pat != j.end() && pat->is_object() && pat->contains("Regex") && (*pat)["Regex"].is_string()) {
      pattern = (*pat)["Regex"];
    } else if (pat != j.end() && pat->is_object() && pat->contains("String") && (*pat)["String"].is_string()) {
      pattern = (*pat)["String"];
      literal = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".pattern: expected {\"Regex\": string} or {\"String\": string}"));
    }
    absl::StatusOr<Behavior> behavior = ParseBehavior(j, where);
    if (!behavior.ok()) return behavior.status();
    absl::StatusOr<bool> invert = OptionalBool(j, "invert", false, where);
    if (!invert.ok()) return invert.status();
    auto step = RegexSplit::Make(pattern, literal, *behavior, *invert, absl::StrCat(where, ".pattern"));
    if (!step.ok()) return step.status();
    steps->push_back(std::move(*step));
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    absl::StatusOr<bool> prefix = OptionalBool(j, "add_prefix_space", false, where);
    if (!prefix.ok()) return prefix.status();
    absl::StatusOr<bool> use_regex = OptionalBool(j, "use_regex", true, where);
    if (!use_regex.ok()) return use_regex.status();
    std::unique_ptr<RegexSplit> regex;
    if (*use_regex) {
      auto r = RegexSplit::Make(kGpt2Pattern, false, Behavior::kIsolated, false, where);
      if (!r.ok()) return r.status();
      regex = std::move(*r);
    }
    steps->push_back(std::make_unique<ByteLevelStep>(*prefix, std::move(regex)));
    *byte_level = true;
    return absl::OkStatus();
  }
  if (type == "Digits") {
    absl::StatusOr<bool> individual = OptionalBool(j, "individual_digits", false, where);
    if (!individual.ok()) return individual.status();
    steps->push_back(std::make_unique<DigitsStep>(*individual));
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(where, ".type: unsupported pre-tokenizer \"", type,
                                                 "\" (supported: Split, ByteLevel, Digits, Sequence)"));
}

}  // namespace

PreTokenizer::~PreTokenizer() = default;

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::FromJson(const json& j) {
  auto p = std::make_unique<PreTokenizer>();
  if (j.is_null()) return p;
  absl::Status st = ParseStep(j, "pre_tokenizer", &p->steps_, &p->byte_level_);
  if (!st.ok()) return st;
  return p;
}

std::vector<std::string> PreTokenizer::Split(absl::string_view text) const {
  std::vector<std::string> pieces = {std::string(text)};
  std::vector<std::string> next;
  for (const auto& step : steps_) {
    next.clear();
    for (const std::string& piece : pieces) step->Apply(piece, &next);
    pieces.swap(next);
  }
  if (!pieces.empty() && pieces[0].empty()) pieces.clear();
  return pieces;
}

}  // namespace zerorl::tokenizer_internal
