// BPE merge loop: a doubly linked list of symbols and a min-heap of candidate merges keyed by
// (rank, position); stale heap entries are skipped when popped. O(n log n) per word, results
// cached per pre-token.
#include "model/tokenizer_bpe.h"

#include <queue>

#include "absl/strings/str_cat.h"
#include "model/tokenizer_unicode.h"

namespace zerorl::tokenizer_internal {

namespace {

using json = nlohmann::json;

absl::Status Bad(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const json& j) {
  if (!j.is_object()) return Bad("model", "expected an object");
  if (j.contains("type") && !(j["type"].is_string() && j["type"] == "BPE")) {
    return Bad("model.type", "only \"BPE\" is supported");
  }
  if (j.contains("dropout") && !j["dropout"].is_null()) return Bad("model.dropout", "BPE dropout is not supported");
  if (j.contains("byte_fallback") && !(j["byte_fallback"].is_boolean() && !j["byte_fallback"].get<bool>())) {
    return Bad("model.byte_fallback", "only false is supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (j.contains(key) && !j[key].is_null() && !(j[key].is_string() && j[key].get<std::string>().empty())) {
      return Bad(absl::StrCat("model.", key), "only null or \"\" is supported");
    }
  }
  auto m = std::make_unique<BpeModel>();
  const auto vocab = j.find("vocab");
  if (vocab == j.end() || !vocab->is_object()) return Bad("model.vocab", "expected an object of token -> id");
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (int64_t{1} << 30)) {
      return Bad(absl::StrCat("model.vocab[\"", token, "\"]"), "expected a non-negative integer id");
    }
    m->vocab_[token] = id.get<int32_t>();
  }
  if (j.contains("ignore_merges")) {
    if (!j["ignore_merges"].is_boolean()) return Bad("model.ignore_merges", "expected a boolean");
    m->ignore_merges_ = j["ignore_merges"];
  }
  if (j.contains("unk_token") && !j["unk_token"].is_null()) {
    if (!j["unk_token"].is_string()) return Bad("model.unk_token", "expected a string or null");
    const auto it = m->vocab_.find(j["unk_token"].get<std::string>());
    if (it == m->vocab_.end()) return Bad("model.unk_token", "not in model.vocab");
    m->unk_id_ = it->second;
  }
  const auto merges = j.find("merges");
  if (merges == j.end() || !merges->is_array()) {
    return Bad("model.merges", "expected an array of \"a b\" strings or [\"a\", \"b\"] pairs");
  }
  m->merges_.reserve(merges->size());
  for (size_t r = 0; r < merges->size(); ++r) {
    const json& e = (*merges)[r];
    const std::string where = absl::StrCat("model.merges[", r, "]");
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e;
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return Bad(where, absl::StrCat("expected \"a b\" with exactly one space, got \"", s, "\""));
      }
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0];
      b = e[1];
    } else {
      return Bad(where, "expected a \"a b\" string or a [\"a\", \"b\"] pair");
    }
    const auto ia = m->vocab_.find(a), ib = m->vocab_.find(b), iab = m->vocab_.find(a + b);
    if (ia == m->vocab_.end()) return Bad(where, absl::StrCat("\"", a, "\" is not in model.vocab"));
    if (ib == m->vocab_.end()) return Bad(where, absl::StrCat("\"", b, "\" is not in model.vocab"));
    if (iab == m->vocab_.end()) return Bad(where, absl::StrCat("merged \"", a, b, "\" is not in model.vocab"));
    // The first (lowest-rank) occurrence of a pair wins, as in HF.
    m->merges_.try_emplace(Key(ia->second, ib->second), Merge{static_cast<int32_t>(r), iab->second});
  }
  return m;
}

void BpeModel::Encode(absl::string_view word, std::vector<int32_t>* out) const {
  {
    absl::MutexLock lock(&cache_mu_);
    const auto it = cache_.find(word);
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = EncodeUncached(word);
  out->insert(out->end(), ids.begin(), ids.end());
  absl::MutexLock lock(&cache_mu_);
  if (cache_.size() >= kCacheCapacity) cache_.clear();
  cache_.emplace(std::string(word), std::move(ids));
}

std::vector<int32_t> BpeModel::EncodeUncached(absl::string_view word) const {
  if (ignore_merges_) {
    const auto it = vocab_.find(word);
    if (it != vocab_.end()) return {it->second};
  }
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // indices into symbols, -1 at the ends
  };
  std::vector<Symbol> symbols;
  std::vector<int32_t> out;
  for (size_t i = 0; i < word.size();) {
    bool valid = false;
    const int len = Utf8Length(word, i, &valid);
    const auto it = vocab_.find(word.substr(i, len));
    i += len;
    if (it != vocab_.end()) {
      symbols.push_back({it->second, static_cast<int32_t>(symbols.size()) - 1, -1});
    } else if (unk_id_ >= 0) {
      symbols.push_back({unk_id_, static_cast<int32_t>(symbols.size()) - 1, -1});
    }
  }
  for (size_t i = 0; i + 1 < symbols.size(); ++i) symbols[i].next = static_cast<int32_t>(i + 1);

  struct Candidate {
    int32_t rank, pos, left_id, right_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  const auto push = [&](int32_t pos) {
    if (pos < 0 || symbols[pos].next < 0) return;
    const int32_t right = symbols[pos].next;
    const auto it = merges_.find(Key(symbols[pos].id, symbols[right].id));
    if (it != merges_.end()) heap.push({it->second.rank, pos, symbols[pos].id, symbols[right].id});
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i) push(static_cast<int32_t>(i));
  std::vector<bool> dead(symbols.size(), false);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = symbols[c.pos];
    if (dead[c.pos] || left.id != c.left_id || left.next < 0 || symbols[left.next].id != c.right_id) continue;
    const int32_t right = left.next;
    left.id = merges_.find(Key(c.left_id, c.right_id))->second.merged;
    dead[right] = true;
    left.next = symbols[right].next;
    if (left.next >= 0) symbols[left.next].prev = c.pos;
    push(left.prev);
    push(c.pos);
  }
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
  return out;
}

}  // namespace zerorl::tokenizer_internal
