// Unicode helpers for the tokenizer: the GPT-2 byte <-> character alphabet of byte-level BPE,
// UTF-8 scanning, and the Unicode normalisers (NFC/NFD/NFKC/NFKD through ICU).
// Internal to model/tokenizer*.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zerorl::tokenizer_internal {

// GPT-2's reversible map from the 256 byte values to printable code points: printable
// Latin-1 bytes map to themselves, the other 68 to U+0100.. in byte order ('\n' -> U+010A,
// ' ' -> U+0120 'Ġ').
class ByteAlphabet {
 public:
  static const ByteAlphabet& Get();
  // The UTF-8 encoding of the character byte `b` maps to.
  const std::string& Char(uint8_t b) const { return byte_to_utf8_[b]; }
  // Maps every byte of `bytes` to its character (the byte-level form of a pre-token).
  std::string Encode(absl::string_view bytes) const;
  // Inverse of Encode; false when some character of `mapped` is not in the alphabet.
  bool Decode(absl::string_view mapped, std::string* bytes) const;

 private:
  ByteAlphabet();
  std::string byte_to_utf8_[256];
  int16_t codepoint_to_byte_[324];  // -1 where a code point is not in the alphabet
};

// Length in bytes of the UTF-8 sequence starting at s[i]: 1..4 when well-formed, else 1.
int Utf8Length(absl::string_view s, size_t i, bool* valid);
// True when `s` is well-formed UTF-8.
bool IsValidUtf8(absl::string_view s);
// `s` with every maximal ill-formed subpart replaced by U+FFFD (Unicode's "substitution
// of maximal subparts", as Rust's String::from_utf8_lossy and so HF tokenizers' decode
// do): "\xE2\x82" is one U+FFFD, "\xFF\xFE" two. Well-formed input is returned unchanged.
std::string ToValidUtf8(absl::string_view s);

// A normaliser chain from tokenizer.json's "normalizer" (null, NFC, NFD, NFKC, NFKD or a
// Sequence of them). Ill-formed UTF-8 input is returned unchanged (bytes are never lost).
class Normalizer {
 public:
  enum class Form { kNfc, kNfd, kNfkc, kNfkd };
  // `j` is the "normalizer" value; returns nullptr for null. Errors name the field.
  static absl::StatusOr<std::unique_ptr<Normalizer>> FromJson(const nlohmann::json& j);
  std::string Apply(absl::string_view text) const;

 private:
  std::vector<Form> forms_;
};

}  // namespace zerorl::tokenizer_internal
