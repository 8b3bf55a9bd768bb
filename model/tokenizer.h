// Tokenizer: text <-> token ids for the models zerorl trains.
//
// Two kinds, chosen by the spec given to Load():
//  * "char" — the built-in character vocabulary for toy tasks (countdown demo), 100 ids:
//      0 <pad>   1 <bos>   2 <eos>   3 <unk>
//      4..98     printable ASCII 32 (' ') .. 126 ('~'), id = byte - 28
//      99        '\n'
//    Any other byte (tabs, non-ASCII, each byte of a multi-byte UTF-8 character) encodes to <unk>.
//    The four names above are special tokens: "<eos>" in the text encodes to id 2.
//  * a HuggingFace tokenizer.json (a file path, or a directory holding one) with a byte-level
//    BPE model, as shipped with Qwen2/Qwen3 and DeepSeek-V3 checkpoints. Supported pieces:
//      normalizer     null | NFC (ICU) | Sequence of those
//      pre_tokenizer  null | Split (Regex or String pattern; behavior Isolated, Removed,
//                     MergedWithPrevious, MergedWithNext, Contiguous; invert) | ByteLevel
//                     (add_prefix_space, use_regex with the GPT-2 pattern) | Digits
//                     (individual_digits) | Sequence of those. Regexes run in PCRE2 with
//                     PCRE2_UTF | PCRE2_UCP, so \p{L}, \p{N}, \s and look-ahead behave as in HF.
//      model          BPE: vocab, merges as "a b" strings or ["a", "b"] pairs, unk_token,
//                     ignore_merges; dropout must be null, byte_fallback false, no subword
//                     prefix/suffix.
//      added_tokens   matched in the raw text before normalisation and splitting,
//                     leftmost-longest, whether special or not.
//      decoder / post_processor  ignored: decoding is always byte-level; Encode never adds
//                     BOS/EOS (prepend bos_id() yourself when the model wants it).
//    Anything else fails Load() with an error naming the field.
//    bos/eos/pad come from tokenizer_config.json beside tokenizer.json when present
//    (bos_token / eos_token / pad_token), else from well-known added tokens
//    (<|endoftext|>, <｜begin▁of▁sentence｜>, <｜end▁of▁sentence｜>, <s>, </s>, <pad>).
//
// Thread safety: after Load() every method is const and safe to call from many threads
// (the per-pre-token BPE cache is guarded by a mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zerorl {

namespace tokenizer_internal {
class Normalizer;
class PreTokenizer;
class BpeModel;
}  // namespace tokenizer_internal

class Tokenizer {
 public:
  // spec: "char", a path to a tokenizer.json, or a checkpoint directory containing one.
  // Errors: NOT_FOUND for a missing file, INVALID_ARGUMENT naming the bad field otherwise.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& spec);
  // Parses tokenizer.json text (`config_json`: tokenizer_config.json text, may be empty).
  // `source` names the input in error messages.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(absl::string_view tokenizer_json,
                                                             absl::string_view config_json,
                                                             absl::string_view source);
  static std::unique_ptr<Tokenizer> CharVocabulary();

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of `text` (UTF-8; invalid byte sequences are kept byte for byte and skip NFC).
  std::vector<int32_t> Encode(absl::string_view text) const;
  // A prompt's ids as rollout and learner agree on them: BOS (when the tokenizer has one)
  // followed by Encode(text).
  std::vector<int32_t> EncodePrompt(absl::string_view text) const;
  // The text of `ids`: the concatenated bytes of DecodeToken(id), special tokens included
  // unless skip_special; ids outside [0, vocab_size) are skipped. Complete sequences of a
  // byte-level vocabulary give valid UTF-8 again (Decode(Encode(t)) == NFC(t)).
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // Decode(ids, skip_special) as well-formed UTF-8: every ill-formed piece (a sampled
  // sequence may end inside a multi-byte character, or put tokens holding parts of
  // different characters side by side) becomes U+FFFD, as HF tokenizers' decode does.
  // For text that must be UTF-8: proto `string` fields (a sample's text), JSON.
  std::string DecodeText(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // The raw bytes of one token. For byte-level BPE a token may hold only part of a multi-byte
  // UTF-8 character (e.g. one of an emoji's four bytes), so the result need not be valid
  // UTF-8 on its own: concatenate the bytes of consecutive tokens before printing.
  // Empty for an id outside [0, vocab_size).
  std::string DecodeToken(int32_t id) const;

  // One past the largest id (vocab plus added tokens).
  int32_t vocab_size() const { return static_cast<int32_t>(id_to_bytes_.size()); }
  int32_t bos_id() const { return bos_id_; }  // -1 if none
  int32_t eos_id() const { return eos_id_; }  // -1 if none
  int32_t pad_id() const { return pad_id_; }  // -1 if none
  bool is_special(int32_t id) const;
  // Id of a vocabulary entry or added token by its name as written in tokenizer.json
  // (byte-level pieces in their mapped form, e.g. "Ġthe"); -1 if absent.
  int32_t TokenToId(absl::string_view name) const;

  // A single-turn prompt for `user_message`, ending where the assistant's reply starts.
  // The two known formats are hard-coded (no Jinja), detected by their special tokens:
  //   Qwen (has <|im_start|>):   "<|im_start|>user\n{msg}<|im_end|>\n<|im_start|>assistant\n"
  //   DeepSeek (has <｜User｜>): "{bos}<｜User｜>{msg}<｜Assistant｜>"  ({bos} = the BOS token text)
  // Anything else (including "char") returns the message unchanged. No system prompt is added.
  std::string ApplyChatTemplate(absl::string_view user_message) const;

 private:
  enum class ChatFormat { kNone, kQwen, kDeepSeek };
  struct AddedToken {
    std::string content;
    int32_t id;
  };

  Tokenizer();
  void AddSpecial(const std::string& content, int32_t id);
  void FinishAdded();
  // Appends the ids of `text` (which holds no added token) to `out`.
  void EncodeOrdinary(absl::string_view text, std::vector<int32_t>* out) const;

  bool char_vocab_ = false;
  std::vector<std::string> id_to_bytes_;   // [vocab_size] raw bytes each id decodes to
  std::vector<std::string> id_to_name_;    // [vocab_size] name as in tokenizer.json
  std::vector<bool> special_;              // [vocab_size]
  absl::flat_hash_map<std::string, int32_t> name_to_id_;
  std::vector<AddedToken> added_;          // sorted by first byte, then longer first
  int32_t added_first_byte_[257] = {};     // added_[added_first_byte_[b] .. [b+1]) start with b
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1, unk_id_ = -1;
  ChatFormat chat_format_ = ChatFormat::kNone;
  std::unique_ptr<tokenizer_internal::Normalizer> normalizer_;
  std::unique_ptr<tokenizer_internal::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<tokenizer_internal::BpeModel> bpe_;
};

}  // namespace zerorl
