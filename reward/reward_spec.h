// RewardSpec: validation and scoring. A spec is a weighted sum of terms
// (reward.proto); CompiledSpec is a validated, immutable, ready-to-score form
// (parsed options, started python workers). Scoring never fails as a whole: a
// term that cannot judge an item (wrong answer type, sandbox error) reports
// verdict "error" with value 0 and the reason in `detail`.
//
// RewardResult.correct: true when every accuracy term judged the item correct.
// Accuracy terms are those with `accuracy: true`; when no term sets it, the
// math, countdown and code terms are (code counts as correct only when all
// tests pass). Thread-safe: Score may run concurrently.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "reward/sandbox.h"
#include "zerorl/v1/config.pb.h"
#include "zerorl/v1/reward.pb.h"

namespace zerorl::reward {

class PythonTerm;

// Creates the sandbox on first use (probing isolation once) and shares it.
class SandboxProvider {
 public:
  SandboxProvider(Sandbox::Options options, SandboxLimits limits) : options_(std::move(options)), limits_(limits) {}
  absl::StatusOr<std::shared_ptr<Sandbox>> Get();
  const SandboxLimits& limits() const { return limits_; }

 private:
  Sandbox::Options options_;
  SandboxLimits limits_;
  absl::Mutex mu_;
  std::shared_ptr<Sandbox> sandbox_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);  // a failed creation is not retried
  bool tried_ ABSL_GUARDED_BY(mu_) = false;
};

// What a spec needs from its host.
struct SpecEnvironment {
  std::shared_ptr<SandboxProvider> sandbox;  // needed by code and python terms
  int default_max_tokens = 1024;             // overlong term default (the rollout's max_new_tokens)
  int python_workers = 2;                    // parallel workers per python term
};

// Builds a provider from RunConfig.reward.sandbox.
std::shared_ptr<SandboxProvider> MakeSandboxProvider(const zerorl::v1::SandboxConfig& config);

// Parses a spec from YAML (keys of RewardSpec; `kind: math`). INVALID_ARGUMENT names the key.
absl::StatusOr<zerorl::v1::RewardSpec> ParseRewardSpecYaml(const std::string& yaml, const std::string& source);
absl::StatusOr<zerorl::v1::RewardSpec> LoadRewardSpecFile(const std::string& path);

// The built-in spec for a dataset kind (math+format for GSM8K/MATH, countdown+format, code).
zerorl::v1::RewardSpec DefaultRewardSpec(zerorl::v1::DatasetKind kind);

class CompiledSpec {
 public:
  // Validates every term (kind set, finite weights, unique names, option ranges,
  // known extractors/scripts, python files that load, a sandbox for code/python
  // terms). INVALID_ARGUMENT names the term and the field ("terms[1] (format): ...").
  static absl::StatusOr<std::shared_ptr<const CompiledSpec>> Compile(const zerorl::v1::RewardSpec& spec,
                                                                     const SpecEnvironment& env);
  ~CompiledSpec();

  zerorl::v1::RewardResult Score(const zerorl::v1::ScoreItem& item) const;
  const zerorl::v1::RewardSpec& spec() const { return spec_; }  // with defaults filled in

 private:
  CompiledSpec() = default;
  zerorl::v1::TermScore ScoreTerm(size_t i, const zerorl::v1::ScoreItem& item, bool* correct) const;

  zerorl::v1::RewardSpec spec_;
  SpecEnvironment env_;
  std::shared_ptr<Sandbox> sandbox_;                 // when a code/python term needs it
  std::vector<std::unique_ptr<PythonTerm>> python_;  // per term (null for other kinds)
  std::vector<bool> accuracy_;                       // per term
};

}  // namespace zerorl::reward
