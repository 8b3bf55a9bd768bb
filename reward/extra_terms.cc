// Language consistency, overlong and length terms (contracts in extra_terms.h).
#include "reward/extra_terms.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace zerorl::reward {
namespace {

enum class Script { kLatin, kCjk, kCyrillic, kGreek, kArabic, kHebrew, kDevanagari, kHangul, kOther, kNone };

// The script of a code point, or kNone for non-letters (digits, punctuation, symbols).
Script ScriptOf(uint32_t cp) {
  if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return Script::kLatin;
  if (cp < 0x80) return Script::kNone;
  if ((cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) || (cp >= 0x1E00 && cp <= 0x1EFF)) return Script::kLatin;
  if (cp >= 0x370 && cp <= 0x3FF) return Script::kGreek;
  if (cp >= 0x400 && cp <= 0x52F) return Script::kCyrillic;
  if (cp >= 0x590 && cp <= 0x5FF) return Script::kHebrew;
  if (cp >= 0x600 && cp <= 0x6FF) return Script::kArabic;
  if (cp >= 0x900 && cp <= 0x97F) return Script::kDevanagari;
  if ((cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
      (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x2FA1F))
    return Script::kCjk;
  if (cp >= 0xAC00 && cp <= 0xD7AF) return Script::kHangul;
  if ((cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFF00 && cp <= 0xFF20) ||
      (cp >= 0x1D400 && cp <= 0x1D7FF) || cp == 0xD7 || cp == 0xF7 || (cp >= 0x80 && cp < 0xC0))
    return Script::kNone;  // punctuation, math symbols, fullwidth punctuation
  return Script::kOther;
}

bool ParseScript(absl::string_view name, Script* out) {
  static const std::pair<absl::string_view, Script> kNames[] = {
      {"latin", Script::kLatin},   {"cjk", Script::kCjk},       {"cyrillic", Script::kCyrillic},
      {"greek", Script::kGreek},   {"arabic", Script::kArabic}, {"hebrew", Script::kHebrew},
      {"devanagari", Script::kDevanagari}, {"hangul", Script::kHangul}};
  for (const auto& [n, s] : kNames) {
    if (n == name) {
      *out = s;
      return true;
    }
  }
  return false;
}

}  // namespace

absl::Status ValidateScript(absl::string_view script) {
  Script s;
  if (!ParseScript(script, &s)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown script \"", script, "\" (latin, cjk, cyrillic, greek, arabic, hebrew, devanagari, hangul)"));
  }
  return absl::OkStatus();
}

double LanguageConsistency(absl::string_view text, absl::string_view script) {
  Script want;
  if (!ParseScript(script, &want)) return 0;
  int64_t letters = 0, in_script = 0;
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    uint32_t cp;
    int len;
    if (c < 0x80) {
      cp = c, len = 1;
    } else if ((c >> 5) == 0x6) {
      cp = c & 0x1F, len = 2;
    } else if ((c >> 4) == 0xE) {
      cp = c & 0x0F, len = 3;
    } else if ((c >> 3) == 0x1E) {
      cp = c & 0x07, len = 4;
    } else {
      ++i;  // invalid lead byte: skip
      continue;
    }
    if (i + len > text.size()) break;
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    i += len;
    Script s = ScriptOf(cp);
    if (s == Script::kNone) continue;
    ++letters;
    if (s == want) ++in_script;
  }
  return letters == 0 ? 0.0 : static_cast<double>(in_script) / static_cast<double>(letters);
}

double OverlongPenalty(int64_t tokens, int64_t max_tokens, int64_t buffer_tokens) {
  int64_t expected = max_tokens - buffer_tokens;
  if (tokens <= expected) return 0.0;
  if (tokens <= max_tokens) return static_cast<double>(expected - tokens) / static_cast<double>(buffer_tokens);
  return -1.0;
}

double LengthPenalty(int64_t tokens, int64_t target_tokens, double per_token) {
  return -per_token * static_cast<double>(std::max<int64_t>(0, tokens - target_tokens));
}

int64_t EstimateTokens(absl::string_view text) { return static_cast<int64_t>((text.size() + 3) / 4); }

}  // namespace zerorl::reward
