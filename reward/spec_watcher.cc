// SpecFileWatcher (contract in spec_watcher.h).
#include "reward/spec_watcher.h"

#include "common/config.h"
#include "common/log.h"

namespace zerorl::reward {

SpecFileWatcher::SpecFileWatcher(SpecRegistry* registry, std::string path, std::string loaded_content, int interval_ms)
    : registry_(registry), path_(std::move(path)), last_content_(std::move(loaded_content)),
      interval_ms_(std::max(10, interval_ms)) {
  thread_ = std::thread([this] { Loop(); });
}

SpecFileWatcher::~SpecFileWatcher() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  thread_.join();
}

void SpecFileWatcher::Loop() {
  for (;;) {
    {
      // Sleeps interval_ms_ (or until stop_); then polls the file unlocked.
      absl::MutexLock lock(&mu_);
      const absl::Time wake = absl::Now() + absl::Milliseconds(interval_ms_);
      while (!stop_) {
        if (cv_.WaitWithDeadline(&mu_, wake)) break;  // timed out: poll
      }
      if (stop_) return;
    }
    auto text = ReadFile(path_);
    if (text.ok() && *text != last_content_) {
      last_content_ = *text;  // a bad file is refused once, not every poll
      auto spec = ParseRewardSpecYaml(*text, path_);
      absl::Status s = spec.status();
      if (spec.ok()) s = registry_->Set(*spec, "file", "file reload: " + path_).status();
      if (s.ok()) {
        reloads_.fetch_add(1);
      } else {
        refusals_.fetch_add(1);
        ZLOG(WARNING) << "reward spec file " << path_ << " refused, keeping the active spec: " << s.message();
      }
    }
  }
}

}  // namespace zerorl::reward
