// SpecRegistry (contract in spec_registry.h).
#include "reward/spec_registry.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace zerorl::reward {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const CompiledSpec>> SpecRegistry::Compile(const zerorl::v1::RewardSpec& spec) const {
  return CompiledSpec::Compile(spec, env_);
}

absl::StatusOr<zerorl::v1::RewardSpecVersion> SpecRegistry::Set(const zerorl::v1::RewardSpec& spec,
                                                                 const std::string& source, const std::string& reason) {
  absl::MutexLock set_lock(&set_mu_);
  auto compiled = CompiledSpec::Compile(spec, env_);
  if (!compiled.ok()) {
    ZLOG(WARNING) << "reward spec from " << source << " refused: " << compiled.status().message();
    return compiled.status();
  }
  zerorl::v1::RewardSpecVersion v;
  std::shared_ptr<const CompiledSpec> old;
  {
    absl::MutexLock lock(&mu_);
    v.set_version(static_cast<int64_t>(history_.size()) + 1);  // versions are 1, 2, 3, ... in history order
    *v.mutable_spec() = (*compiled)->spec();
    v.set_created_unix_ms(NowMs());
    v.set_reason(reason);
    v.set_source(source);
    history_.push_back(v);
    old = std::move(active_.spec);  // released outside the lock (may stop python workers)
    active_.version = v.version();
    active_.spec = *compiled;
  }
  ZLOG(INFO) << "reward spec v" << v.version() << " (" << v.spec().name() << ") active; source " << source
             << (reason.empty() ? "" : ": " + reason);
  return v;
}

absl::StatusOr<zerorl::v1::RewardSpecVersion> SpecRegistry::Rollback(int64_t version, const std::string& reason) {
  zerorl::v1::RewardSpec spec;
  {
    absl::MutexLock lock(&mu_);
    bool found = false;
    for (const auto& h : history_) {
      if (h.version() == version) {
        spec = h.spec();
        found = true;
      }
    }
    if (!found) return absl::NotFoundError(absl::StrCat("reward spec version ", version, " not found"));
  }
  return Set(spec, "rollback", reason.empty() ? absl::StrCat("rollback to ", version)
                                              : absl::StrCat("rollback to ", version, ": ", reason));
}

SpecRegistry::Snapshot SpecRegistry::Current() const {
  absl::MutexLock lock(&mu_);
  return active_;
}

absl::StatusOr<zerorl::v1::RewardSpecVersion> SpecRegistry::CurrentInfo() const {
  absl::MutexLock lock(&mu_);
  for (const auto& h : history_) {
    if (h.version() == active_.version) return h;
  }
  return absl::FailedPreconditionError("no reward spec is active");
}

std::vector<zerorl::v1::RewardSpecVersion> SpecRegistry::History() const {
  absl::MutexLock lock(&mu_);
  return history_;
}

}  // namespace zerorl::reward
