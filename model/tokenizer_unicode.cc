// GPT-2 byte alphabet, UTF-8 scanning and ICU-backed Unicode normalisation for the tokenizer.
#include "model/tokenizer_unicode.h"

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include "absl/strings/str_cat.h"

namespace zerorl::tokenizer_internal {

namespace {

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Code point of the well-formed sequence of `len` bytes at s[i].
uint32_t DecodeAt(absl::string_view s, size_t i, int len) {
  const auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(s[i + k])); };
  switch (len) {
    case 1: return b(0);
    case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

}  // namespace

ByteAlphabet::ByteAlphabet() {
  for (int16_t& v : codepoint_to_byte_) v = -1;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const uint32_t cp = printable ? b : next++;
    AppendUtf8(cp, &byte_to_utf8_[b]);
    codepoint_to_byte_[cp] = static_cast<int16_t>(b);
  }
}

const ByteAlphabet& ByteAlphabet::Get() {
  static const ByteAlphabet* alphabet = new ByteAlphabet();
  return *alphabet;
}

std::string ByteAlphabet::Encode(absl::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += byte_to_utf8_[static_cast<uint8_t>(c)];
  return out;
}

bool ByteAlphabet::Decode(absl::string_view mapped, std::string* bytes) const {
  std::string out;
  for (size_t i = 0; i < mapped.size();) {
    bool valid = false;
    const int len = Utf8Length(mapped, i, &valid);
    if (!valid) return false;
    const uint32_t cp = DecodeAt(mapped, i, len);
    if (cp >= 324 || codepoint_to_byte_[cp] < 0) return false;
    out.push_back(static_cast<char>(codepoint_to_byte_[cp]));
    i += len;
  }
  *bytes += out;
  return true;
}

int Utf8Length(absl::string_view s, size_t i, bool* valid) {
  const uint8_t c = static_cast<uint8_t>(s[i]);
  int len;
  uint32_t min;
  if (c < 0x80) {
    *valid = true;
    return 1;
  } else if (c >= 0xC2 && c <= 0xDF) {
    len = 2, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, min = 0x10000;
  } else {
    *valid = false;
    return 1;
  }
  if (i + len > s.size()) {
    *valid = false;
    return 1;
  }
  for (int k = 1; k < len; ++k) {
    if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) {
      *valid = false;
      return 1;
    }
  }
  const uint32_t cp = DecodeAt(s, i, len);
  *valid = cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
  return *valid ? len : 1;
}

bool IsValidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    bool valid = false;
    i += Utf8Length(s, i, &valid);
    if (!valid) return false;
  }
  return true;
}

std::string ToValidUtf8(absl::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    bool valid = false;
    const int len = Utf8Length(s, i, &valid);
    if (valid) {
      out.append(s.data() + i, len);
      i += len;
      continue;
    }
    // The maximal subpart: a lead byte and the continuation bytes that still
    // begin a well-formed sequence (the second byte's range depends on the lead).
    const uint8_t c = static_cast<uint8_t>(s[i]);
    const int want = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
    size_t end = i + 1;
    for (int k = 1; k < want && end < s.size(); ++k, ++end) {
      const uint8_t b = static_cast<uint8_t>(s[end]);
      uint8_t lo = 0x80, hi = 0xBF;
      if (k == 1) {
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
      }
      if (b < lo || b > hi) break;
    }
    out += kReplacement;
    i = end;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Normalizer>> Normalizer::FromJson(const nlohmann::json& j) {
  if (j.is_null()) return nullptr;
  auto n = std::make_unique<Normalizer>();
  std::vector<std::pair<const nlohmann::json*, std::string>> stack = {{&j, "normalizer"}};
  // Flattens nested Sequences in order.
  std::vector<std::pair<const nlohmann::json*, std::string>> flat;
  while (!stack.empty()) {
    auto [node, where] = stack.back();
    stack.pop_back();
    if (!node->is_object() || !node->contains("type") || !(*node)["type"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object with a string \"type\""));
    }
    const std::string type = (*node)["type"];
    if (type == "Sequence") {
      const auto it = node->find("normalizers");
      if (it == node->end() || !it->is_array()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".normalizers: expected an array"));
      }
      for (size_t k = it->size(); k-- > 0;) {
        stack.push_back({&(*it)[k], absl::StrCat(where, ".normalizers[", k, "]")});
      }
      continue;
    }
    if (type == "NFC") {
      n->forms_.push_back(Form::kNfc);
    } else if (type == "NFD") {
      n->forms_.push_back(Form::kNfd);
    } else if (type == "NFKC") {
      n->forms_.push_back(Form::kNfkc);
    } else if (type == "NFKD") {
      n->forms_.push_back(Form::kNfkd);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".type: unsupported normalizer \"", type, "\" (supported: NFC, NFD, NFKC, NFKD, Sequence)"));
    }
  }
  return n;
}

std::string Normalizer::Apply(absl::string_view text) const {
  bool ascii = true;
  for (char c : text) ascii &= static_cast<uint8_t>(c) < 0x80;
  // ASCII is invariant under every normal form; ill-formed input is left alone.
  if (ascii || !IsValidUtf8(text)) return std::string(text);
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), text.size()));
  for (Form f : forms_) {
    UErrorCode st = U_ZERO_ERROR;
    const icu::Normalizer2* n = f == Form::kNfc    ? icu::Normalizer2::getNFCInstance(st)
                                : f == Form::kNfd  ? icu::Normalizer2::getNFDInstance(st)
                                : f == Form::kNfkc ? icu::Normalizer2::getNFKCInstance(st)
                                                   : icu::Normalizer2::getNFKDInstance(st);
    if (U_FAILURE(st)) return std::string(text);
    icu::UnicodeString out = n->normalize(u, st);
    if (U_FAILURE(st)) return std::string(text);
    u = std::move(out);
  }
  std::string result;
  u.toUTF8String(result);
  return result;
}

}  // namespace zerorl::tokenizer_internal
