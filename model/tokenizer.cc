// Tokenizer: loading (built-in char vocabulary or HF tokenizer.json), added-token matching,
// encode/decode and the two hard-coded chat templates. See tokenizer.h for the contract.
#include "model/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/json.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/tokenizer_bpe.h"
#include "model/tokenizer_pretok.h"
#include "model/tokenizer_unicode.h"

namespace zerorl {

namespace {

using json = nlohmann::json;
using tokenizer_internal::BpeModel;
using tokenizer_internal::ByteAlphabet;
using tokenizer_internal::Normalizer;
using tokenizer_internal::PreTokenizer;

constexpr char kQwenImStart[] = "<|im_start|>";
constexpr char kQwenImEnd[] = "<|im_end|>";
constexpr char kDeepSeekUser[] = "<\xEF\xBD\x9CUser\xEF\xBD\x9C>";            // <｜User｜>
constexpr char kDeepSeekAssistant[] = "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>";  // <｜Assistant｜>

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<json> ParseJson(absl::string_view text, absl::string_view source) {
  if (auto s = CheckJsonDepth(text); !s.ok()) return absl::InvalidArgumentError(absl::StrCat(source, ": ", s.message()));
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": malformed JSON: ", e.what()));
  }
}

// tokenizer_config.json's bos_token etc.: a string, null, or {"content": string, ...}.
absl::StatusOr<std::string> ConfigToken(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("tokenizer_config.json: ", key, ": expected a string, null or {\"content\": string}"));
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::CharVocabulary() {
  auto t = std::unique_ptr<Tokenizer>(new Tokenizer());
  t->char_vocab_ = true;
  const char* specials[] = {"<pad>", "<bos>", "<eos>", "<unk>"};
  for (const char* s : specials) {
    t->id_to_bytes_.push_back(s);
    t->id_to_name_.push_back(s);
    t->special_.push_back(true);
  }
  for (int c = 32; c <= 126; ++c) {
    t->id_to_bytes_.push_back(std::string(1, static_cast<char>(c)));
    t->id_to_name_.push_back(t->id_to_bytes_.back());
    t->special_.push_back(false);
  }
  t->id_to_bytes_.push_back("\n");
  t->id_to_name_.push_back("\n");
  t->special_.push_back(false);
  for (int32_t id = 0; id < t->vocab_size(); ++id) t->name_to_id_[t->id_to_name_[id]] = id;
  for (int32_t id = 0; id < 4; ++id) t->added_.push_back({specials[id], id});
  t->FinishAdded();
  t->pad_id_ = 0;
  t->bos_id_ = 1;
  t->eos_id_ = 2;
  t->unk_id_ = 3;
  return t;
}

void Tokenizer::FinishAdded() {
  std::sort(added_.begin(), added_.end(), [](const AddedToken& a, const AddedToken& b) {
    const uint8_t fa = static_cast<uint8_t>(a.content[0]), fb = static_cast<uint8_t>(b.content[0]);
    if (fa != fb) return fa < fb;
    return a.content.size() > b.content.size();
  });
  size_t k = 0;
  for (int b = 0; b <= 256; ++b) {
    while (k < added_.size() && static_cast<uint8_t>(added_[k].content[0]) < b) ++k;
    added_first_byte_[b] = static_cast<int32_t>(k);
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& spec) {
  if (spec == "char") return CharVocabulary();
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path path(spec);
  if (fs::is_directory(path, ec)) path /= "tokenizer.json";
  if (!fs::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat("tokenizer: ", path.string(),
                                            " does not exist (spec is \"char\", a tokenizer.json or a directory with one)"));
  }
  ZRL_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::string config_text;
  const fs::path config_path = path.parent_path() / "tokenizer_config.json";
  if (fs::exists(config_path, ec)) {
    ZRL_ASSIGN_OR_RETURN(config_text, ReadFile(config_path));
  }
  return FromJson(text, config_text, path.string());
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(absl::string_view tokenizer_json,
                                                               absl::string_view config_json,
                                                               absl::string_view source) {
  const auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(source, ": ", s.message()));
  };
  ZRL_ASSIGN_OR_RETURN(json j, ParseJson(tokenizer_json, source));
  if (!j.is_object()) return fail(absl::InvalidArgumentError("expected a JSON object at the top level"));
  auto t = std::unique_ptr<Tokenizer>(new Tokenizer());

  auto normalizer = Normalizer::FromJson(j.value("normalizer", json()));
  if (!normalizer.ok()) return fail(normalizer.status());
  t->normalizer_ = std::move(*normalizer);
  auto pre = PreTokenizer::FromJson(j.value("pre_tokenizer", json()));
  if (!pre.ok()) return fail(pre.status());
  t->pre_tokenizer_ = std::move(*pre);
  if (!t->pre_tokenizer_->byte_level()) {
    return fail(absl::InvalidArgumentError(
        "pre_tokenizer: no ByteLevel step; only byte-level BPE tokenizers are supported"));
  }
  if (!j.contains("model")) return fail(absl::InvalidArgumentError("model: missing"));
  auto bpe = BpeModel::FromJson(j["model"]);
  if (!bpe.ok()) return fail(bpe.status());
  t->bpe_ = std::move(*bpe);
  t->unk_id_ = t->bpe_->unk_id();

  // Ids: the vocabulary, then added tokens (which may reuse a vocabulary id or add new ones).
  int32_t size = 0;
  for (const auto& [name, id] : t->bpe_->vocab()) size = std::max(size, id + 1);
  std::vector<std::pair<std::string, int32_t>> added;
  std::vector<bool> added_special;
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    const json& a = j["added_tokens"];
    if (!a.is_array()) return fail(absl::InvalidArgumentError("added_tokens: expected an array"));
    for (size_t k = 0; k < a.size(); ++k) {
      const std::string where = absl::StrCat("added_tokens[", k, "]");
      const json& e = a[k];
      if (!e.is_object() || !e.contains("id") || !e["id"].is_number_integer() || e["id"].get<int64_t>() < 0 ||
          e["id"].get<int64_t>() >= (int64_t{1} << 30)) {
        return fail(absl::InvalidArgumentError(absl::StrCat(where, ".id: expected a non-negative integer")));
      }
      if (!e.contains("content") || !e["content"].is_string() || e["content"].get<std::string>().empty()) {
        return fail(absl::InvalidArgumentError(absl::StrCat(where, ".content: expected a non-empty string")));
      }
      if (e.contains("special") && !e["special"].is_boolean()) {
        return fail(absl::InvalidArgumentError(absl::StrCat(where, ".special: expected a boolean")));
      }
      added.push_back({e["content"], e["id"]});
      added_special.push_back(e.value("special", false));
      size = std::max(size, added.back().second + 1);
    }
  }
  t->id_to_bytes_.assign(size, std::string());
  t->id_to_name_.assign(size, std::string());
  t->special_.assign(size, false);
  const ByteAlphabet& alphabet = ByteAlphabet::Get();
  for (const auto& [name, id] : t->bpe_->vocab()) {
    t->id_to_name_[id] = name;
    t->name_to_id_[name] = id;
    // As HF's ByteLevel decoder: a piece outside the alphabet decodes to its own UTF-8 bytes.
    if (!alphabet.Decode(name, &t->id_to_bytes_[id])) t->id_to_bytes_[id] = name;
  }
  for (size_t k = 0; k < added.size(); ++k) {
    const auto& [content, id] = added[k];
    t->id_to_name_[id] = content;
    t->id_to_bytes_[id] = content;
    t->name_to_id_[content] = id;
    t->special_[id] = added_special[k];
    t->added_.push_back({content, id});
  }
  t->FinishAdded();

  json config = json::object();
  if (!config_json.empty()) {
    auto c = ParseJson(config_json, "tokenizer_config.json");
    if (!c.ok()) return fail(c.status());
    if (!c->is_object()) return fail(absl::InvalidArgumentError("tokenizer_config.json: expected an object"));
    config = std::move(*c);
  }
  struct Role {
    const char* key;
    int32_t* id;
    std::vector<const char*> fallbacks;
  };
  const Role roles[] = {
      {"bos_token", &t->bos_id_, {"<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "<s>",
                                  "<|begin_of_text|>"}},
      {"eos_token", &t->eos_id_, {"<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "</s>",
                                  "<|endoftext|>", "<|end_of_text|>"}},
      {"pad_token", &t->pad_id_, {"<\xEF\xBD\x9C\xE2\x96\x81pad\xE2\x96\x81\xEF\xBD\x9C>", "<pad>",
                                  "<|endoftext|>"}},
  };
  for (const Role& role : roles) {
    if (config.contains(role.key)) {
      auto name = ConfigToken(config, role.key);
      if (!name.ok()) return fail(name.status());
      if (name->empty()) continue;
      *role.id = t->TokenToId(*name);
      if (*role.id < 0) {
        return fail(absl::InvalidArgumentError(
            absl::StrCat("tokenizer_config.json: ", role.key, " \"", *name, "\" is not in the vocabulary")));
      }
      continue;
    }
    for (const char* name : role.fallbacks) {
      if ((*role.id = t->TokenToId(name)) >= 0) break;
    }
  }
  if (t->TokenToId(kQwenImStart) >= 0 && t->TokenToId(kQwenImEnd) >= 0) {
    t->chat_format_ = ChatFormat::kQwen;
  } else if (t->TokenToId(kDeepSeekUser) >= 0 && t->TokenToId(kDeepSeekAssistant) >= 0) {
    t->chat_format_ = ChatFormat::kDeepSeek;
  }
  return t;
}

int32_t Tokenizer::TokenToId(absl::string_view name) const {
  const auto it = name_to_id_.find(name);
  return it == name_to_id_.end() ? -1 : it->second;
}

bool Tokenizer::is_special(int32_t id) const { return id >= 0 && id < vocab_size() && special_[id]; }

std::vector<int32_t> Tokenizer::EncodePrompt(absl::string_view text) const {
  std::vector<int32_t> ids;
  if (bos_id_ >= 0) ids.push_back(bos_id_);
  const std::vector<int32_t> body = Encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::vector<int32_t> Tokenizer::Encode(absl::string_view text) const {
  std::vector<int32_t> out;
  size_t segment = 0;
  for (size_t i = 0; i < text.size();) {
    const uint8_t b = static_cast<uint8_t>(text[i]);
    const AddedToken* hit = nullptr;
    for (int32_t k = added_first_byte_[b]; k < added_first_byte_[b + 1]; ++k) {
      if (text.substr(i, added_[k].content.size()) == added_[k].content) {
        hit = &added_[k];
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    if (i > segment) EncodeOrdinary(text.substr(segment, i - segment), &out);
    out.push_back(hit->id);
    i += hit->content.size();
    segment = i;
  }
  if (text.size() > segment) EncodeOrdinary(text.substr(segment), &out);
  return out;
}

void Tokenizer::EncodeOrdinary(absl::string_view text, std::vector<int32_t>* out) const {
  if (char_vocab_) {
    for (char c : text) {
      const uint8_t b = static_cast<uint8_t>(c);
      out->push_back(b >= 32 && b <= 126 ? b - 28 : b == '\n' ? 99 : unk_id_);
    }
    return;
  }
  const std::string normalized = normalizer_ ? normalizer_->Apply(text) : std::string(text);
  for (const std::string& piece : pre_tokenizer_->Split(normalized)) bpe_->Encode(piece, out);
}

std::string Tokenizer::DecodeToken(int32_t id) const {
  return id >= 0 && id < vocab_size() ? id_to_bytes_[id] : std::string();
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size() || (skip_special && special_[id])) continue;
    out += id_to_bytes_[id];
  }
  return out;
}

std::string Tokenizer::DecodeText(const std::vector<int32_t>& ids, bool skip_special) const {
  return tokenizer_internal::ToValidUtf8(Decode(ids, skip_special));
}

std::string Tokenizer::ApplyChatTemplate(absl::string_view user_message) const {
  switch (chat_format_) {
    case ChatFormat::kQwen:
      return absl::StrCat(kQwenImStart, "user\n", user_message, kQwenImEnd, "\n", kQwenImStart, "assistant\n");
    case ChatFormat::kDeepSeek:
      return absl::StrCat(DecodeToken(bos_id_), kDeepSeekUser, user_message, kDeepSeekAssistant);
    case ChatFormat::kNone:
      break;
  }
  return std::string(user_message);
}

}  // namespace zerorl
