// Byte-pair-encoding model of tokenizer.json ("model": {"type": "BPE", ...}): turns one
// pre-token (already in byte-level form) into vocabulary ids by applying merges in rank order.
// Internal to model/tokenizer*.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace zerorl::tokenizer_internal {

class BpeModel {
 public:
  // `j` is the "model" object. Errors name the field (model.vocab, model.merges[i], ...).
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& j);

  // Appends the ids of `word`. Characters missing from the vocabulary become unk_id when the
  // model has an unk_token and are dropped otherwise (as HF tokenizers does). Thread-safe.
  void Encode(absl::string_view word, std::vector<int32_t>* out) const;

  const absl::flat_hash_map<std::string, int32_t>& vocab() const { return vocab_; }
  int32_t unk_id() const { return unk_id_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged;  // id of the merged token
  };
  static uint64_t Key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  std::vector<int32_t> EncodeUncached(absl::string_view word) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  absl::flat_hash_map<uint64_t, Merge> merges_;  // (left id, right id) -> merge
  int32_t unk_id_ = -1;
  bool ignore_merges_ = false;

  static constexpr size_t kCacheCapacity = 1 << 16;  // entries; the cache is cleared when full
  mutable absl::Mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace zerorl::tokenizer_internal
