// Pre-tokenizer for byte-level BPE: splits normalised text into the pieces BPE runs on,
// following tokenizer.json's "pre_tokenizer" (Split, ByteLevel, Digits, Sequence).
// Internal to model/tokenizer*.cc.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zerorl::tokenizer_internal {

class PreTokenStep;

class PreTokenizer {
 public:
  // `j` is the "pre_tokenizer" value (null: the whole text is one piece). Errors name the field.
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> FromJson(const nlohmann::json& j);
  ~PreTokenizer();

  // The pieces of `text`, in order; after a ByteLevel step they are in byte-level form.
  std::vector<std::string> Split(absl::string_view text) const;
  // Whether some step maps pieces to the byte-level alphabet.
  bool byte_level() const { return byte_level_; }

 private:
  std::vector<std::unique_ptr<PreTokenStep>> steps_;
  bool byte_level_ = false;
};

}  // namespace zerorl::tokenizer_internal
