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
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void SpecFileWatcher::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return stop_; })) {
    lock.unlock();
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
    lock.lock();
  }
}

}  // namespace zerorl::reward
